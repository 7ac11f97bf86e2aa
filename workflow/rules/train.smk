rule train:
    input:
        data=lambda w: data_file(w.variant),
    output:
        checkpoints=expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/checkpoints/{{checkpoint}}.pt",
            checkpoint=CHECKPOINTS,
            allow_missing=True,
        ),
        metrics=f"{STUDY_DIR}/{{variant}}/seed{{seed}}/metrics.csv",
    log:
        f"{STUDY_DIR}/logs/train/{{variant}}/seed{{seed}}.log",
    # One submission per variant and seed on a cluster: this seed's training
    # and its activations (same group, connected) run in one job, so a study
    # queues one job per seed instead of two. Inactive in local runs.
    group:
        "seed_run"
    conda:
        "../../envs/hourglass.yaml"
    # Threads are the same under every executor (the cluster's cpus per
    # task are these): torch's sums may depend on the thread count.
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,
        # One GPU per job for variants that train on CUDA; none otherwise.
        gpu=lambda w: int(variant_training(w.variant)["device"] == "cuda"),
        # Resources, unlike params, are no re-run trigger: switching it re-runs
        # only the seeds that failed.
        on_divergence=lambda w: variant_training(w.variant)["on_divergence"],
    params:
        settings=lambda w: to_json(variant_settings(w.variant)),
        out_dir=run_dir,
        code=code_hash("train"),
    shell:
        "hourglass train --data {input.data} --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --threads {threads}"
        " --on-divergence {resources.on_divergence}"
        " --settings {params.settings:q} > {log} 2>&1"
