"""The latent analysis (Lancione 2025): silhouettes of codes and their
baselines, layout differences across seeds, the tables, and their figures.
An undefined value is NaN with its reason, never a plausible 0."""

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_samples, silhouette_score
from test_plots import data_lines, figures  # noqa: F401 (figures is a fixture)

from hourglass import plots
from hourglass.analyses.latent import latent_tables, layout_differences, pca_codes, silhouette


def test_silhouette_by_hand_and_by_scikit_learn():
    # class 0 at 0 and 1, class 1 at 4 and 6; s = (b - a) / max(a, b) with a the
    # mean distance to the own class, b to the other:
    codes = np.array([[0.0], [1.0], [4.0], [6.0]])
    labels = np.array([0, 0, 1, 1])
    by_hand = [(5 - 1) / 5,  # x=0: a = 1, b = (4 + 6) / 2
               (4 - 1) / 4,  # x=1: a = 1, b = (3 + 5) / 2
               (3.5 - 2) / 3.5,  # x=4: a = 2, b = (4 + 3) / 2
               (5.5 - 2) / 5.5]  # x=6: a = 2, b = (6 + 5) / 2
    score, samples, reason = silhouette(codes, labels)
    assert reason == ""
    assert samples == pytest.approx(by_hand, abs=1e-12)
    assert score == pytest.approx(np.mean(by_hand), abs=1e-12)
    assert samples == pytest.approx(silhouette_samples(codes, labels), abs=1e-12)
    assert score == pytest.approx(silhouette_score(codes, labels), abs=1e-12)


def test_silhouette_flattens_any_layer_shape():
    rng = np.random.default_rng(0)
    codes, labels = rng.normal(size=(12, 2, 3, 3)), np.repeat([0, 1, 2], 4)
    score, _, _ = silhouette(codes, labels)
    assert score == pytest.approx(silhouette_score(codes.reshape(12, -1), labels), abs=1e-12)


@pytest.mark.parametrize("codes, labels, why", [
    (np.arange(8.0).reshape(4, 2), [1, 1, 1, 1], "1 class"),
    (np.ones((4, 2)), [0, 0, 1, 1], "same code"),  # scikit-learn says 0
    (np.array([[0.0], [1.0], [np.nan], [3.0]]), [0, 0, 1, 1], "1 NaN"),
    (np.array([[0.0], [1.0], [np.inf], [3.0]]), [0, 0, 1, 1], "1 infinite"),
    (np.arange(3.0)[:, None], [0, 1, 2], "3 images for 3 classes"),
])
def test_undefined_silhouette_is_nan_with_its_reason(codes, labels, why):
    score, samples, reason = silhouette(codes, labels)
    assert np.isnan(score) and np.isnan(samples).all() and len(samples) == len(labels)
    assert why in reason


@pytest.mark.parametrize("n, p, k", [(50, 8, 3), (6, 20, 4)])
def test_pca_keeps_the_top_components(n, p, k):
    """The residual of the centred training data after projecting on k
    components and back is the variance of the discarded ones."""
    rng = np.random.default_rng(1)
    train = rng.normal(size=(n, p)) @ rng.normal(size=(p, p)) + 5.0
    codes = pca_codes(train, train, k)
    centred = train - train.mean(axis=0)
    loadings = np.linalg.lstsq(codes, centred, rcond=None)[0]  # V^T: the codes are centred @ V
    residual = ((centred - codes @ loadings) ** 2).sum()
    eigenvalues = np.linalg.eigvalsh(np.cov(centred.T))  # ascending
    assert residual == pytest.approx(eigenvalues[: p - k].sum() * (n - 1), abs=1e-8)


def test_pca_projects_probe_images_as_scikit_learn_does():
    rng = np.random.default_rng(2)
    train, probe = rng.normal(size=(40, 2, 5)), rng.normal(size=(7, 2, 5))
    ours = pca_codes(train, probe, 3)
    theirs = PCA(3, svd_solver="full").fit(train.reshape(40, -1)).transform(probe.reshape(7, -1))
    signs = np.sign((ours * theirs).sum(axis=0))  # a direction's sign is a convention
    assert ours == pytest.approx(theirs * signs, abs=1e-10)


@pytest.mark.parametrize("n, p, k", [(50, 8, 9), (6, 20, 7), (50, 8, 0)])
def test_pca_with_too_many_components_names_the_numbers(n, p, k):
    train = np.random.default_rng(0).normal(size=(n, p))
    with pytest.raises(ValueError, match=rf"PCA with {k} components.*min\({n}, {p}\) = {min(n, p)}"):
        pca_codes(train, train, k)


def rotation(d, seed=0):
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))[0]


def test_layout_differences_see_through_rotation_but_not_through_a_constant_code():
    codes = np.random.default_rng(3).normal(size=(30, 2))
    table = layout_differences({7: codes @ rotation(2) * 3 + 1, 2: codes, 5: codes,
                                4: np.zeros((30, 2))})
    assert list(zip(table["seed_a"], table["seed_b"])) == [
        (2, 4), (2, 5), (2, 7), (4, 5), (4, 7), (5, 7)]
    same = table[~table[["seed_a", "seed_b"]].isin([4]).any(axis=1)]
    assert same["procrustes_distance"].to_numpy() == pytest.approx(0, abs=1e-6)
    assert same["linear_cka"].to_numpy() == pytest.approx(1, abs=1e-12)
    assert (same["undefined"] == "").all()
    dead = table[table[["seed_a", "seed_b"]].isin([4]).any(axis=1)]
    assert dead[["procrustes_distance", "linear_cka"]].isna().all().all()
    assert dead["undefined"].str.contains("'seed 4' is constant").all()


def test_layout_differences_need_codes_of_the_same_images():
    with pytest.raises(ValueError, match="different numbers of images"):
        layout_differences({0: np.ones((5, 2)), 1: np.ones((6, 2))})


EPOCHS = ["4", "10", "final"]


@pytest.fixture
def tables():
    """3 seeds x 3 checkpoints of 2-unit codes of 24 probe images in 3 classes,
    given out of order; at epoch 4 seeds 1 and 2 are dead (constant codes)."""
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], 8)
    codes = {}
    for epoch in ["final", "10", "4"]:
        for seed in (2, 0, 1):
            dead = epoch == "4" and seed > 0
            codes[(seed, epoch)] = (np.zeros((24, 2)) if dead
                                    else rng.normal(size=(24, 2)) + 2 * labels[:, None])
    inputs = rng.normal(size=(24, 1, 4, 4)) + labels[:, None, None, None]
    return latent_tables(codes, labels, inputs, rng.normal(size=(60, 16))), labels


def test_latent_tables_have_the_documented_columns_and_rows(tables):
    tables, labels = tables
    assert {name: list(t.columns) for name, t in tables.items()} == {
        "silhouettes": ["seed", "epoch", "silhouette", "undefined"],
        "samples": ["seed", "epoch", "image", "label", "silhouette"],
        "baselines": ["baseline", "silhouette", "undefined"],
        "layouts": ["epoch", "seed_a", "seed_b", "procrustes_distance", "linear_cka", "undefined"],
        "spread": ["epoch", "n_seeds", "mean", "sd", "min", "max", "n_undefined", "procrustes_mean",
                   "procrustes_sd", "cka_mean", "cka_sd", "n_pairs_undefined", "undefined"]}
    silhouettes = tables["silhouettes"]
    assert list(zip(silhouettes["seed"], silhouettes["epoch"])) == [
        (s, e) for s in range(3) for e in EPOCHS]
    assert len(tables["samples"]) == 9 * 24
    assert list(tables["samples"]["label"][:24]) == list(labels)
    assert list(tables["baselines"]["baseline"]) == ["input", "pca"]
    assert tables["baselines"]["silhouette"].notna().all()
    assert list(tables["layouts"]["epoch"]) == [e for e in EPOCHS for _ in range(3)]
    assert list(tables["spread"]["epoch"]) == EPOCHS
    dead = silhouettes[silhouettes["silhouette"].isna()]
    assert list(zip(dead["seed"], dead["epoch"])) == [(1, "4"), (2, "4")]
    assert dead["undefined"].str.contains("same code").all()


def test_spread_is_pandas_mean_and_sd_of_the_defined_seeds(tables):
    tables, _ = tables
    silhouettes, layouts = tables["silhouettes"], tables["layouts"]
    for row in tables["spread"].itertuples():
        scores = silhouettes.loc[silhouettes["epoch"] == row.epoch, "silhouette"]
        pairs = layouts[layouts["epoch"] == row.epoch]
        assert row.n_seeds == 3 and row.n_undefined == scores.isna().sum()
        expected = [scores.mean(), scores.std(), scores.min(), scores.max(),
                    pairs["procrustes_distance"].mean(), pairs["procrustes_distance"].std(),
                    pairs["linear_cka"].mean(), pairs["linear_cka"].std()]
        got = [row.mean, row.sd, row.min, row.max, row.procrustes_mean, row.procrustes_sd,
               row.cka_mean, row.cka_sd]
        assert got == pytest.approx(expected, abs=1e-12, nan_ok=True)
    four = tables["spread"].iloc[0]  # one seed defined: a mean, no sd; no pair defined
    assert np.isfinite(four["mean"]) and np.isnan(four["sd"]) and np.isnan(four["procrustes_mean"])
    assert four["undefined"] == ("1 of 3 seeds' silhouettes defined: no sd; "
                                 "layouts: 0 of 3 seed pairs defined: no statistics")
    assert four["n_pairs_undefined"] == 3
    assert (tables["spread"]["undefined"][1:] == "").all()


@pytest.fixture
def samples():
    """`samples` of two variants at the final checkpoint; variant b's seed 1 undefined."""
    rng = np.random.default_rng(5)
    rows = []
    for variant in ("a", "b"):
        for seed in range(4):
            values = rng.uniform(-0.3, 0.9, size=10)
            if variant == "b" and seed == 1:
                values[:] = np.nan
            for epoch in ("0", "final"):
                rows.append(pd.DataFrame(dict(variant=variant, seed=seed, epoch=epoch,
                                              image=range(10), label=np.repeat([0, 1], 5),
                                              silhouette=values)))
    return pd.concat(rows, ignore_index=True)


def bar_widths(ax):
    return np.array([bar.get_width() for bar in ax.patches])


def left_marks(ax):
    """The 'x' marks drawn, not the legend's empty sample of one."""
    return [line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]


def test_silhouette_plot_draws_sorted_bars_and_leaves_undefined_seeds_blank(samples, figures):
    plots.silhouette_plot(samples, {"a": ["1", "7"], "b": ["2", "5"]}, [])
    axes = figures[0].axes
    titles = [f"{v}, seed {s}" for v in "ab" for s in range(3)]
    titles[4] += "\n(silhouette undefined)"
    assert [ax.get_title() for ax in axes if ax.get_visible()] == titles
    ax = axes[0]
    final = samples[(samples["variant"] == "a") & (samples["seed"] == 0) & (samples["epoch"] == "final")]
    widths = bar_widths(ax)
    assert len(widths) == 10
    for label in (0, 1):  # each class's bars sorted from the highest down
        own = np.sort(final.loc[final["label"] == label, "silhouette"])[::-1]
        assert list(widths[5 * label: 5 * label + 5]) == pytest.approx(own)
    (mean,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert mean.get_xdata()[0] == pytest.approx(final["silhouette"].mean())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "7"]
    assert ax.yaxis_inverted(), "the first class and the highest bars on top"
    undefined = axes[4]  # variant b, seed 1
    assert np.isnan(bar_widths(undefined)).all(), "undefined: no bars, not bars of 0"
    assert not [line for line in undefined.get_lines() if line.get_linestyle() == "--"]
    assert len(left_marks(undefined)) == 2  # one per class
    assert "undefined (see silhouettes.csv: undefined)" in [
        t.get_text() for t in undefined.get_legend().get_texts()]
    assert not left_marks(axes[3])


def test_silhouette_plot_of_chosen_seeds(samples, figures):
    plots.silhouette_plot(samples, ["x", "y"], [], seeds=[3])
    assert [ax.get_title() for ax in figures[0].axes] == ["a, seed 3", "b, seed 3"]


def test_latent_scatter_leaves_undefined_codes_out(figures):
    rng = np.random.default_rng(6)
    codes = {(v, s): rng.normal(size=(10, 2)) for v in ("a", "b") for s in range(2)}
    codes[("b", 1)][:] = np.nan
    labels = np.repeat([0, 1], 5)
    plots.latent_scatter(codes, {"a": labels, "b": labels[::-1]},
                         {"a": ["1", "7"], "b": ["5", "1"]}, [])
    fig = figures[0]
    assert all(ax.get_xlabel() == "unit 1" and ax.get_ylabel() == "unit 2" for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["1", "7", "5"]
    undefined = fig.axes[3]
    assert "10 of 10 codes undefined (not drawn)" in undefined.get_title()
    offsets = np.concatenate([c.get_offsets().filled(np.nan) for c in undefined.collections])
    assert np.isnan(offsets).all(), "an undefined code is no point, not a point at 0"
    # the same class name keeps its colour: '1' is label 0 in a, label 1 in b
    colour = {v: fig.axes[i].collections[lab].get_facecolor()[0] for v, i, lab in [("a", 0, 0), ("b", 2, 1)]}
    assert colour["a"] == pytest.approx(colour["b"])


def test_latent_scatter_needs_two_units(figures):
    with pytest.raises(ValueError, match="a seed 0: codes of shape \\(4, 3\\)"):
        plots.latent_scatter({("a", 0): np.zeros((4, 3))}, np.zeros(4, int), ["0"], [])


def test_silhouette_by_variant_marks_undefined_seeds_and_baselines(figures):
    silhouettes = pd.DataFrame(dict(variant=["a"] * 3 + ["b"] * 3 + ["a"], seed=[0, 1, 2] * 2 + [0],
                                    epoch=["final"] * 6 + ["0"],
                                    silhouette=[0.4, 0.5, np.nan, 0.3, 0.35, 0.32, 0.9]))
    baselines = pd.DataFrame(dict(variant=["a", "a", "b", "b"], data=["mnist17"] * 2 + ["mnist25"] * 2,
                                  baseline=["input", "pca"] * 2, silhouette=[0.1, 0.47, 0.12, np.nan]))
    plots.silhouette_by_variant(silhouettes, baselines, [])
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\n(mnist17)", "b\n(mnist25)"]
    seeds = [line for line in data_lines(ax) if line.get_marker() == "o"]
    assert np.isnan(seeds[0].get_ydata()[2]), "seed 2 of a: a gap, not 0"
    assert list(seeds[0].get_ydata()[:2]) == [0.4, 0.5]  # the final checkpoint only
    segments = [line for line in data_lines(ax) if len(line.get_xdata()) == 2]
    assert [line.get_label() for line in segments] == ["raw probe images", "exact PCA"] * 2
    assert segments[1].get_xdata() == pytest.approx([-0.35, 0.35])
    assert segments[1].get_ydata() == pytest.approx([0.47, 0.47])
    assert np.isnan(segments[3].get_ydata()).all()
    marks = [line for line in ax.get_lines() if line.get_marker() == "x" and line.get_xdata().size]
    assert sorted(x for m in marks for x in m.get_xdata()) == pytest.approx([0.15, 1.0])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["a seed (final checkpoint)", "raw probe images", "exact PCA",
                      "undefined (see silhouettes.csv, baselines.csv: undefined)"]
