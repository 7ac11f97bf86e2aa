# Runs where snakemake runs (the login node on a cluster): downloads need the
# network that compute nodes often lack, and preparing a dataset is light.
localrules:
    data,


rule data:
    output:
        DATA_FILE,
    params:
        # Where the dataset comes from (root, download) changes no byte of the
        # file: it reaches the command, not the params, so it re-runs nothing.
        settings=to_json(
            {k: v for k, v in config["data"].items() if k not in ("root", "download")}
        ),
        code=code_hash("data"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        f"{STUDY_DIR}/logs/data.log",
    shell:
        "python -m hourglass data --root {config[data][root]:q}"
        " --download {config[data][download]} --out {output}"
        " --settings {params.settings:q} > {log} 2>&1"
