rule data:
    output:
        DATA_FILE,
    params:
        settings=to_json({k: v for k, v in config["data"].items() if k != "dataset"}),
        code=code_hash("data"),
    log:
        f"{STUDY_DIR}/logs/data.log",
    shell:
        "python -m hourglass data --dataset {config[data][dataset]} --out {output}"
        " --settings {params.settings:q} > {log} 2>&1"
