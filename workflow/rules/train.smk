rule train:
    input:
        data=DATA_FILE,
    output:
        checkpoints=expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/checkpoints/{{checkpoint}}.pt",
            checkpoint=CHECKPOINTS,
            allow_missing=True,
        ),
        metrics=f"{STUDY_DIR}/{{variant}}/seed{{seed}}/metrics.csv",
    params:
        settings=lambda w: to_json(variant_settings(w.variant)),
        out_dir=run_dir,
        code=code_hash("train"),
    threads: 1
    log:
        f"{STUDY_DIR}/logs/train/{{variant}}/seed{{seed}}.log",
    shell:
        "python -m hourglass train --data {input.data} --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --threads {threads}"
        " --settings {params.settings:q} > {log} 2>&1"
