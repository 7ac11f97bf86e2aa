"""A seed that diverges: by default the workflow stops naming it; with
training.on_divergence: exclude it is recorded, left out of the statistics,
and switching re-runs only that seed."""

from collections import Counter

import pandas as pd
import pytest

from hourglass.io import read_matrix
from conftest import copy_of, snakemake
from test_workflow import ALL_FIGURE_JOBS, GATHER_CONSISTENCY, MEASURES, planned_jobs

pytestmark = [pytest.mark.slow, pytest.mark.faults]
# Under tiny.yaml's settings this learning rate sends seed 1 of latent4 (and
# no other) to an infinite loss in its first epoch: deterministic on CPU.
DIVERGING = "variants: {latent4: {model: {latent: 4}, training: {lr: 1500000.0}}}\n"


def test_diverged_seed_fails_or_is_excluded(tiny_study, tmp_path):
    """The tiny study, run, then latent4's learning rate raised."""
    root = copy_of(tiny_study, tmp_path / "diverging")
    (root / "diverging.yaml").write_text(DIVERGING)
    out = root / "results" / "tiny"
    gathered = (out / "similarity" / "consistency.csv").read_bytes()
    failed = snakemake(root, "--configfile", "tiny.yaml", "diverging.yaml", "--keep-going",
                       check=False)
    assert failed.returncode != 0
    log = (out / "logs" / "train" / "latent4" / "seed1.log").read_text()
    assert "variant 'latent4' seed 1 diverged at epoch 1" in log and "Lower training.lr" in log
    assert not (out / "latent4" / "seed1" / "checkpoints" / "final.pt").exists()
    assert (out / "similarity" / "consistency.csv").read_bytes() == gathered, \
        "the study's tables are not gathered past the failed seed"

    (root / "exclude.yaml").write_text("training: {on_divergence: exclude}\n")
    configs = ("diverging.yaml", "exclude.yaml")
    expected = Counter({("train", "variant=latent4, seed=1"): 1,
                        ("activations", "variant=latent4, seed=1"): 1,
                        ("consistency", "variant=latent4"): 1, **GATHER_CONSISTENCY,
                        ("study_config", ""): 1})
    expected.update({("measure", f"measure={m}"): 1 for m in MEASURES})
    # every figure but the reconstructions, which show seed 0 only
    expected.update(ALL_FIGURE_JOBS - {("figure", "figure=reconstructions")})
    assert planned_jobs(root, *configs) == expected, "switching re-trains only the failed seed"

    done = snakemake(root, "--configfile", "tiny.yaml", *configs)
    assert "hourglass: study 'tiny' is complete." in done.stdout + done.stderr
    assert "figures  results/tiny/figures/" in done.stdout + done.stderr
    assert "report   snakemake --report results/tiny/report.html" in done.stdout + done.stderr
    rc = pd.read_csv(out / "similarity" / "consistency.csv")
    counts = rc.groupby("variant")[["n_seeds", "seeds_excluded"]].agg(set)
    assert counts.loc["latent4"].tolist() == [{2}, {1}]
    assert counts.loc["latent8"].tolist() == [{3}, {0}]
    assert "left out, diverged: latent4 seed 1" in (out / "logs" / "consistency" / "latent4.log").read_text()
    for measure in MEASURES:
        _, labels = read_matrix(out / "similarity" / f"{measure}.h5")
        seeds = labels.groupby("variant")["seed"].agg(set)
        assert seeds["latent4"] == {0, 2} and seeds["latent8"] == {0, 1, 2}
    metrics = pd.read_csv(out / "latent4" / "seed1" / "metrics.csv")
    assert metrics["epoch"].tolist() == [0, 1] and not metrics["val_loss"].iloc[1] < float("inf")
    assert planned_jobs(root, *configs) == Counter()
    assert planned_jobs(root, "diverging.yaml") == Counter({("study_config", ""): 1}), \
        "switching back re-runs nothing but the effective config"
