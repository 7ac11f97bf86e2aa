# One rule per enabled analysis (hourglass.analyses.registry.ANALYSES). Of
# an analysis of variants, a job per variant reads what the analysis reads:
# every seed's activations at every checkpoint, the variant's data file (or
# the analysis's own), every seed's final checkpoint, the
# out-of-distribution data file; and
# writes the analysis's tables (and image files); a local job per table or
# image file gathers them over the variants. Of an analysis of the study, one job reads every
# variant's final activations, every seed's metrics, checkpoints (0 and
# final) or every variant's data file, as the analysis reads, and writes the
# study's tables.
for name in [a for a in ANALYSES_ENABLED if ANALYSES[a].scope == "variant"]:
    analysis = ANALYSES[name]

    rule:
        name:
            name
        input:
            activations=(
                expand(
                    f"{STUDY_DIR}/{{variant}}/seed{{seed}}/activations/{{checkpoint}}.h5",
                    seed=SEEDS,
                    checkpoint=CHECKPOINTS,
                    allow_missing=True,
                )
                if "activations" in analysis.reads
                else []
            ),
            data=lambda w, name=name, reads=analysis.reads: (
                analysis_data_file(name, "data", w.variant) if "data" in reads else []
            ),
            checkpoints=(
                expand(
                    f"{STUDY_DIR}/{{variant}}/seed{{seed}}/checkpoints/final.pt",
                    seed=SEEDS,
                    allow_missing=True,
                )
                if "checkpoints" in analysis.reads
                else []
            ),
            ood=analysis_data_file(name, "ood") if "ood" in analysis.reads else [],
        output:
            [
                f"{STUDY_DIR}/{analysis.folder}/{{variant}}/{analysis.file(output)}"
                for output in analysis.outputs
            ],
        log:
            f"{STUDY_DIR}/logs/{name}/{{variant}}.log",
        conda:
            "../../envs/hourglass.yaml"
        # Snakemake gives a job fewer threads under --cores 1; it computes with
        # SIMILARITY_THREADS all the same, since torch's sums depend on the
        # thread count and the tables must not depend on how the run was split.
        threads: SIMILARITY_THREADS
        # as the measure rule's: the all-pairs engine within its memory budget
        resources:
            mem_mb=int(1024 * (config["similarity"]["max_memory_gb"] or 8) + 2000),
            runtime=120,
            gpu=int(config["similarity"]["device"] == "cuda"),
        params:
            name=name,
            settings=to_json(analysis.settings(config)),
            threads=SIMILARITY_THREADS,
            code=code_hash(name),
        shell:
            "hourglass analysis {params.name} --activations {input.activations}"
            " --data {input.data} --checkpoints {input.checkpoints} --ood {input.ood}"
            " --threads {params.threads} --out {output}"
            " --settings {params.settings:q} > {log} 2>&1"

    rule:
        name:
            f"gather_{name}"
        input:
            expand(
                f"{STUDY_DIR}/{analysis.folder}/{{variant}}/{{{{output}}}}",
                variant=VARIANTS,
            ),
        output:
            f"{STUDY_DIR}/{analysis.folder}/{{output}}",
        log:
            f"{STUDY_DIR}/logs/gather_{name}/{{output}}.log",
        wildcard_constraints:
            output="|".join(re.escape(analysis.file(o)) for o in analysis.outputs),
        # Concatenating a few small tables: not worth a scheduler's queue.
        localrule: True
        conda:
            "../../envs/hourglass.yaml"
        params:
            code=code_hash(name),
        shell:
            "hourglass gather --files {input} --out {output} > {log} 2>&1"


for name in [a for a in ANALYSES_ENABLED if ANALYSES[a].scope == "study"]:
    analysis = ANALYSES[name]

    rule:
        name:
            name
        input:
            activations=(
                expand(
                    f"{STUDY_DIR}/{{variant}}/seed{{seed}}/activations/final.h5",
                    variant=VARIANTS,
                    seed=SEEDS,
                )
                if "activations" in analysis.reads
                else []
            ),
            metrics=(
                expand(
                    f"{STUDY_DIR}/{{variant}}/seed{{seed}}/metrics.csv",
                    variant=VARIANTS,
                    seed=SEEDS,
                )
                if "metrics" in analysis.reads
                else []
            ),
            untrained=(
                expand(
                    f"{STUDY_DIR}/{{variant}}/seed{{seed}}/checkpoints/epoch0.pt",
                    variant=VARIANTS,
                    seed=SEEDS,
                )
                if "untrained" in analysis.reads
                else []
            ),
            checkpoints=(
                expand(
                    f"{STUDY_DIR}/{{variant}}/seed{{seed}}/checkpoints/final.pt",
                    variant=VARIANTS,
                    seed=SEEDS,
                )
                if "checkpoints" in analysis.reads
                else []
            ),
            # one per variant, in their order (repeated where variants share a setting)
            data=[data_file(v) for v in VARIANTS] if "data" in analysis.reads else [],
        output:
            [
                f"{STUDY_DIR}/{analysis.folder}/{analysis.file(o)}"
                for o in analysis.outputs
            ],
        log:
            f"{STUDY_DIR}/logs/{name}.log",
        conda:
            "../../envs/hourglass.yaml"
        threads: SIMILARITY_THREADS
        resources:
            mem_mb=4000,
            runtime=60,
            gpu=int(analysis.settings(config).get("device") == "cuda"),
        params:
            name=name,
            settings=to_json(analysis.settings(config)),
            threads=SIMILARITY_THREADS,
            code=code_hash(name),
        shell:
            "hourglass analysis {params.name} --activations {input.activations}"
            " --metrics {input.metrics} --untrained {input.untrained}"
            " --checkpoints {input.checkpoints} --data {input.data}"
            " --threads {params.threads} --out {output}"
            " --settings {params.settings:q} > {log} 2>&1"
