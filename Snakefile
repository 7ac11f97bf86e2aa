# hourglass: train autoencoders under many seeds, record every layer, and
# measure how consistent their representations are. See README.md.
from snakemake.utils import min_version

min_version("9.0")


# config.yaml is the default study. A study given with --configfile stands
# alone (Snakemake would otherwise merge it into config.yaml, variants too);
# more --configfile files after it override parts of it.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/figures.smk"


# A job killed with SIGKILL leaves its temporary (.name.tmp) behind; the next
# run clears them before it starts any job.
onstart:
    sweep_temporaries()


rule all:
    input:
        f"{STUDY_DIR}/similarity/consistency.csv",
        f"{STUDY_DIR}/similarity/mds.csv",
        expand(f"{STUDY_DIR}/similarity/{{measure}}.csv", measure=MEASURES),
        expand(
            f"{STUDY_DIR}/figures/{{figure}}.{{fmt}}",
            figure=FIGURES,
            fmt=config["figures"]["formats"],
        ),
