"""The package modules each workflow stage runs, and a hash of their content.

The hash is a param of the stage's rules, so editing a stage's code re-runs
that stage and what follows while a fresh checkout or a `touch` re-runs
nothing; training also records it in its saved progress, so that a run
resumes only on the very code that started it.
"""

import hashlib
from pathlib import Path

from hourglass.analyses.registry import ANALYSES

PACKAGE_DIR = Path(__file__).resolve().parent

# cli.py only dispatches; every stage checks its input files (checks.py).
STAGE_CODE = {
    "data": ["data.py", "io.py"],
    "train": ["train.py", "objectives.py", "losses.py", "models.py", "data.py", "io.py"],
    "train_stacked": ["stacked.py", "train.py", "objectives.py", "losses.py", "models.py",
                      "data.py", "io.py"],
    "activations": ["activations.py", "train.py", "models.py", "data.py", "io.py"],
    "measures": ["analyses/comparisons.py", "similarity", "activations.py", "models.py", "io.py"],
    "figures": ["plots.py", "analyses/registry.py", "activations.py", "models.py", "data.py",
                "io.py"],
    "config": ["config.py"],
    "findings": ["findings.py", "io.py"],
    **{name: list(analysis.modules) for name, analysis in ANALYSES.items()},
}
STAGE_CODE = {stage: [*modules, "checks.py"] for stage, modules in STAGE_CODE.items()}


def code_hash(stage):
    """A short hash of the content of the modules (and subpackages) `stage` runs."""
    digest = hashlib.sha256()
    for name in STAGE_CODE[stage]:
        path = PACKAGE_DIR / name
        for module in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(module.read_bytes())
    return digest.hexdigest()[:16]
