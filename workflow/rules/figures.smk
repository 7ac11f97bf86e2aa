# The report shows the PNG (the schema makes png one of the formats); the
# other formats are written beside it.
rule figure:
    input:
        figure_inputs,
    output:
        report(
            f"{STUDY_DIR}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category=figure_category,
            subcategory=figure_subcategory,
            labels=figure_labels,
        ),
        expand(
            f"{STUDY_DIR}/figures/{{{{figure}}}}.{{fmt}}",
            fmt=[fmt for fmt in config["figures"]["formats"] if fmt != "png"],
        ),
    log:
        f"{STUDY_DIR}/logs/figures/{{figure}}.log",
    conda:
        "../../envs/hourglass.yaml"
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
        "hourglass figure {wildcards.figure} --inputs {input} --out {output}"
        " --settings {params.settings:q} > {log} 2>&1"
