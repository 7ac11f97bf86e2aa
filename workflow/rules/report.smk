# The study's effective config (its files, every default filled in) beside its
# results, and in the report: the settings the results were made with.
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
    params:
        config=to_json(config),
        code=code_hash("config"),
    run:
        write_effective_config(json.loads(params.config), output[0])
