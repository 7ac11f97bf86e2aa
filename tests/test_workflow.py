"""The whole workflow, run by Snakemake on a tiny study, and what re-runs after an edit."""

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hourglass.config import data_key
from hourglass.io import read_matrix
from conftest import copy_of, snakemake

pytestmark = pytest.mark.slow
MEASURES = ("linear_cka", "procrustes")  # those of tiny.yaml
FIGURES = ("overview", "consistency", "mds", "clusters", "instance_mds", "training",
           "reconstructions") + tuple(
    f"{m}_{view}" for m in MEASURES for view in ("layers", "seeds", "epochs"))
ALL_FIGURE_JOBS = {("figure", f"figure={f}") for f in FIGURES}
# The consistency analysis's tables, each gathered over the variants by a job.
GATHER_CONSISTENCY = {("gather_consistency", f"output={t}.csv"): 1
                      for t in ("consistency", "mds", "clusters", "instance_mds", "mirrors")}
# results/{study}/config.yaml, the effective config: rewritten whenever the config changes
CONFIG_JOB = ("study_config", "")
# tiny.yaml's data setting in full, and the file it is prepared into
TINY_DATA = {"dataset": "digits", "classes": None, "first": None, "val_fraction": 0.1,
             "train_size": None, "probe_size": 60, "split_seed": 0}
TINY_DATA_FILE = f"results/tiny/data/{data_key(TINY_DATA)}.h5"


def planned_jobs(workdir, *configfiles):
    """{(rule, wildcards)} of the jobs a dry run of tiny.yaml (and `configfiles`)
    would run, `all` left out."""
    return planned_jobs_of(workdir, "tiny.yaml", *configfiles)


def planned_jobs_of(workdir, *configfiles):
    """{(rule, wildcards)} of the jobs a dry run of `configfiles` would run, `all` left out."""
    out = snakemake(workdir, "-n", "--configfile", *configfiles).stdout
    jobs, rule = [], None
    for line in out.splitlines():
        # jobs of a group are listed indented under "Group job ..."
        if m := re.match(r"\s*(?:local)?rule (\w+):$", line):
            rule = m.group(1)
            jobs.append((rule, ""))
        elif rule and (m := re.match(r"\s+wildcards: (.*)", line)):
            jobs[-1] = (rule, m.group(1))
    return Counter(j for j in jobs if j[0] != "all")


def planned_data_files(workdir, *configfiles):
    """{variant: the data file its planned training job reads}, from a dry run."""
    out = snakemake(workdir, "-n", "--configfile", "tiny.yaml", *configfiles).stdout
    inputs = {}
    for job in re.split(r"\n(?=\s*(?:local)?rule \w+:$)", out, flags=re.M):
        if re.match(r"\s*rule train:", job):
            variant = re.search(r"wildcards: variant=([^,]+),", job).group(1)
            inputs.setdefault(variant, set()).add(re.search(r"input: (\S+)", job).group(1))
    return inputs


@pytest.fixture(scope="module")
def study(tiny_study):
    """A copy of the workflow with the tiny study run to the end."""
    return tiny_study


def test_every_output_is_there_and_sane(study):
    out = study / "results" / "tiny"
    settings = yaml.safe_load((study / "tiny.yaml").read_text())
    variants, seeds = list(settings["variants"]), settings["seeds"]
    checkpoints = ["epoch0", "epoch2", "final"]
    for variant in variants:
        for seed in seeds:
            run = out / variant / f"seed{seed}"
            assert (run / "metrics.csv").exists()
            for checkpoint in checkpoints:
                assert (run / "checkpoints" / f"{checkpoint}.pt").exists()
                with h5py.File(run / "activations" / f"{checkpoint}.h5") as f:
                    assert f.attrs["seed"] == seed and f.attrs["checkpoint"] == checkpoint
                    assert len(f["layers/input"]) == settings["data"]["probe_size"]
    rc = pd.read_csv(out / "similarity" / "consistency.csv", dtype={"epoch": str})
    assert {"variant", "epoch", "layer", "layer_index", "rc", "rc_sq", "rc_low", "rc_high"} <= set(rc)
    n_layers = 7  # input, 2 encoder, bottleneck, 2 decoder, output
    assert len(rc) == len(variants) * len(checkpoints) * n_layers
    assert set(rc["epoch"]) == {"0", "2", "final"}
    assert (rc.loc[rc["layer"] == "input", ["rc", "rc_low", "rc_high"]] == 1).all().all()
    # NaN (e.g. a seed whose layers after the bottleneck are dead) exactly where a reason is
    # given; an empty reason reads as NaN
    defined = rc["undefined"].isna()
    assert rc.loc[defined, ["rc", "rc_sq", "rc_low", "rc_high"]].notna().all().all()
    assert rc.loc[~defined, ["rc", "rc_low", "rc_high"]].isna().any(axis=1).all()
    assert rc["rc"].dropna().between(-1, 1).all()
    assert (rc.loc[defined, "rc_low"] <= rc.loc[defined, "rc_high"]).all()
    mds = pd.read_csv(out / "similarity" / "mds.csv", dtype={"epoch": str})
    assert len(mds) == n_layers * len(seeds) * len(variants) * len(checkpoints)
    assert (mds[["x", "y"]].isna().all(axis=1) == mds["undefined"].notna()).all()
    clusters = pd.read_csv(out / "similarity" / "clusters.csv", dtype={"epoch": str})
    keys = ["variant", "epoch", "layer"]
    both = rc.merge(clusters, on=keys)
    assert len(both) == len(rc) == len(clusters)
    # a layer's spread across seeds is the mean of 1 - r over seed pairs: 1 - RC
    defined = both["rc"].notna()
    assert np.allclose(both.loc[defined, "cluster_spread"], 1 - both.loc[defined, "rc"])
    last = clusters.groupby(["variant", "epoch"])["layer_index"].transform("max")
    assert clusters.loc[clusters["layer_index"] == last, "next_distance"].isna().all()
    inner = clusters[(clusters["layer_index"] < last) & clusters["undefined"].isna()]
    assert inner["next_distance"].between(0, 2).all()
    assert clusters.loc[clusters["undefined"].notna(), "next_distance"].isna().all()
    n_representations = len(rc) * len(seeds)  # rc: a row per variant, checkpoint and layer
    for measure in MEASURES:
        matrix, labels = read_matrix(out / "similarity" / f"{measure}.h5")
        assert matrix.shape == (n_representations, n_representations)
        assert set(labels["layer"]) == set(rc["layer"]) and set(labels["seed"]) == set(seeds)
        alive = ~labels["constant"].to_numpy()
        assert np.isfinite(matrix[np.ix_(alive, alive)]).all()
        assert np.allclose(np.diag(matrix)[alive], 1)
        pairs = pd.read_csv(out / "similarity" / f"{measure}.csv")
        assert len(pairs) == n_representations * (n_representations - 1) // 2
        assert (pairs["value"].isna() == pairs["undefined"].notna()).all()
    for figure in FIGURES:
        png = out / "figures" / f"{figure}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    effective = yaml.safe_load((out / "config.yaml").read_text())
    assert effective["seeds"] == seeds and effective["variants"]["latent8"]["training"]["lr"] == 0.002
    assert effective["training"]["loss"] == "mse", "defaults are filled in"
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"


def test_nothing_changed_nothing_runs(study):
    assert planned_jobs(study) == Counter()


def test_the_effective_config_records_what_each_variant_trained_with(study):
    """Each variant's settings in full, as its training job received them (not the
    schema's defaults filled into its overrides), and run again as the study's only
    config file, the written config plans nothing."""
    out = study / "results" / "tiny"
    effective = yaml.safe_load((out / "config.yaml").read_text())
    for variant in ("latent4", "latent8"):
        checkpoint = torch.load(out / variant / "seed0" / "checkpoints" / "final.pt",
                                weights_only=True)
        recorded = effective["variants"][variant]["model"]
        assert {k: recorded[k] for k in checkpoint["model"]} == checkpoint["model"]
        assert recorded["widths"] == [32, 16]  # tiny.yaml's, not the schema's [512, 256, ...]
    jobs = snakemake(study, "-n", "--configfile", "results/tiny/config.yaml").stdout
    assert "Nothing to be done" in jobs, jobs


@pytest.mark.parametrize("missing", ["latent4/seed0/checkpoints/final.pt", "latent8/seed1"])
def test_a_deleted_result_comes_back(study, tmp_path, missing):
    path = study / "results" / "tiny" / missing
    path.rename(tmp_path / "moved")
    try:
        jobs = planned_jobs(study)
    finally:
        (tmp_path / "moved").rename(path)
    variant, seed = missing.split("/")[:2]
    assert jobs[("train", f"variant={variant}, seed={seed[4:]}")] == 1
    assert jobs[("consistency", f"variant={variant}")] == 1


def test_jobs_run_with_the_interpreter_that_runs_snakemake(workflow_copy):
    """The README's `.venv/bin/snakemake ...` with no venv activated: the jobs'
    `python` must not be whichever comes first on PATH."""
    root = workflow_copy("no_venv_on_path")
    venv_bin = Path(sys.executable).parent
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if Path(p).resolve() != venv_bin.resolve())
    result = subprocess.run(
        [str(venv_bin / "snakemake"), "--cores", "1", "--configfile", "tiny.yaml",
         "--", TINY_DATA_FILE], cwd=root, capture_output=True, text=True,
        env=dict(os.environ, PATH=path))
    log = root / "results" / "tiny" / "logs" / "data" / f"{data_key(TINY_DATA)}.log"
    assert result.returncode == 0, result.stderr + (log.read_text() if log.exists() else "")
    assert (root / TINY_DATA_FILE).exists()


def test_touching_the_code_runs_nothing(study):
    for path in (study / "src").rglob("*.py"):
        path.touch()
    (study / "Snakefile").touch()
    assert planned_jobs(study) == Counter()


def test_figure_option_reruns_only_that_figure(study, tmp_path):
    override = tmp_path / "dpi.yaml"
    override.write_text("figures: {reconstructions: {per_class: 2}}\n")
    assert planned_jobs(study, str(override)) == Counter({("figure", "figure=reconstructions"): 1,
                                                          CONFIG_JOB: 1})
    override.write_text("figures: {dpi: 61}\n")
    assert set(planned_jobs(study, str(override))) == ALL_FIGURE_JOBS | {CONFIG_JOB}


def test_where_the_data_comes_from_reruns_only_the_config_record(study, tmp_path):
    override = tmp_path / "root.yaml"
    override.write_text("data: {root: /elsewhere, download: true}\n")
    assert planned_jobs(study, str(override)) == Counter({CONFIG_JOB: 1})


def variant_rerun(variant):
    """The jobs an edit of one variant's settings re-runs: its seeds' training and
    activations, its consistency, and the study-wide tables, measures and figures."""
    jobs = Counter({("consistency", f"variant={variant}"): 1, **GATHER_CONSISTENCY,
                    CONFIG_JOB: 1})
    for measure in MEASURES:
        jobs[("measure", f"measure={measure}")] = 1
    for seed in (0, 1, 2):
        jobs[("train", f"variant={variant}, seed={seed}")] = 1
        jobs[("activations", f"variant={variant}, seed={seed}")] = 1
    for job in ALL_FIGURE_JOBS:
        jobs[job] = 1
    return jobs


@pytest.mark.parametrize("setting", [
    "lr: 0.003", "weight_decay: 0.0001", "objective: {name: denoising, noise_std: 0.3}"])
def test_one_variants_training_setting_reruns_that_variant_only(study, tmp_path, setting):
    override = tmp_path / "training.yaml"
    override.write_text(f"variants: {{latent8: {{training: {{{setting}}}}}}}\n")
    assert planned_jobs(study, str(override)) == variant_rerun("latent8")


def test_a_variants_stacked_seeds_train_in_one_job_into_the_same_files(study, tmp_path):
    """training.stack_seeds: one train_stacked job in place of the variant's
    train jobs, before what follows them; it writes each seed's files, the
    very bytes the seeds trained one by one wrote (an fc model, on CPU)."""
    override = tmp_path / "stack.yaml"
    override.write_text("variants: {latent8: {training: {stack_seeds: true}}}\n")
    expected = variant_rerun("latent8")
    for seed in (0, 1, 2):
        del expected[("train", f"variant=latent8, seed={seed}")]
    expected[("train_stacked", "variant=latent8")] = 1
    assert planned_jobs(study, str(override)) == expected
    root = copy_of(study, tmp_path / "copy")
    files = [f"results/tiny/latent8/seed{seed}/checkpoints/{name}.pt"
             for seed in (0, 1, 2) for name in ("epoch0", "epoch2", "final")]
    alone = {path: (root / path).read_bytes() for path in files}
    snakemake(root, *files, "--configfile", "tiny.yaml", str(override))
    assert "seed 2: epoch 3" in (root / "results/tiny/logs/train/latent8/stacked.log").read_text()
    assert {path: (root / path).read_bytes() for path in files} == alone


def test_one_variants_data_setting_reruns_that_variant_only(study, tmp_path):
    """A training-set size of its own: a data file of its own, and that variant's
    jobs, the study-wide tables and the figures re-run; the other variant keeps
    the file it has."""
    override = tmp_path / "size.yaml"
    override.write_text("variants: {latent8: {data: {train_size: 500}}}\n")
    expected = variant_rerun("latent8")
    expected[("data", f"data={data_key({**TINY_DATA, 'train_size': 500})}")] = 1
    assert planned_jobs(study, str(override)) == expected


def test_variants_with_other_classes_get_their_own_data_file(workflow_copy):
    """Two class pairs: two data files, each read by its variants' jobs; equal
    settings (written or by default) share one file and one data job."""
    root = workflow_copy("classes")
    tiny = yaml.safe_load((root / "tiny.yaml").read_text())
    # no measures: they compare variants on the same probe images (merged
    # config files cannot take tiny.yaml's away, hence an edited copy)
    tiny["similarity"]["measures"] = {}
    tiny["variants"] = {"latent4": {"data": {"classes": [1, 7]}},
                        "latent8": {"data": {"classes": [1, 7]}, "model": {"latent": 8}},
                        "pair49": {"data": {"classes": [4, 9], "probe_size": None}}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    one_seven = data_key({**TINY_DATA, "classes": [1, 7]})
    four_nine = data_key({**TINY_DATA, "classes": [4, 9], "probe_size": None})
    jobs = planned_jobs(root)
    assert {wildcards for rule, wildcards in jobs if rule == "data"} == {
        f"data={one_seven}", f"data={four_nine}"}
    assert jobs[("data", f"data={one_seven}")] == 1
    assert planned_data_files(root) == {
        "latent4": {f"results/tiny/data/{one_seven}.h5"},
        "latent8": {f"results/tiny/data/{one_seven}.h5"},
        "pair49": {f"results/tiny/data/{four_nine}.h5"}}


def edited(path):
    """Append a comment to a module, and put it back afterwards."""
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    return original


@pytest.mark.parametrize("module,expected", [
    ("plots.py", ALL_FIGURE_JOBS),
    # the overview draws RC and the first measure
    ("analyses/comparisons.py", {("measure", f"measure={m}") for m in MEASURES} | {
        ("figure", f"figure={m}_{view}") for m in MEASURES for view in ("layers", "seeds", "epochs")}
        | {("figure", "figure=overview")}),
    ("analyses/consistency.py", {("consistency", "variant=latent4"),
                                 ("consistency", "variant=latent8"), *GATHER_CONSISTENCY,
                                 ("figure", "figure=consistency"), ("figure", "figure=mds"),
                                 ("figure", "figure=clusters"), ("figure", "figure=instance_mds"),
                                 ("figure", "figure=overview")}),
])
def test_editing_a_stages_code_reruns_that_stage_and_what_follows(study, module, expected):
    path = study / "src" / "hourglass" / module
    original = edited(path)
    try:
        assert set(planned_jobs(study)) == expected
    finally:
        path.write_text(original)
    assert planned_jobs(study) == Counter()
