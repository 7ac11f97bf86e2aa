# Config validation, the study's paths, and what each rule's params hold.
import copy
import re
import shlex
import sys
import hashlib
import json
from pathlib import Path

from snakemake.utils import validate

SRC_DIR = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC_DIR))
from hourglass.config import check_config, check_measures
from hourglass.io import remove_temporaries

# Every problem, named by its key, before anything runs.
check_config(
    config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
)
# Variants override only the keys they name: keep them as written, before
# validation fills every default into them too.
VARIANT_OVERRIDES = copy.deepcopy(config["variants"])
validate(config, "../schemas/config.schema.yaml")

check_measures(config["similarity"]["measures"])

STUDY_DIR = f"results/{config['study']}"
DATA_FILE = f"{STUDY_DIR}/data/{config['data']['dataset']}.h5"
SEEDS = config["seeds"]
VARIANTS = list(config["variants"])
CHECKPOINTS = [f"epoch{e}" for e in sorted(config["checkpoints"])] + ["final"]
MEASURES = list(config["similarity"]["measures"])
FIGURES = ["consistency", "mds", "training", "reconstructions"] + [
    f"{measure}_{view}"
    for measure in MEASURES
    for view in ("layers", "seeds", "epochs")
]


wildcard_constraints:
    variant="|".join(map(re.escape, VARIANTS)),
    seed=r"\d+",
    figure="|".join(FIGURES),
    measure="|".join(MEASURES) or "(?!)",


def to_json(value):
    """Params as canonical JSON: the same settings always give the same text."""
    return json.dumps(value, sort_keys=True)


def architecture_keys(model):
    """The model settings without those its architecture ignores, so that
    editing them re-trains nothing."""
    ignored = {"fc": "channels", "conv": "widths"}[model["architecture"]]
    return {k: v for k, v in model.items() if k != ignored}


def variant_settings(variant):
    """Everything training `variant` depends on."""
    override = VARIANT_OVERRIDES[variant]
    return {
        "variant": variant,
        "model": architecture_keys({**config["model"], **override.get("model", {})}),
        "training": {**config["training"], **override.get("training", {})},
        "checkpoints": sorted(config["checkpoints"]),
    }


def measure_settings(measure):
    """Everything the all-pairs job of `measure` depends on."""
    engine = ("dtype", "device", "max_memory_gb")
    return {
        "options": config["similarity"]["measures"][measure],
        **{k: config["similarity"][k] for k in engine},
    }


# The package modules (and subpackages) each stage runs. Their content, hashed,
# is a param of the stage's rules: editing a stage's code re-runs that stage and what follows,
# while a fresh checkout or a `touch` re-runs nothing. cli.py only dispatches.
STAGE_CODE = {
    "data": ["data.py", "io.py"],
    "train": ["train.py", "models.py", "data.py", "io.py"],
    "activations": ["activations.py", "train.py", "models.py", "data.py", "io.py"],
    "similarity": ["analyses/consistency.py", "similarity", "activations.py", "io.py"],
    "measures": ["analyses/comparisons.py", "similarity", "activations.py", "io.py"],
    "figures": ["plots.py", "activations.py", "data.py", "io.py"],
}
PACKAGE_DIR = SRC_DIR / "hourglass"

# Jobs run the package from this checkout, whichever environment runs them,
# so the code that runs is the code hashed above.
# (Braces doubled twice: once for this f-string, once for the job's shell.)
SRC_ON_PATH = f"{shlex.quote(str(SRC_DIR))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"
shell.prefix(f"set -euo pipefail; export PYTHONPATH={SRC_ON_PATH}; ")


def code_hash(stage):
    digest = hashlib.sha256()
    for name in STAGE_CODE[stage]:
        path = PACKAGE_DIR / name
        for module in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def run_dir(w):
    return f"{STUDY_DIR}/{w.variant}/seed{w.seed}"


def figure_inputs(w):
    if w.figure in ("consistency", "mds"):
        return f"{STUDY_DIR}/similarity/{w.figure}.csv"
    if w.figure.rsplit("_", 1)[0] in MEASURES:
        return f"{STUDY_DIR}/similarity/{w.figure.rsplit('_', 1)[0]}.h5"
    if w.figure == "training":
        return expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/metrics.csv",
            variant=VARIANTS,
            seed=SEEDS,
        )
    # reconstructions: the probe images and the first seed's final output layer
    return [DATA_FILE] + expand(
        f"{STUDY_DIR}/{{variant}}/seed{SEEDS[0]}/activations/final.h5",
        variant=VARIANTS,
    )


def sweep_temporaries():
    """Delete the temporaries that jobs killed by SIGKILL left in the study
    folder, those of outputs the config no longer asks for included. Only when
    no other Snakemake holds locks in this directory: one running beside this
    one (on other outputs) may be writing them."""
    locks = Path(workflow.persistence.path) / "locks"
    own = {Path(p) for p in getattr(workflow.persistence, "_lockfile", {}).values()}
    others = [p for p in locks.glob("*.lock") if p not in own] if own else ["?"]
    if others:
        print(
            "leftover temporaries (.*.tmp) kept: another Snakemake may be writing here",
            file=sys.stderr,
        )
        return
    for path in remove_temporaries(STUDY_DIR):
        print(f"removed the temporary of a killed job: {path}", file=sys.stderr)
