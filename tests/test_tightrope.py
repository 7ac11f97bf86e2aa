"""Manakov et al.'s bottleneck study (the `losses` analysis and its findings):
its tables on hand-made metrics, its rank-sum tests against scipy, its
checks on hand-made grids, and the study end to end (tests/cae_tiny.yaml)."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from conftest import debian_packages, snakemake
from hourglass.analyses.losses import level_tests, run_rows
from hourglass.findings import (area_lowers_test_error, area_matters_more, area_speeds_training,
                                complete_not_a_copy)


def metrics(train, test):
    """A run's metrics.csv rows: epoch 0 (untrained) then one row per epoch."""
    return pd.DataFrame({"epoch": range(len(train)), "train_loss": train, "test_loss": test})


def test_a_runs_minimum_test_loss_and_first_epoch_under_the_threshold():
    # epoch 0 is the untrained model: its lower test loss is not a minimum of training
    row = run_rows(metrics([0.5, 0.2, 0.009, 0.004], [0.01, 0.3, 0.1, 0.2]), threshold=0.01)
    assert row == dict(min_test_loss=0.1, min_test_epoch=2, first_below=2, epochs=3, undefined="")
    never = run_rows(metrics([0.5, 0.2, 0.1], [0.4, 0.3, 0.35]), threshold=0.01)
    assert np.isnan(never["first_below"]) and never["min_test_epoch"] == 1
    assert never["undefined"] == "training loss never below 0.01 in 2 epochs"


def test_rank_sum_tests_are_scipys_between_every_two_levels():
    runs = pd.DataFrame({"area": ["S"] * 3 + ["M"] * 3 + ["L"] * 3,
                         "min_test_loss": [6, 5, 4, 3.5, 3, 2, 1, 0.5, np.nan]})
    tests = {(r["level_a"], r["level_b"]): r for r in level_tests(runs, "area", "min_test_loss")}
    assert list(tests) == [("S", "M"), ("S", "L"), ("M", "L")]
    # S above every L: U = 3 x 2, and the exact two-sided p of the most extreme
    # of C(5, 2) = 10 orderings, both tails
    assert tests["S", "L"]["statistic"] == 6 and tests["S", "L"]["p_value"] == pytest.approx(0.2)
    assert tests["S", "L"]["n_b"] == 2 and tests["S", "L"]["undefined"] == "1 runs undefined, left out"
    expected = mannwhitneyu([6, 5, 4], [3.5, 3, 2], alternative="two-sided")
    assert tests["S", "M"]["p_value"] == pytest.approx(expected.pvalue)
    assert tests["S", "M"]["median_a"] == 5 and tests["S", "M"]["median_b"] == 3


def grid(loss, first_below=None):
    """losses/runs.csv of 3 areas x 2 compressions x 2 seeds: `loss` (area ->
    its runs' minimum test losses, 4 each) and `first_below` likewise."""
    rows = []
    for area in "SML":
        for k, (compression, seed) in enumerate([(0.25, 0), (0.25, 1), (1.0, 0), (1.0, 1)]):
            rows.append(dict(variant=f"{area}_{compression}", seed=seed, area=area,
                             compression=compression, min_test_loss=loss[area][k],
                             first_below=np.nan if first_below is None else first_below[area][k]))
    return pd.DataFrame(rows)


FALLING = {"S": [0.040, 0.042, 0.039, 0.041], "M": [0.030, 0.031, 0.029, 0.030],
           "L": [0.020, 0.022, 0.019, 0.021]}


def test_area_lowers_the_test_loss_where_it_falls_significantly():
    text, held = area_lowers_test_error(grid(FALLING))
    assert held is True
    assert "area S: 0.0405 ± 0.0013 (n 4)" in text and "S vs L rank-sum p 0.0286" in text
    rising = {"S": FALLING["L"], "M": FALLING["M"], "L": FALLING["S"]}
    assert area_lowers_test_error(grid(rising))[1] is False
    text, held = area_lowers_test_error(grid(FALLING)[lambda t: t["area"] != "M"])
    assert held is None and text == "no runs at area M"


def test_area_lowers_the_test_loss_at_each_level_of_another_setting():
    # 2 runs per cell: no test of one cell alone reaches p < 0.05 (at least
    # 1/3), so the means fall in every cell and the rank-sum test pools them
    text, held = area_lowers_test_error(grid(FALLING), within="compression")
    assert held is True and text.startswith("compression 0.25: minimum test loss area S: 0.041")
    assert " | compression 1.0: " in text and text.endswith("S vs L rank-sum p 0.0286 (pooled)")
    dip = {**FALLING, "M": [0.030, 0.031, 0.015, 0.016]}  # pooled, M still above L
    assert area_lowers_test_error(grid(dip))[1] is True
    assert area_lowers_test_error(grid(dip), within="compression")[1] is False
    assert area_lowers_test_error(grid(FALLING), within="size")[0] == (
        "no grid setting 'size' in losses/runs.csv (analyses.losses.grid)")


def test_area_matters_more_than_channels():
    assert area_matters_more(grid(FALLING))[1] is True  # compression moves the means by 0.0005
    by_channels = {area: [0.02, 0.02, 0.04, 0.04] for area in "SML"}
    text, held = area_matters_more(grid(by_channels))
    assert held is False and "over compression 0.02 to 0.04 (range 0.02)" in text


def test_area_speeds_training_with_runs_that_never_got_there_counted_last():
    epochs = {"S": [np.nan, np.nan, 9, np.nan], "M": [6, 7, 6, 8], "L": [3, 4, 3, 3]}
    text, held = area_speeds_training(grid(FALLING, epochs))
    assert held is True and "area S: median epoch inf (3 of 4 runs never)" in text
    never = {area: [np.nan] * 4 for area in "SML"}
    assert area_speeds_training(grid(FALLING, never))[1] is None


def test_a_complete_cae_that_reconstructs_to_zero_error_is_a_copy():
    assert complete_not_a_copy(grid(FALLING))[1] is True
    copying = {area: [0.02, 0.02, 1e-6, 2e-6] for area in "SML"}
    text, held = complete_not_a_copy(grid(copying))
    assert held is False and "S_1.0 1.5e-06 (min 1e-06)" in text
    text, held = complete_not_a_copy(grid(FALLING), complete=0.5)
    assert held is None and "no runs with compression 0.5" in text


@pytest.mark.slow
def test_the_tightrope_study_end_to_end(workflow_copy):
    debian_packages("dataset-fashion-mnist")  # the outliers
    root = workflow_copy("tightrope")
    snakemake(root, "--configfile", "cae_tiny.yaml")
    study = root / "results" / "cae_tiny"
    runs = pd.read_csv(study / "losses" / "runs.csv")
    assert len(runs) == 4 * 2 and set(runs["area"]) == {"S", "M", "L"}
    assert set(runs["compression"]) == {0.25, 0.5}
    # one run by hand from its metrics
    own = pd.read_csv(study / "L_half" / "seed1" / "metrics.csv")
    trained = own[own["epoch"] >= 1]
    row = runs[(runs["variant"] == "L_half") & (runs["seed"] == 1)].iloc[0]
    assert row["min_test_loss"] == pytest.approx(trained["test_loss"].min())
    assert row["min_test_epoch"] == trained.loc[trained["test_loss"].idxmin(), "epoch"]
    curves = pd.read_csv(study / "losses" / "curves.csv")
    assert len(curves) == 8 * 3  # epochs 0, 1, 2 of every run
    tests = pd.read_csv(study / "losses" / "tests.csv")
    assert len(tests) == 2 * 3 + 2 * 1  # (min test loss, first epoch) x pairs of areas, of compressions
    outliers = pd.read_csv(study / "outliers" / "outliers.csv")
    assert len(outliers) == 8 and (outliers["inliers"] == 360).all()
    assert (outliers["outliers"] == 300).all() and outliers["auroc"].between(0, 1).all()
    # one seed's AUROC again from its model and both data files
    from hourglass.analyses.outliers import detection_row, image_errors
    from hourglass.checks import load_checkpoint
    from hourglass.data import load_split

    model, _ = load_checkpoint(study / "M_quarter" / "seed0" / "checkpoints" / "final.pt")
    data = {path.name: path for path in (study / "data").iterdir()}
    inliers = load_split(next(p for n, p in data.items() if n.startswith("digits")), "test")[0]
    ood = load_split(next(p for n, p in data.items() if n.startswith("fashion")), "test")[0]
    expected = detection_row(image_errors(model, inliers), image_errors(model, ood))
    row = outliers[(outliers["variant"] == "M_quarter") & (outliers["seed"] == 0)].iloc[0]
    assert row["auroc"] == pytest.approx(expected["auroc"], rel=1e-9)  # as the CSV holds it
    assert row["area"] == "M" and row["compression"] == 0.25
    findings = pd.read_csv(study / "findings.csv")
    assert list(findings["check"]) == ["area_lowers_test_error", "area_speeds_training",
                                       "small_area_detects_outliers", "codes_beat_pixels"]
    probes = pd.read_csv(study / "probes" / "probes.csv")
    # per variant: (2 seeds' codes + the pixels) x seen, unseen, one probe seed, the classes
    assert len(probes) == 4 * 3 * 2 and probes["value"].between(0, 1).all()
    assert (probes["metric"] == "macro_f1").all() and probes["undefined"].isna().all()
    assert set(findings["held"]) <= {"yes", "no", "undefined"}
    # the copy measures of one seed again from its model, on the first 200 test images
    from hourglass.analyses.copies import copy_row
    from hourglass.io import read_images

    copies = pd.read_csv(study / "copy" / "copy.csv")
    assert len(copies) == 8 and copies["svcca"].between(0, 1).all()
    expected = copy_row(model, inliers[:200], seed=0)
    row = copies[(copies["variant"] == "M_quarter") & (copies["seed"] == 0)].iloc[0]
    assert row["svcca"] == pytest.approx(expected["svcca"], rel=1e-9)
    assert row["linear_cka"] == pytest.approx(expected["linear_cka"], rel=1e-9)
    assert row["mse"] == pytest.approx(expected["mse"], rel=1e-6)
    # the walks: every variant in the config's order, each seed's grid
    for name, shape in (("interpolation", (1, 6, 1, 16, 16)), ("iteration", (2, 4, 1, 16, 16))):
        variants = read_images(study / name / f"{name}.h5")
        assert [attrs["variant"] for attrs, _ in variants] == list(runs["variant"].unique())
        assert all(grid.shape == shape for _, grids in variants for grid in grids.values())
    for figure in ("losses", "loss_curves", "outliers", "probes", "copy", "interpolation",
                   "iteration"):
        assert (study / "figures" / f"{figure}.png").stat().st_size > 10_000
    log = (study / "logs" / "train" / "S_quarter" / "seed0.log").read_text()
    assert "cae: " in log and " parameters" in log
    # probes of labelled images of their own (STL-10's for its unlabelled
    # split, here digits of other classes): its test split, unseen only, and
    # nothing retrained
    (root / "probe_data.yaml").write_text(
        "analyses: {probes: {data: {dataset: digits, pad: 4, classes: [0, 1, 2], "
        "probe_size: 30}}}\n")
    trained = study / "S_quarter" / "seed0" / "checkpoints" / "final.pt"
    before = trained.stat().st_mtime_ns
    snakemake(root, "--configfile", "cae_tiny.yaml", "probe_data.yaml")
    assert trained.stat().st_mtime_ns == before
    probes = pd.read_csv(study / "probes" / "probes.csv")
    assert len(probes) == 4 * 3 and set(probes["images"]) == {"unseen"}
    assert probes["value"].between(0, 1).all()


def test_outlier_scores_are_errors_clipped_at_1_and_their_auroc_by_hand():
    from hourglass.analyses.outliers import detection_row

    row = detection_row(np.array([0.1, 0.2, 0.3]), np.array([0.25, 0.4, 2.0]))
    # 8 of the 9 (inlier, outlier) pairs rank the outlier higher
    assert row["auroc"] == pytest.approx(8 / 9)
    assert row["outlier_error"] == pytest.approx(2.65 / 3)  # the mean before clipping
    assert row["clipped"] == pytest.approx(1 / 6)


def test_a_smaller_area_detects_outliers_better():
    from hourglass.findings import small_area_detects_outliers

    table = grid(FALLING).rename(columns={"min_test_loss": "auroc"})
    table["auroc"] = table["area"].map({"S": 0.9, "M": 0.8, "L": 0.6})
    text, held = small_area_detects_outliers(table)
    assert held is True and "area S: AUROC 0.900" in text
    table["auroc"] = table["area"].map({"S": 0.6, "M": 0.8, "L": 0.9})
    assert small_area_detects_outliers(table)[1] is False


def test_a_probe_reads_linearly_separable_labels_and_not_noise():
    from hourglass.analyses.probes import probe_scores

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 100)
    separable = rng.normal(size=(300, 5)) + 6 * np.eye(5)[y]  # class k shifted along axis k
    scores = probe_scores(separable, {"classes": y}, 0, "macro_f1")
    assert scores["classes"][0] == pytest.approx(1.0)
    noise = probe_scores(rng.normal(size=(300, 5)), {"classes": y}, 0, "macro_f1")
    assert noise["classes"][0] < 0.6
    binary = {"a": (y == 1).astype(int), "constant": np.zeros(300, int)}
    scores = probe_scores(separable, binary, 1, "auroc")
    assert scores["a"][0] == pytest.approx(1.0)
    assert np.isnan(scores["constant"][0]) and "one value only" in scores["constant"][1]
    rare = {"rare": np.r_[np.ones(4, int), np.zeros(296, int)]}  # too few for the 20 % shares
    value, why = probe_scores(separable, rare, 0, "auroc")["rare"]
    assert np.isnan(value) and why.startswith("value 1 has 4 of the 300 images, fewer than the 5")


def test_codes_beat_pixels_per_variant():
    from hourglass.findings import codes_beat_pixels

    rows = [dict(variant=v, features=f, images="unseen", metric="macro_f1", value=value)
            for v, code in (("S", 0.7), ("L", 0.5)) for f, value in (("code", code),
                                                                   ("pixels", 0.6))]
    text, held = codes_beat_pixels(pd.DataFrame(rows))
    assert held is False and text == ("macro_f1 on unseen images: S 0.700 vs pixels 0.600; "
                                      "L 0.500 vs pixels 0.600")


def test_a_run_that_diverged_has_no_minimum():
    row = run_rows(metrics([0.5, 0.2, float("nan")], [0.4, 0.3, float("inf")]), threshold=0.01)
    assert np.isnan(row["min_test_loss"]) and row["undefined"] == "diverged at epoch 2"
