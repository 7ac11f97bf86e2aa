"""The benchmarks run, and what they time agrees: small sizes, so this is no timing."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import debian_packages

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script, *args):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_similarity_benchmark_agrees_with_float64():
    out = run("similarity.py", "--representations", "4", "--stimuli", "60", "--features", "12",
              "--measures", "linear_cka,linear_cka_debiased,rsa,procrustes,cca", "--scaling", "")
    diffs = [(line.split("  ")[1], float(re.search(r"\|diff\| (\S+)", line).group(1)))
             for line in out.splitlines() if "|diff|" in line]
    assert len(diffs) >= 18  # hourglass in both precisions, the plain formulas, the bound
    for label, diff in diffs:
        assert diff < (1e-5 if "float32" in label else 1e-12), (label, diff)


def test_training_benchmark_matches_a_bare_loop():
    debian_packages("dataset-fashion-mnist")  # the benchmark's data
    out = run("training.py", "--images", "300", "--epochs", "1")
    losses = [line for line in out.splitlines() if re.match(r"\s+[01]\s+\d", line)]
    assert len(losses) == 2  # epochs 0 and 1, each the same in both loops
    assert all(line.split()[3] == line.split()[6] == "0.0e+00" for line in losses), out


def test_training_benchmark_stacks_seeds_to_the_same_bytes():
    debian_packages("dataset-fashion-mnist")
    out = run("training.py", "--images", "300", "--epochs", "1", "--stack", "2")
    assert re.search(r"stacked / one by one: x\d", out), out
    # epoch0, epoch1 and final of each seed
    assert "checkpoints the same bytes both ways: 6 of 6" in out, out
