rule consistency:
    input:
        expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/activations/{{checkpoint}}.h5",
            seed=SEEDS,
            checkpoint=CHECKPOINTS,
            allow_missing=True,
        ),
    output:
        consistency=f"{STUDY_DIR}/similarity/{{variant}}/consistency.csv",
        mds=f"{STUDY_DIR}/similarity/{{variant}}/mds.csv",
    log:
        f"{STUDY_DIR}/logs/consistency/{{variant}}.log",
    conda:
        "../envs/hourglass.yaml"
    # Snakemake gives a job fewer threads under --cores 1; it computes with
    # SIMILARITY_THREADS all the same, since torch's sums depend on the
    # thread count and the tables must not depend on how the run was split.
    threads: SIMILARITY_THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=to_json(
            {k: config["similarity"][k] for k in ("bootstrap", "ci", "seed")}
        ),
        threads=SIMILARITY_THREADS,
        code=code_hash("similarity"),
    shell:
        "hourglass consistency --activations {input} --threads {params.threads}"
        " --out-consistency {output.consistency} --out-mds {output.mds}"
        " --settings {params.settings:q} > {log} 2>&1"


# Concatenating a few small tables: not worth a scheduler's queue.
localrules:
    gather_similarity,


rule gather_similarity:
    input:
        consistency=expand(
            f"{STUDY_DIR}/similarity/{{variant}}/consistency.csv", variant=VARIANTS
        ),
        mds=expand(f"{STUDY_DIR}/similarity/{{variant}}/mds.csv", variant=VARIANTS),
    output:
        consistency=f"{STUDY_DIR}/similarity/consistency.csv",
        mds=f"{STUDY_DIR}/similarity/mds.csv",
    log:
        f"{STUDY_DIR}/logs/gather_similarity.log",
    conda:
        "../envs/hourglass.yaml"
    params:
        code=code_hash("similarity"),
    shell:
        "(hourglass gather --tables {input.consistency} --out {output.consistency}"
        " && hourglass gather --tables {input.mds} --out {output.mds}) > {log} 2>&1"


rule measure:
    input:
        expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/activations/{{checkpoint}}.h5",
            variant=VARIANTS,
            seed=SEEDS,
            checkpoint=CHECKPOINTS,
        ),
    output:
        h5=f"{STUDY_DIR}/similarity/{{measure}}.h5",
        csv=f"{STUDY_DIR}/similarity/{{measure}}.csv",
    log:
        f"{STUDY_DIR}/logs/measures/{{measure}}.log",
    conda:
        "../envs/hourglass.yaml"
    # Snakemake gives a job fewer threads under --cores 1; it computes with
    # SIMILARITY_THREADS all the same, since torch's sums depend on the
    # thread count and the tables must not depend on how the run was split.
    threads: SIMILARITY_THREADS
    resources:
        mem_mb=lambda w: int(1024 * (config["similarity"]["max_memory_gb"] or 8) + 2000),
        runtime=120,
        gpu=int(config["similarity"]["device"] == "cuda"),
    params:
        settings=lambda w: to_json(measure_settings(w.measure)),
        threads=SIMILARITY_THREADS,
        code=code_hash("measures"),
    shell:
        "hourglass measure {wildcards.measure} --activations {input}"
        " --threads {params.threads} --out-h5 {output.h5} --out-csv {output.csv}"
        " --settings {params.settings:q} > {log} 2>&1"
