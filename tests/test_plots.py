"""Figures draw an undefined value (NaN) as a gap and an 'x' with a legend
entry, never as a point at 0 or as a mean over fewer seeds."""

import numpy as np
import pandas as pd
import pytest

from hourglass import plots

LAYERS = ["input", "encoder1", "bottleneck1", "output"]
REGIONS = ["input", "encoder", "bottleneck", "output"]  # of the layers' roles
UNDEFINED = 2  # bottleneck1: RC undefined; in the measure, undefined in seed 2


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions draw, kept open instead of saved."""
    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, paths, dpi=150: drawn.append(fig))
    return drawn


@pytest.fixture
def table():
    """consistency.csv of one variant, two checkpoints: bottleneck1 undefined."""
    rows = []
    for epoch in ("0", "final"):
        for index, layer in enumerate(LAYERS):
            rc = np.nan if index == UNDEFINED else 0.9 - 0.1 * index
            rows.append(dict(variant="latent1", epoch=epoch, layer=layer, layer_index=index,
                             region=REGIONS[index], n_seeds=3, seeds_excluded=0, rc=rc, rc_sq=rc**2, rc_low=rc - 0.05,
                             rc_high=rc + 0.05, undefined="1 unit: correlation RDM undefined"
                             if index == UNDEFINED else ""))
    return pd.DataFrame(rows)


@pytest.fixture
def measure():
    """A measure over 3 seeds x LAYERS at the final checkpoint; bottleneck1 of
    seed 2 undefined (its row and column NaN), as comparisons.compare writes it."""
    labels = pd.DataFrame([dict(variant="latent1", seed=s, epoch="final", trained_epochs=2,
                                layer=layer, layer_index=i, region=REGIONS[i]) for s in range(3)
                           for i, layer in enumerate(LAYERS)])
    matrix = np.full((len(labels), len(labels)), 0.5)
    np.fill_diagonal(matrix, 1)
    dead = labels.index[(labels["seed"] == 2) & (labels["layer"] == "bottleneck1")]
    matrix[dead, :] = matrix[:, dead] = np.nan
    labels["constant"] = labels.index.isin(dead)
    labels["undefined"] = np.where(labels["constant"], "dead layer (every probe image alike)", "")
    return matrix, labels


def data_lines(ax):
    """The lines of values: in data coordinates, labelled, not an empty legend entry."""
    return [line for line in ax.get_lines() if line.get_transform() == ax.transData
            and not line.get_label().startswith("_") and len(line.get_xdata())]


def assert_undefined_marked(ax, x, table):
    """At x: every value line NaN (a gap, not 0) and an 'x' mark; the legend says where to look."""
    for line in data_lines(ax):
        if x in list(line.get_xdata()):
            assert np.isnan(line.get_ydata()[list(line.get_xdata()).index(x)]), line.get_label()
    marks = [line for line in ax.get_lines()
             if line.get_marker() == "x" and line.get_transform() != ax.transData]
    assert any(x in list(m.get_xdata()) for m in marks), "an 'x' marks the undefined value"
    legend = ax.get_legend()
    assert f"undefined (see {table}: undefined)" in [t.get_text() for t in legend.get_texts()]


def test_consistency_figure(table, figures):
    plots.consistency(table, [])
    ax = figures[0].axes[0]
    assert len(data_lines(ax)) == 2  # a line per checkpoint
    assert_undefined_marked(ax, UNDEFINED, "consistency.csv")
    defined = [y for line in data_lines(ax) for i, y in enumerate(line.get_ydata()) if i != UNDEFINED]
    assert np.isfinite(defined).all()


def test_overview(table, measure, figures):
    plots.overview(table, ("linear_cka", *measure), [])
    rc_axis, measure_axis = figures[0].axes[:2]
    assert_undefined_marked(rc_axis, UNDEFINED, "consistency.csv")
    # one seed's bottleneck1 undefined: undefined across seeds, not the mean of the other pair
    assert_undefined_marked(measure_axis, UNDEFINED, "linear_cka.csv")
    (line,) = data_lines(measure_axis)
    assert np.delete(line.get_ydata(), UNDEFINED) == pytest.approx(0.5)


def test_measure_figures(measure, figures):
    matrix, labels = measure
    plots.measure_seeds(matrix, labels, "linear_cka", [])
    assert_undefined_marked(figures[0].axes[0], UNDEFINED, "linear_cka.csv")
    plots.measure_epochs(matrix, labels, "linear_cka", [])
    ax = figures[1].axes[0]
    marks = [line for line in ax.get_lines() if line.get_marker() == "x" and line.get_xdata().size]
    assert len(marks) == 1, "bottleneck1's single checkpoint is marked"
    assert "undefined (see linear_cka.csv: undefined)" in [t.get_text() for t in ax.get_legend().get_texts()]
    plots.measure_layers(matrix, labels, "linear_cka", [])
    ax = figures[2].axes[0]
    image = ax.get_images()[0].get_array()
    assert image.mask[UNDEFINED].all() and image.mask[:, UNDEFINED].all()  # blank, not 0
    assert not np.delete(np.delete(image.mask, UNDEFINED, 0), UNDEFINED, 1).any()
    assert "undefined" in ax.get_title()


def test_reconstructions_of_variants_on_other_classes_get_a_panel_each(
        digits_file, two_seeds, tmp_path, figures):
    """Variants recorded on different data files (here all digits, and 1 and 7
    only) show each their own probe images above their reconstructions."""
    from hourglass.activations import record
    from hourglass.data import prepare

    pair = tmp_path / "pair.h5"
    prepare("digits", "unused", False, 0.1, None, None, 0, pair, classes=[1, 7])
    record(two_seeds / "seed0" / "checkpoints" / "final.pt", pair, tmp_path / "pair.final.h5")
    plots.draw("reconstructions", [digits_file, two_seeds / "seed0" / "activations" / "final.h5",
                                   pair, tmp_path / "pair.final.h5"], [], {})
    axes = figures[0].axes
    assert len(axes) == 4 * 10  # input and output rows of each file, a column per class
    assert [ax.get_title() for ax in axes if ax.get_title()] == [str(c) for c in range(10)] + ["1", "7"]
    assert [ax.get_ylabel() for ax in axes if ax.get_ylabel()] == ["input", "small"] * 2
    assert sum(bool(ax.get_images()) for ax in axes) == 2 * 10 + 2 * 2


def shaded(ax):
    """{region: x of its label} of the regions labelled on `ax`, and how many are shaded."""
    return {t.get_text(): t.get_position()[0] for t in ax.texts}, len(ax.patches)


def test_regions_come_from_the_roles_not_the_names(table, figures):
    """Layers whose names say nothing are shaded by the region of their role."""
    names = {"input": "pixels", "encoder1": "h", "bottleneck1": "z", "output": "recon"}
    plots.consistency(table.replace({"layer": names}), [])
    labels, spans = shaded(figures[0].axes[0])
    assert labels == {"encoder": 1, "bottleneck": 2} and spans == 2


def test_overview_merges_architectures_by_region(table, figures):
    """An fc variant and a linear one (input, code, output) on one axis: the
    code sits in the bottleneck region, after the encoder."""
    linear = table[table["layer"] != "encoder1"].replace({"layer": {"bottleneck1": "code"}})
    linear = linear.assign(variant="linear", layer_index=linear["layer_index"].map({0: 0, 2: 1, 3: 2}))
    layers, regions = plots.merged_layers(pd.concat([table, linear]))
    assert layers == ["input", "encoder1", "bottleneck1", "code", "output"]
    assert regions == ["input", "encoder", "bottleneck", "bottleneck", "output"]
    plots.overview(pd.concat([table, linear]), None, [])
    labels, _ = shaded(figures[0].axes[0])
    assert labels == {"encoder": 1, "bottleneck": 2.5}


def test_dynamics_heatmaps_draw_every_pair_of_checkpoints_averaged_over_seeds(figures):
    """Checkpoints 0, 1, final of two seeds: each cell the mean of the seeds'
    values, mirrored; a pair undefined in one seed NaN (grey), not the other
    seed's value; the diagonal, never measured, no value but white; a layer
    a variant lacks left blank."""
    pairs = [("0", "1"), ("0", "final"), ("1", "final")]
    rows = []
    for variant, layers in (("beta1", ["encoder1", "decoder1"]), ("linear", ["encoder1"])):
        for seed in (0, 1):
            for index, layer in enumerate(layers):
                for k, (a, b) in enumerate(pairs):
                    value = 0.1 * (k + 1) + 0.2 * seed
                    if (variant, seed, layer, a, b) == ("beta1", 1, "decoder1", "0", "1"):
                        value = np.nan
                    rows.append(dict(variant=variant, seed=seed, layer=layer, layer_index=index,
                                     region="encoder", measure="linear_cka", epoch_a=a,
                                     epoch_b=b, value=value))
    plots.dynamics_heatmaps(pd.DataFrame(rows), [])
    axes = [ax for ax in figures[0].axes if ax.get_images()]
    assert [ax.get_title() for ax in axes] == ["encoder1", "decoder1", "encoder1"]
    encoder, decoder, _ = (np.ma.filled(ax.get_images()[0].get_array(), np.nan) for ax in axes)
    np.testing.assert_allclose(encoder, [[np.nan, 0.2, 0.3], [0.2, np.nan, 0.4],
                                         [0.3, 0.4, np.nan]])
    assert np.isnan(decoder[0, 1]) and np.isnan(decoder[1, 0])
    assert decoder[0, 2] == pytest.approx(0.3)
    white = [p.get_xy() for p in axes[0].patches if p.get_facecolor()[:3] == (1, 1, 1)]
    assert sorted(white) == [(-0.5, -0.5), (0.5, 0.5), (1.5, 1.5)]
