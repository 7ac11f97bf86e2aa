rule figure:
    input:
        figure_inputs,
    output:
        expand(
            f"{STUDY_DIR}/figures/{{{{figure}}}}.{{fmt}}",
            fmt=config["figures"]["formats"],
        ),
    log:
        f"{STUDY_DIR}/logs/figures/{{figure}}.log",
    conda:
        "../envs/hourglass.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    params:
        settings=lambda w: to_json(
            {"dpi": config["figures"]["dpi"], **config["figures"].get(w.figure, {})}
        ),
        code=code_hash("figures"),
    shell:
        "python -m hourglass figure {wildcards.figure} --inputs {input} --out {output}"
        " --settings {params.settings:q} > {log} 2>&1"
