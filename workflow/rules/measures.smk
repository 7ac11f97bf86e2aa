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
        "../../envs/hourglass.yaml"
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
