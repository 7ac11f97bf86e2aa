# The claims the study reproduces (config `findings:`), checked on the
# gathered tables they read: what was measured and whether each held. The
# report opens with it.
rule findings:
    input:
        [f"{STUDY_DIR}/{ANALYSES[a].folder}/{t}.csv" for a, t in FINDINGS_READS],
    output:
        report(
            f"{STUDY_DIR}/findings.csv",
            caption="../report/findings.rst",
            category="0. Findings",
            labels={"table": "the paper's claims, checked"},
        ),
    log:
        f"{STUDY_DIR}/logs/findings.log",
    localrule: True
    conda:
        "../../envs/hourglass.yaml"
    params:
        reads=to_json(FINDINGS_READS),
        findings=to_json(config["findings"]),
        code=code_hash("findings"),
    shell:
        "hourglass findings --tables {input} --reads {params.reads:q}"
        " --settings {params.findings:q} --out {output} > {log} 2>&1"
