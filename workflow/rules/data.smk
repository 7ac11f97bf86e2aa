# Runs where snakemake runs (the login node on a cluster): downloads need the
# network that compute nodes often lack, and preparing a dataset is light
# (the sprite datasets' 737,280 images take some GB: their mem_mb says so).
localrules:
    data,


rule data:
    output:
        f"{STUDY_DIR}/data/{{data}}.h5",
    log:
        f"{STUDY_DIR}/logs/data/{{data}}.log",
    conda:
        "../../envs/hourglass.yaml"
    threads: 1
    resources:
        mem_mb=lambda w: DATASETS[DATA_SETTINGS[w.data]["dataset"]].prepare_mb,
        runtime=30,
        # Where the dataset comes from changes no byte of the file: resources,
        # unlike params, are no re-run trigger, so moving it re-runs nothing.
        root=config["data"]["root"],
        download=str(config["data"]["download"]),
    params:
        settings=lambda w: to_json(DATA_SETTINGS[w.data]),
        code=code_hash("data"),
    shell:
        "hourglass data --root {resources.root:q}"
        " --download {resources.download} --out {output}"
        " --settings {params.settings:q} > {log} 2>&1"
