rule activations:
    input:
        data=lambda w: data_file(w.variant),
        checkpoints=rules.train.output.checkpoints,
    output:
        expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/activations/{{checkpoint}}.h5",
            checkpoint=CHECKPOINTS,
            allow_missing=True,
        ),
    log:
        f"{STUDY_DIR}/logs/activations/{{variant}}/seed{{seed}}.log",
    group:
        "seed_run"
    conda:
        "../../envs/hourglass.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        settings=to_json(config["activations"]),
        code=code_hash("activations"),
    shell:
        "hourglass activations --data {input.data} --threads {threads}"
        " --settings {params.settings:q}"
        " --checkpoints {input.checkpoints} --out {output} > {log} 2>&1"
