"""The Snakefiles pass `snakemake --lint` and are formatted with snakefmt."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent
SNAKEFILES = ["Snakefile", *sorted(str(p.relative_to(REPO)) for p in (REPO / "workflow" / "rules").glob("*.smk"))]


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_snakefiles_are_formatted():
    result = subprocess.run([BIN / "snakefmt", "--check", "--diff", *SNAKEFILES], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"run snakefmt on the workflow:\n{result.stdout}{result.stderr}"
