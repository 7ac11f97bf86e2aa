def figure_inputs(w):
    if w.figure in ("consistency", "mds"):
        return f"{STUDY_DIR}/similarity/{w.figure}.csv"
    if w.figure.rsplit("_", 1)[0] in MEASURES:
        return f"{STUDY_DIR}/similarity/{w.figure.rsplit('_', 1)[0]}.h5"
    if w.figure == "training":
        return expand(
            f"{STUDY_DIR}/{{variant}}/seed{{seed}}/metrics.csv",
            variant=VARIANTS,
            seed=SEEDS,
        )
    # reconstructions: the probe images and the first seed's final output layer
    return [DATA_FILE] + expand(
        f"{STUDY_DIR}/{{variant}}/seed{SEEDS[0]}/activations/final.h5",
        variant=VARIANTS,
    )


rule figure:
    input:
        figure_inputs,
    output:
        expand(
            f"{STUDY_DIR}/figures/{{{{figure}}}}.{{fmt}}",
            fmt=config["figures"]["formats"],
        ),
    params:
        settings=lambda w: to_json(
            {"dpi": config["figures"]["dpi"], **config["figures"].get(w.figure, {})}
        ),
        code=code_hash("figures"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    log:
        f"{STUDY_DIR}/logs/figures/{{figure}}.log",
    shell:
        "python -m hourglass figure {wildcards.figure} --inputs {input} --out {output}"
        " --settings {params.settings:q} > {log} 2>&1"
