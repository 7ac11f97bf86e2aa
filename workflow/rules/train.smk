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
    # A variant whose seeds train stacked has train_stacked instead.
    wildcard_constraints:
        variant=variant_pattern(v for v in VARIANTS if v not in STACKED),
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


# training.stack_seeds: every seed of the variant in one job (hourglass.stacked),
# writing the files the train rule writes for each. A seed added, removed
# or reordered in the config, or one seed's file deleted, re-trains the
# variant's whole stack: on a GPU a seed's rounding may depend on its stack.
rule train_stacked:
    input:
        data=lambda w: data_file(w.variant),
    output:
        checkpoints=expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/checkpoints/{{checkpoint}}.pt",
            seed=SEEDS,
            checkpoint=CHECKPOINTS,
            allow_missing=True,
        ),
        metrics=expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/metrics.csv",
            seed=SEEDS,
            allow_missing=True,
        ),
    log:
        f"{STUDY_DIR}/logs/train/{{variant}}/stacked.log",
    wildcard_constraints:
        variant=variant_pattern(STACKED),
    # No group: joined to every seed's activations, it would make the whole
    # variant one cluster submission; each activations job is one instead.
    conda:
        "../../envs/hourglass.yaml"
    threads: 1
    # Scaled by the attempt here, as the cluster profile scales train's: a job
    # killed for memory or time is retried with more.
    resources:
        # the data once, and each seed's model, Adam state and minibatch
        # activations: measured on CPU, 44 MiB a seed for the consistency
        # paper's fc on Fashion-MNIST, 200 MiB for a 3-level cae on 32 x 32
        mem_mb=lambda w, attempt: (3000 + 250 * len(SEEDS)) * attempt,
        # on a CPU the stack takes about as long as its seeds one by one
        runtime=lambda w, attempt: 120 * len(SEEDS) * attempt,
        gpu=lambda w: int(variant_training(w.variant)["device"] == "cuda"),
        # fail: one diverging seed stops the job, every seed of the variant with it
        on_divergence=lambda w: variant_training(w.variant)["on_divergence"],
    params:
        settings=lambda w: to_json(variant_settings(w.variant)),
        seeds=" ".join(map(str, SEEDS)),
        variant_dir=lambda w: f"{STUDY_DIR}/{w.variant}",
        code=code_hash("train_stacked"),
    shell:
        "hourglass train-stacked --data {input.data} --seeds {params.seeds}"
        " --variant-dir {params.variant_dir} --threads {threads}"
        " --on-divergence {resources.on_divergence}"
        " --settings {params.settings:q} > {log} 2>&1"
