# Config validation, the study's paths, and what each rule's params hold.
import re
import shlex
import sys
import json
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

SRC_DIR = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC_DIR))
from hourglass.analyses.registry import ANALYSES
from hourglass.data import DATASETS
from hourglass.findings import FINDINGS
from hourglass.config import (
    ANALYSIS_DATA,
    check_config,
    check_measures,
    data_key,
    load_schema,
    resolve_variants,
)
from hourglass.io import remove_temporaries
from hourglass.stages import code_hash

# Every problem, named by its key, before anything runs.
SCHEMA_FILE = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
check_config(config, SCHEMA_FILE)
# Variants override only the keys they name: resolve each from the config as
# written, then validation fills in the defaults of each variant's own
# architecture. Each variant's settings are then in full, as its jobs receive
# them (and results/{study}/config.yaml records them).
config["variants"] = resolve_variants(config, load_schema(SCHEMA_FILE))
validate(config, "../schemas/config.schema.yaml")

check_measures(config["similarity"]["measures"])

STUDY_DIR = f"results/{config['study']}"
SEEDS = config["seeds"]
VARIANTS = list(config["variants"])
CHECKPOINTS = [f"epoch{e}" for e in sorted(config["checkpoints"])] + ["final"]
# The variants whose seeds train together in one job (training.stack_seeds).
STACKED = [v for v in VARIANTS if config["variants"][v]["training"]["stack_seeds"]]
MEASURES = list(config["similarity"]["measures"])
ANALYSES_ENABLED = list(config["analyses"])
# Each figure of an enabled analysis, by name, with the analysis it draws.
ANALYSIS_FIGURES = {
    figure: name for name in ANALYSES_ENABLED for figure in ANALYSES[name].figures
}
MEASURE_VIEWS = ("layers", "seeds", "epochs")
# The tables the study's findings read, as (analysis, table), each once.
FINDINGS_READS = list(
    dict.fromkeys(r for f in config["findings"] for r in FINDINGS[f["check"]].reads)
)
# The variants whose output is an image: all but classifiers (model.classes).
RECONSTRUCTING = [
    v for v in VARIANTS if config["variants"][v]["model"].get("classes") is None
]
# The overview needs RC per layer: it comes with the consistency analysis;
# training needs a variant (a study of library networks has none), and
# reconstructions one that reconstructs.
FIGURES = (
    ["overview"] * ("consistency" in ANALYSES_ENABLED)
    + ["training"] * bool(VARIANTS)
    + ["reconstructions"] * bool(RECONSTRUCTING)
    + [*ANALYSIS_FIGURES]
    + [f"{measure}_{view}" for measure in MEASURES for view in MEASURE_VIEWS]
)


def to_json(value):
    """Params as canonical JSON: the same settings always give the same text."""
    return json.dumps(value, sort_keys=True)


# Data settings of analyses' own (the outliers' out-of-distribution images,
# the probes' labelled ones), by analysis and key (config.ANALYSIS_DATA).
ANALYSIS_SETTINGS = {
    (analysis, key): config["analyses"][analysis][key]
    for analysis, key in ANALYSIS_DATA
    if key in config["analyses"].get(analysis, {})
}
# One data file per distinct data setting of the variants and the analyses.
DATA_SETTINGS = {
    data_key(setting): setting
    for setting in [config["variants"][v]["data"] for v in VARIANTS]
    + list(ANALYSIS_SETTINGS.values())
}


def data_file(variant):
    """The data file `variant` trains and is recorded on."""
    return f"{STUDY_DIR}/data/{data_key(config['variants'][variant]['data'])}.h5"


def analysis_data_file(analysis, key, variant=None):
    """The data file of an analysis's own data setting `key`; where it sets
    none, that of `variant` (the probes read a variant's own images unless
    told others)."""
    setting = ANALYSIS_SETTINGS.get((analysis, key))
    if setting is None:
        return data_file(variant)
    return f"{STUDY_DIR}/data/{data_key(setting)}.h5"


def variant_pattern(variants):
    """A wildcard pattern matching exactly `variants` (none: nothing)."""
    return "|".join(map(re.escape, variants)) or "(?!)"


wildcard_constraints:
    variant=variant_pattern(VARIANTS),
    seed=r"\d+",
    figure="|".join(FIGURES),
    measure="|".join(MEASURES) or "(?!)",
    data="|".join(map(re.escape, DATA_SETTINGS)),


def variant_training(variant):
    return dict(config["variants"][variant]["training"])


def variant_settings(variant):
    """Everything training `variant` depends on. What happens on divergence is
    left out: it changes nothing for a seed that does not diverge."""
    training = variant_training(variant)
    training.pop("on_divergence")
    return {
        "variant": variant,
        "model": config["variants"][variant]["model"],
        "training": training,
        "checkpoints": sorted(config["checkpoints"]),
    }


# Threads of the consistency and all-pairs jobs, whatever --cores gives them.
SIMILARITY_THREADS = 2


def measure_settings(measure):
    """Everything the all-pairs job of `measure` depends on."""
    engine = ("dtype", "device", "max_memory_gb")
    return {
        "options": config["similarity"]["measures"][measure],
        **{k: config["similarity"][k] for k in engine},
    }


# Jobs run the package from this checkout, whichever environment runs them,
# so the code that runs is the code each rule's `code` param hashes
# (hourglass.stages); and with the interpreter that runs Snakemake (whose
# environment has the package's dependencies), not the first `python` on the
# user's PATH; under --software-deployment-method conda, the rule's
# environment's own. Rules call the shell function `hourglass` this defines:
# a prefix, not a param, since the interpreter's path is no reason to re-run.
# (Braces doubled twice: once for this f-string, once for the job's shell.)
SRC_ON_PATH = f"{shlex.quote(str(SRC_DIR))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"
PYTHON = (
    "python"
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    else shlex.quote(sys.executable)
)
shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={SRC_ON_PATH}; "
    f'hourglass() {{{{ {PYTHON} -m hourglass "$@"; }}}}; '
)


def run_dir(w):
    return f"{STUDY_DIR}/{w.variant}/seed{w.seed}"


def figure_inputs(w):
    if w.figure == "overview":
        # RC per layer, and the first measure's across-seed panel if there is one
        return [f"{STUDY_DIR}/similarity/consistency.csv"] + [
            f"{STUDY_DIR}/similarity/{measure}.h5" for measure in MEASURES[:1]
        ]
    if w.figure in ANALYSIS_FIGURES:
        analysis = ANALYSES[ANALYSIS_FIGURES[w.figure]]
        return [
            f"{STUDY_DIR}/{analysis.folder}/{analysis.file(output)}"
            for output in analysis.figures[w.figure].tables
        ]
    if w.figure.rsplit("_", 1)[0] in MEASURES:
        return f"{STUDY_DIR}/similarity/{w.figure.rsplit('_', 1)[0]}.h5"
    if w.figure == "training":
        return expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/metrics.csv",
            variant=VARIANTS,
            seed=SEEDS,
        )
    # reconstructions: per variant that reconstructs, its probe images and
    # its first seed's final output layer
    return [
        path
        for variant in RECONSTRUCTING
        for path in (
            data_file(variant),
            f"{STUDY_DIR}/{variant}/seed{SEEDS[0]}/activations/final.h5",
        )
    ]


# Where each figure goes in the report (snakemake --report): categories are
# listed by name, hence the numbers; a measure's figures share a subcategory.
def figure_category(w):
    if w.figure == "overview":
        return "1. Overview"
    if w.figure in ("training", "reconstructions"):
        return "2. Data and training"
    if w.figure in ANALYSIS_FIGURES:
        return ANALYSES[ANALYSIS_FIGURES[w.figure]].figures[w.figure].category
    return "4. Similarity measures"


def figure_subcategory(w):
    measure = w.figure.rsplit("_", 1)[0]
    return measure if measure in MEASURES else None


FIGURE_TITLES = {
    "overview": "the headline: RC per layer",
    **{
        figure: ANALYSES[name].figures[figure].title
        for figure, name in ANALYSIS_FIGURES.items()
    },
    "training": "loss per epoch",
    "reconstructions": "probe images, reconstructed",
    "layers": "layer × layer",
    "seeds": "same layer across seeds",
    "epochs": "against the final checkpoint",
}


def figure_labels(w):
    return {
        "figure": FIGURE_TITLES.get(w.figure)
        or FIGURE_TITLES[w.figure.rsplit("_", 1)[1]]
    }


# The folders the study's tables go to: its analyses' and the measures'.
TABLE_FOLDERS = list(
    dict.fromkeys(
        [ANALYSES[name].folder for name in ANALYSES_ENABLED]
        + ["similarity"] * bool(MEASURES)
    )
)


def summary():
    """Where a finished run's results are, for the end of Snakemake's output."""
    return "\n".join(
        [
            f"hourglass: study {config['study']!r} is complete.",
            "  tables   " + ", ".join(f"{STUDY_DIR}/{f}/" for f in TABLE_FOLDERS),
            f"  figures  {STUDY_DIR}/figures/",
            f"  logs     {STUDY_DIR}/logs/",
            f"  report   snakemake --report {STUDY_DIR}/report.html (with the same "
            "--configfile), or make report",
        ]
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
