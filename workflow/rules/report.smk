# The study's effective config (its files, every default filled in) beside its
# results, and in the report: the settings the results were made with. (A job
# of its own process: a run: block's job gets a negative runtime, which blanks
# the report's log-scale runtime chart.)
localrules:
    study_config,


rule study_config:
    output:
        report(
            f"{STUDY_DIR}/config.yaml",
            caption="../report/config.rst",
            category="5. Study settings",
            labels={"file": "the effective config"},
        ),
    log:
        f"{STUDY_DIR}/logs/study_config.log",
    conda:
        "../../envs/hourglass.yaml"
    params:
        config=to_json(config),
        code=code_hash("config"),
    shell:
        "hourglass config --settings {params.config:q} --out {output} > {log} 2>&1"
