# Runs where snakemake runs (the login node on a cluster): downloads need the
# network that compute nodes often lack, and preparing a dataset is light.
localrules:
    data,


rule data:
    output:
        DATA_FILE,
    params:
        settings=to_json({k: v for k, v in config["data"].items() if k != "dataset"}),
        code=code_hash("data"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        f"{STUDY_DIR}/logs/data.log",
    shell:
        "python -m hourglass data --dataset {config[data][dataset]} --out {output}"
        " --settings {params.settings:q} > {log} 2>&1"
