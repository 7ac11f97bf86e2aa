"""The VAE family end to end on digits (tests/vae_tiny.yaml): the collapse
and dynamics analyses' tables against the recorded layers, their figures and
the finding on which layers are learned first."""

import numpy as np
import pandas as pd
import pytest

from hourglass.activations import describe, read_layer
from hourglass.similarity import linear_cka, procrustes
from hourglass.analyses import across_variants
from hourglass.analyses.collapse import dimension_rows, mean_sampled_cka
from conftest import snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(workflow_copy):
    root = workflow_copy("vae")
    snakemake(root, "--configfile", "vae_tiny.yaml")
    return root / "results" / "vae_tiny"


def test_collapse_tables_are_those_of_the_recorded_layers(study):
    collapse = pd.read_csv(study / "collapse" / "collapse.csv", dtype={"epoch": str})
    dimensions = pd.read_csv(study / "collapse" / "dimensions.csv", dtype={"epoch": str})
    assert len(collapse) == 2 * 2 * 3  # variants x seeds x checkpoints (0, 1, final)
    assert len(dimensions) == 4 * len(collapse)
    assert (collapse["latent"] == 4).all() and collapse["active_units"].between(0, 4).all()
    assert collapse["cka_mean_sampled"].between(0, 1).all()
    assert collapse["undefined"].isna().all()
    totals = dimensions.groupby(["variant", "seed", "epoch"])["kl"].sum()
    for _, row in collapse.iterrows():
        assert row["kl"] == pytest.approx(totals[(row["variant"], row["seed"], row["epoch"])])
    # one file read again by hand
    path = study / "tc8" / "seed1" / "activations" / "final.h5"
    assert describe(path)["record_from"] == "sampled"
    mean, logvar = read_layer(path, "mean"), read_layer(path, "logvar")
    expected = dimension_rows(mean, logvar, 0.01)
    got = dimensions[(dimensions["variant"] == "tc8") & (dimensions["seed"] == 1)
                     & (dimensions["epoch"] == "final")]
    assert got["kl"].to_numpy() == pytest.approx([r["kl"] for r in expected], rel=1e-8)
    row = collapse[(collapse["variant"] == "tc8") & (collapse["seed"] == 1)
                   & (collapse["epoch"] == "final")].iloc[0]
    cka, _ = mean_sampled_cka(mean, read_layer(path, "sampled"), "sampled")
    assert row["cka_mean_sampled"] == pytest.approx(cka, rel=1e-8)
    assert (study / "figures" / "collapse.png").stat().st_size > 1000
    metrics = pd.read_csv(study / "tc8" / "seed0" / "metrics.csv")
    assert {"train_tc", "val_tc", "test_kl3"} <= set(metrics.columns)


def test_a_dimension_whose_mean_ignores_the_image_is_inactive_with_its_kl():
    rng = np.random.default_rng(0)
    mean = np.column_stack([rng.normal(0, 1, 500), np.full(500, 0.5)])
    logvar = np.column_stack([np.full(500, np.log(0.1)), np.zeros(500)])
    rows = dimension_rows(mean, logvar, threshold=0.01)
    assert [r["active"] for r in rows] == [True, False]
    assert rows[1]["variance"] == 0 and rows[1]["kl"] == pytest.approx(0.5 * 0.25)
    expected = 0.5 * (np.mean(mean[:, 0] ** 2) + 0.1 - np.log(0.1) - 1)
    assert rows[0]["kl"] == pytest.approx(expected)


def test_the_cka_of_a_mean_recorded_as_the_sample_is_undefined_with_its_reason():
    mean = np.random.default_rng(0).normal(size=(50, 3))
    cka, reason = mean_sampled_cka(mean, mean, "mean")
    assert np.isnan(cka) and "record_from: mean" in reason
    cka, reason = mean_sampled_cka(np.ones((50, 3)), mean, "sampled")
    assert np.isnan(cka) and "constant across stimuli" in reason
    assert mean_sampled_cka(mean, mean, "sampled") == (pytest.approx(1.0), "")


def test_dynamics_compares_each_layer_across_checkpoints_of_one_seed(study):
    dynamics = pd.read_csv(study / "dynamics" / "dynamics.csv", dtype={"epoch_a": str,
                                                                       "epoch_b": str})
    layers = 10  # input, encoder1-2, mean, logvar, sampled, decoder1-2, logits, output
    # variants x seeds x layers x measures x pairs of the checkpoints 0, 1, final
    assert len(dynamics) == 2 * 2 * layers * 2 * 3
    assert set(zip(dynamics["epoch_a"], dynamics["epoch_b"])) == {("0", "1"), ("0", "final"),
                                                                  ("1", "final")}
    inputs = dynamics[dynamics["layer"] == "input"]
    assert inputs["value"].to_numpy() == pytest.approx(1.0) and inputs["undefined"].isna().all()
    runs = study / "beta1" / "seed0" / "activations"
    for measure, function in (("linear_cka", linear_cka), ("procrustes", procrustes)):
        row = dynamics[(dynamics["variant"] == "beta1") & (dynamics["seed"] == 0)
                       & (dynamics["layer"] == "encoder2") & (dynamics["measure"] == measure)
                       & (dynamics["epoch_a"] == "1") & (dynamics["epoch_b"] == "final")]
        expected = function(read_layer(runs / "epoch1.h5", "encoder2"),
                            read_layer(runs / "final.h5", "encoder2"))
        assert row["value"].iloc[0] == pytest.approx(expected, rel=1e-8)
    for figure in ("dynamics", "dynamics_heatmaps"):
        assert (study / "figures" / f"{figure}.png").stat().st_size > 1000, figure
    findings = pd.read_csv(study / "findings.csv")
    assert findings["check"].tolist() == ["encoder_learned_first", "cka_tracks_collapse",
                                          "encoder_alike_across_variants"]
    assert set(findings["held"]) <= {"yes", "no"}
    assert "between active units" in findings["measured"].iloc[1]
    assert "linear_cka to the final checkpoint at epoch 1: beta1: encoder" in (
        findings["measured"].iloc[0])


def test_across_variants_compares_every_layer_of_the_two_variants_at_the_final_checkpoint(
        study, tmp_path):
    pairs = pd.read_csv(study / "across_variants" / "pairs.csv")
    layers = pd.read_csv(study / "across_variants" / "layers.csv")
    representations = 2 * 2 * 10  # variants x seeds x layers, final checkpoint only
    assert len(pairs) == representations * (representations - 1) // 2
    assert set(pairs["measure"]) == {"linear_cka"} and pairs["undefined"].isna().all()
    final = {(v, s): study / v / f"seed{s}" / "activations" / "final.h5"
             for v in ("beta1", "tc8") for s in (0, 1)}
    row = pairs[(pairs["a_variant"] == "beta1") & (pairs["a_seed"] == 0)
                & (pairs["a_layer"] == "encoder1") & (pairs["b_variant"] == "tc8")
                & (pairs["b_seed"] == 1) & (pairs["b_layer"] == "mean")]
    assert row["a_role"].iloc[0] == "encoder" and row["b_role"].iloc[0] == "mean"
    expected = linear_cka(read_layer(final["beta1", 0], "encoder1"),
                          read_layer(final["tc8", 1], "mean"))
    assert row["value"].iloc[0] == pytest.approx(expected, rel=1e-8)
    # the summary: a layer against itself, same seed across the two variants
    same = layers[(layers["layer"] == "encoder2") & (layers["pairing"] == "same seed")].iloc[0]
    by_hand = [linear_cka(read_layer(final["beta1", s], "encoder2"),
                          read_layer(final["tc8", s], "encoder2")) for s in (0, 1)]
    assert same["mean"] == pytest.approx(np.mean(by_hand), rel=1e-8)
    assert same["sd"] == pytest.approx(np.std(by_hand, ddof=1), rel=1e-6)
    assert (same["pairs"], same["region"]) == (2, "encoder")
    counts = layers.groupby("pairing")["pairs"].first()
    assert counts.to_dict() == {"same seed": 2, "across seeds": 2, "seeds of one variant": 2}
    for figure in ("across_variants", "across_variants_heatmaps"):
        assert (study / "figures" / f"{figure}.png").stat().st_size > 1000
    findings = pd.read_csv(study / "findings.csv")
    assert findings["measured"].iloc[2].startswith("linear_cka, same seed: digits-")

    # variants recorded on other probe images are not compared
    out = {"pairs": tmp_path / "pairs.csv", "layers": tmp_path / "layers.csv"}
    settings = dict(measures=["linear_cka"], dtype="float64", device="cpu", max_memory_gb=None,
                    probes={"beta1": "digits-a", "tc8": "digits-b"})
    lines = []
    across_variants.run([str(p) for p in final.values()], settings, out, log=lines.append)
    assert pd.read_csv(out["pairs"]).empty and pd.read_csv(out["layers"]).empty
    assert lines == ["left out: beta1 is the only variant recorded on probe images digits-a",
                     "left out: tc8 is the only variant recorded on probe images digits-b"]
