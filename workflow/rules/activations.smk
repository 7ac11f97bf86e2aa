rule activations:
    group:
        "seed_run"
    input:
        data=DATA_FILE,
        checkpoints=rules.train.output.checkpoints,
    output:
        expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/activations/{{checkpoint}}.h5",
            checkpoint=CHECKPOINTS,
            allow_missing=True,
        ),
    params:
        code=code_hash("activations"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        f"{STUDY_DIR}/logs/activations/{{variant}}/seed{{seed}}.log",
    shell:
        "python -m hourglass activations --data {input.data} --threads {threads}"
        " --checkpoints {input.checkpoints} --out {output} > {log} 2>&1"
