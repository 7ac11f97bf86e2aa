# hourglass: train autoencoders under many seeds, record every layer, and
# measure how consistent their representations are. See README.md.
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from hourglass.config import read_config_file

# config.yaml is the default study. A study given with --configfile stands
# alone (Snakemake would otherwise merge it into config.yaml, variants too);
# more --configfile files after it override parts of it.
# Each config file read once more, strictly: Snakemake's own parse error names
# neither the file nor the line, and its loader lets a key given twice or an
# alias through.
for path in workflow.overwrite_configfiles:
    read_config_file(path)
if not workflow.overwrite_configfiles:
    if Path("config.yaml").exists():
        read_config_file("config.yaml")

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/measures.smk"
include: "workflow/rules/findings.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


# snakemake --report results/{study}/report.html (make report): the figures with
# their captions (workflow/report/), the study's config, runtime statistics.
report: "workflow/report/workflow.rst"


# A job killed with SIGKILL leaves its temporary (.name.tmp) behind; the next
# run clears them before it starts any job.
onstart:
    sweep_temporaries()


# Every seed's checkpoints, metrics and activations are targets too: the
# tables are made from them, and a deleted one (a seed's final.pt, a whole
# seed folder) must come back rather than leave the study silently incomplete.
rule all:
    input:
        expand(rules.train.output, variant=VARIANTS, seed=SEEDS),
        expand(rules.activations.output, variant=VARIANTS, seed=SEEDS),
        [
            f"{STUDY_DIR}/{ANALYSES[name].folder}/{table}.csv"
            for name in ANALYSES_ENABLED
            for table in ANALYSES[name].tables
        ],
        expand(f"{STUDY_DIR}/similarity/{{measure}}.csv", measure=MEASURES),
        f"{STUDY_DIR}/config.yaml",
        [f"{STUDY_DIR}/findings.csv"] if config["findings"] else [],
        expand(
            f"{STUDY_DIR}/figures/{{figure}}.{{fmt}}",
            figure=FIGURES,
            fmt=config["figures"]["formats"],
        ),


onsuccess:
    print(summary())
