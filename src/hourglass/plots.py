"""Figures of a study. Each function takes tables or arrays and the paths to
write (one per format, e.g. .png and .pdf) and draws one figure."""

import numbers
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hourglass.activations import epoch_order, output_layer, repeat_of  # noqa: E402
from hourglass.analyses.registry import ANALYSES  # noqa: E402
from hourglass.checks import check_activation_files  # noqa: E402
from hourglass.findings import first_layers, inverted_layers  # noqa: E402
from hourglass.data import load_split  # noqa: E402
from hourglass.io import (  # noqa: E402
    atomic_path,
    open_h5,
    read_json_attr,
    read_matrix,
    read_output,
    read_table,
)

# Okabe & Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
REGION_SHADE = {"encoder": "#0072B2", "bottleneck": "#D55E00", "decoder": "#009E73"}

plt.rcParams.update({
    "figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10,
    "axes.spines.top": False, "axes.spines.right": False, "axes.prop_cycle":
    matplotlib.cycler(color=PALETTE), "legend.frameon": False,
})


def save(fig, paths, dpi=150):
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], bbox_inches="tight", dpi=dpi)
    plt.close(fig)


def epoch_label(epoch):
    return "final" if epoch == "final" else f"epoch {epoch}"


def epoch_colours(epochs):
    """A colour per checkpoint along a sequential map; 'final' is black."""
    ordered = epoch_order(epochs)
    numbered = [e for e in ordered if e != "final"]
    cmap = plt.get_cmap("viridis")
    colours = {e: cmap(i / max(len(numbered) - 1, 1) * 0.9) for i, e in enumerate(numbered)}
    colours["final"] = "black"
    return {e: colours[e] for e in ordered}


def shade_regions(ax, regions):
    """Shade the encoder, bottleneck and decoder layers (`regions`: each
    layer's region, in axis order) and label them on top."""
    for region, colour in REGION_SHADE.items():
        idx = [i for i, r in enumerate(regions) if r == region]
        if idx:
            ax.axvspan(min(idx) - 0.5, max(idx) + 0.5, color=colour, alpha=0.08, lw=0)
            ax.text((min(idx) + max(idx)) / 2, 1.0, region, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", color=colour, fontsize=8)


def layer_axis(ax, layers):
    ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right")
    ax.set_xlim(-0.5, len(layers) - 0.5)


def layer_order(rows):
    """The layers of one network's table rows in order, and their regions
    (the tables' `region` column, from the layers' roles)."""
    layers = rows.sort_values("layer_index").drop_duplicates("layer")
    return list(layers["layer"]), list(layers["region"])


def layer_panels(table):
    """A figure with a panel per variant whose x axis is its layers, regions
    shaded: the figure, its axes, and (axis, variant, rows, layers) per panel."""
    variants = list(dict.fromkeys(table["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.6),
                             sharey=True, squeeze=False)
    panels = []
    for ax, variant in zip(axes[0], variants):
        rows = table[table["variant"] == variant]
        layers, regions = layer_order(rows)
        shade_regions(ax, regions)
        layer_axis(ax, layers)
        panels.append((ax, variant, rows, layers))
    return fig, axes, panels


# An undefined value (NaN, e.g. RC of a dead or one-unit layer) is a gap in
# its line and an 'x' at the foot of the axis, never a point at 0.
UNDEFINED_MARK = dict(ls="", marker="x", ms=5, mew=1.2)
# Heatmaps of a measure's values; an undefined cell (NaN) is grey.
HEATMAP_CMAP = plt.get_cmap("viridis").with_extremes(bad="lightgrey")


def mark_undefined(ax, x, y, colour):
    """An 'x' at the foot of `ax` at each x whose y is NaN; whether there was any."""
    undefined = np.isnan(np.asarray(y, dtype=float))
    if undefined.any():
        ax.plot(np.asarray(x, dtype=float)[undefined], np.zeros(undefined.sum()), color=colour,
                transform=ax.get_xaxis_transform(), clip_on=False, **UNDEFINED_MARK)
    return bool(undefined.any())


def undefined_legend_entry(ax, table):
    """The legend entry of mark_undefined's 'x': where the reasons are."""
    ax.plot([], [], color="grey", label=f"undefined (see {table}: undefined)", **UNDEFINED_MARK)


def seed_count(seeds, diverged):
    """'5 seeds', or '4 seeds, 1 diverged and excluded'."""
    text = f"{int(seeds)} seed" + ("" if seeds == 1 else "s")
    return text + f", {int(diverged)} diverged and excluded" if diverged else text


def consistency(table, paths, dpi=150):
    """RC per layer: a panel per variant, a line per checkpoint, bootstrap interval shaded."""
    fig, axes, panels = layer_panels(table)
    colours = epoch_colours(table["epoch"])
    undefined = False
    for ax, variant, rows, layers in panels:
        for epoch, colour in colours.items():
            line = rows[rows["epoch"] == epoch].sort_values("layer_index")
            if line.empty:
                continue
            ax.fill_between(line["layer_index"], line["rc_low"], line["rc_high"],
                            color=colour, alpha=0.2, lw=0)
            ax.plot(line["layer_index"], line["rc"], marker="o", ms=3, color=colour,
                    label=epoch_label(epoch))
            undefined |= mark_undefined(ax, line["layer_index"], line["rc"], colour)
        ax.set_title(f"{variant} ({seed_count(rows['n_seeds'].iloc[0], rows['seeds_excluded'].iloc[0])})",
                     pad=14)
        ax.axhline(0, color="grey", lw=0.5)
    axes[0, 0].set_ylabel("representational consistency\n(mean Pearson r of RDMs across seeds,\n"
                          "band: bootstrap interval over probe images)")
    if undefined:
        undefined_legend_entry(axes[0, -1], "consistency.csv")
    axes[0, -1].legend(loc="lower left", fontsize=8)
    save(fig, paths, dpi)


def clusters_figure(table, paths, dpi=150):
    """Per variant at the final checkpoint: each layer's spread across seeds
    (the mean second-order dissimilarity between two seeds' RDMs of it)
    against its mean distance to the next layer (Durbha et al., Fig. 2b)."""
    fig, axes, panels = layer_panels(table[table["epoch"] == "final"])
    undefined = False
    for ax, variant, rows, layers in panels:
        rows = rows.sort_values("layer_index")
        for column, label, colour in (("cluster_spread", "within the layer (across seeds)",
                                       PALETTE[0]),
                                      ("next_distance", "to the next layer", PALETTE[3])):
            ax.plot(rows["layer_index"], rows[column], marker="o", ms=3, color=colour,
                    label=label)
            shown = rows[:-1] if column == "next_distance" else rows  # the last has no next
            undefined |= mark_undefined(ax, shown["layer_index"], shown[column], colour)
        ax.set_title(variant, pad=14)
    axes[0, 0].set_ylabel("mean second-order dissimilarity\n(1 − Pearson r of two RDMs)")
    if undefined:
        undefined_legend_entry(axes[0, -1], "clusters.csv")
    axes[0, -1].legend(loc="upper left", fontsize=8)
    save(fig, paths, dpi)


def instances_figure(table, paths, dpi=150):
    """RC per layer at the final checkpoint from nested subsets of the seeds:
    a panel per variant, a line per subset size (the mean over subsets), a
    band of ± one standard deviation over the subsets."""
    fig, axes, panels = layer_panels(table)
    sizes = sorted(set(table["instances"]))
    colours = plt.cm.viridis(np.linspace(0, 0.85, len(sizes)))
    for ax, variant, rows, layers in panels:
        for colour, size in zip(colours, sizes):
            stats = rows[rows["instances"] == size].groupby("layer_index")["rc"] \
                .agg(["mean", "std"]).reset_index()
            ax.fill_between(stats["layer_index"], stats["mean"] - stats["std"],
                            stats["mean"] + stats["std"], color=colour, alpha=0.2, lw=0)
            ax.plot(stats["layer_index"], stats["mean"], marker="o", ms=3, color=colour,
                    label=f"{size} instances")
            mark_undefined(ax, stats["layer_index"], stats["mean"], colour)
        ax.set_title(f"{variant} ({rows['subset'].nunique()} subsets per size)", pad=14)
    axes[0, 0].set_ylabel("representational consistency\n(band: ± sd over subsets)")
    axes[0, -1].legend(loc="lower left", fontsize=8)
    save(fig, paths, dpi)


def instance_mds_figure(table, paths, dpi=150, seed=None):
    """MDS of one seed's layers at the final checkpoint (Durbha et al., Figs.
    7 and 8): a column per variant; the top row with the input and output,
    the bottom row without them. Each point a layer, joined from input to
    output, coloured by region; `seed` None: the first seed."""
    rows = table[table["epoch"] == "final"]
    seed = int(rows["seed"].min()) if seed is None else seed
    rows = rows[rows["seed"] == seed]
    # a seed that diverged in every variant has no layers to draw: one empty
    # panel says so
    variants = list(dict.fromkeys(rows["variant"])) or [f"seed {seed}: none (diverged)"]
    fig, axes = plt.subplots(2, len(variants), squeeze=False, layout="constrained",
                             figsize=(3.2 * len(variants), 6.2))
    for column, variant in zip(axes.T, variants):
        for ax, kind in zip(column, ("all", "inner")):
            panel = rows[(rows["variant"] == variant) & (rows["layers"] == kind)]
            panel = panel.sort_values("layer_index")
            colours = region_colours(list(panel["layer"]), list(panel["region"]))
            ax.plot(panel["x"], panel["y"], color="grey", lw=0.6, zorder=1)
            for _, point in panel.iterrows():
                ax.scatter(point["x"], point["y"], s=22, color=colours[point["layer"]], zorder=2,
                           edgecolor="white", linewidth=0.3)
                ax.annotate(point["layer"], (point["x"], point["y"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
            left_out = int(panel["x"].isna().sum())
            ax.set_title(f"{variant}, seed {seed}" + (", no input/output" if kind == "inner" else "")
                         + (f"\n{left_out} undefined (left out)" if left_out else ""), fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal", adjustable="datalim")
    fig.supxlabel("MDS dimension 1 (one seed's layers: 1 - r between their RDMs)")
    fig.supylabel("MDS dimension 2")
    save(fig, paths, dpi)


def mds(table, paths, dpi=150):
    """MDS of layers x seeds: a panel per variant and checkpoint; colour per layer,
    each seed's layers joined in order from input to output. Layers whose RDM
    is undefined have no point (x, y NaN: a gap in their seed's path); the
    panel's title counts them."""
    variants = list(dict.fromkeys(table["variant"]))
    epochs = epoch_order(table["epoch"])
    fig, axes = plt.subplots(len(variants), len(epochs), squeeze=False,
                             figsize=(3.2 * len(epochs) + 1.5, 3.0 * len(variants)))
    cmap = plt.get_cmap("viridis")
    for row, variant in zip(axes, variants):
        for ax, epoch in zip(row, epochs):
            panel = table[(table["variant"] == variant) & (table["epoch"] == epoch)]
            layers = list(panel.sort_values("layer_index")["layer"].drop_duplicates())
            for _, seed_rows in panel.groupby("seed"):
                seed_rows = seed_rows.sort_values("layer_index")
                ax.plot(seed_rows["x"], seed_rows["y"], color="grey", lw=0.5, alpha=0.6, zorder=1)
            for i, layer in enumerate(layers):
                pts = panel[panel["layer"] == layer]
                ax.scatter(pts["x"], pts["y"], s=14, color=cmap(i / max(len(layers) - 1, 1)),
                           label=layer, zorder=2, edgecolor="white", linewidth=0.3)
            left_out = int(panel["x"].isna().sum())
            note = f"\n{left_out} undefined (left out)" if left_out else ""
            ax.set_title(f"{variant}, {epoch_label(epoch)}{note}")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal", adjustable="datalim")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, title="layer")
    fig.supxlabel("MDS dimension 1 (second-order RDM: 1 - r between layer RDMs)")
    fig.supylabel("MDS dimension 2")
    save(fig, paths, dpi)


# metrics.csv's loss columns, as the training figure draws them
LOSS_LINES = {"train_loss": ("train", PALETTE[0], "-"), "val_loss": ("validation", PALETTE[1], "-"),
              "test_loss": ("test", PALETTE[2], "--")}


def training(metrics, paths, dpi=150):
    """Training, validation and test loss per epoch: a panel per variant, a line per seed."""
    variants = list(dict.fromkeys(metrics["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(4 * len(variants), 3.2),
                             sharey=True, squeeze=False)
    for ax, variant in zip(axes[0], variants):
        rows = metrics[metrics["variant"] == variant]
        runs = rows.groupby("seed")
        finite = np.isfinite(rows[list(LOSS_LINES)]).all(axis=1)
        diverged = (~finite).groupby(rows["seed"]).any().sum()
        for column, (label, color, style) in LOSS_LINES.items():
            for _, run in runs:
                ax.plot(run["epoch"], run[column], color=color, ls=style, lw=0.8, alpha=0.7)
            ax.plot([], [], color=color, ls=style, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{variant} ({seed_count(rows['seed'].nunique() - diverged, diverged)})")
    axes[0, 0].set_ylabel("loss (training.objective)")
    axes[0, 0].legend()
    save(fig, paths, dpi)


def reconstructions(panels, paths, dpi=150, per_class=1):
    """Probe images and each variant's reconstructions below them.

    panels: one per data file, (inputs, labels, classes, outputs) with inputs
    N x C x H x W in [0, 1] and outputs {variant: N x C x H x W, or None where
    the seed diverged} of the variants recorded on it. Shows the first
    `per_class` probe images of every class.
    """
    picks = [[i for c in np.unique(labels) for i in np.flatnonzero(labels == c)[:per_class]]
             for _, labels, _, _ in panels]
    n_rows = sum(1 + len(outputs) for *_, outputs in panels)
    n_cols = max(map(len, picks))
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False,
                             figsize=(0.9 * n_cols + 1.2, 0.95 * n_rows))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    row = iter(axes)
    for (inputs, labels, classes, outputs), picked in zip(panels, picks):
        for n, (name, images) in enumerate({"input": inputs, **outputs}.items()):
            ax_row = next(row)
            for ax, i in zip(ax_row, picked):
                if n == 0:
                    ax.set_title(classes[labels[i]], fontsize=7)
                if images is not None:
                    image = np.clip(np.moveaxis(images[i], 0, -1), 0, 1)
                    ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None,
                              vmin=0, vmax=1)
            label = name if images is not None else f"{name}\n(diverged)"
            ax_row[0].set_ylabel(label, rotation=0, ha="right", va="center")
    save(fig, paths, dpi)


def draw(kind, inputs, paths, settings):
    """Draw figure `kind` from the pipeline's files `inputs` into `paths`."""
    dpi = settings.get("dpi", 150)
    if kind == "overview":
        table, *measure_file = inputs
        measure = None
        if measure_file:
            matrix, labels = read_matrix(measure_file[0])
            measure = (Path(measure_file[0]).stem, matrix, labels)
        overview(read_table(table), measure, paths, dpi)
    elif kind in ANALYSIS_FIGURES:
        options = {k: v for k, v in settings.items() if k != "dpi"}
        globals()[ANALYSIS_FIGURES[kind].draw](*map(read_output, inputs), paths, dpi, **options)
    elif kind == "training":
        training(pd.concat([pd.read_csv(p) for p in inputs]), paths, dpi)
    elif kind == "reconstructions":
        reconstructions(reconstruction_panels(inputs), paths, dpi,
                        per_class=settings.get("per_class", 1))
    elif kind.rsplit("_", 1)[-1] in MEASURE_FIGURES:
        measure, view = kind.rsplit("_", 1)
        matrix, labels = read_matrix(inputs[0])
        MEASURE_FIGURES[view](matrix, labels, measure, paths, dpi)
    else:
        known = ["overview", "training", "reconstructions", *ANALYSIS_FIGURES]
        raise ValueError(f"unknown figure {kind!r}; known: {', '.join(known)} and "
                         f"<measure>_{{{','.join(MEASURE_FIGURES)}}}")


def reconstruction_panels(inputs):
    """`reconstructions`' panels from its inputs: a data file and an activation
    file per variant, the variants that share a data file in one panel."""
    files = {}
    for data, path in zip(inputs[::2], inputs[1::2]):
        files.setdefault(data, []).append(path)
    panels = []
    for data, activation_files in files.items():
        x, y = load_split(data, "probe")
        with open_h5(data, "dataset") as f:
            classes = read_json_attr(f, "classes")
        outputs = {}
        # one data file's activations hold its probe images: check them together
        for path, attrs in zip(activation_files, check_activation_files(activation_files)):
            with open_h5(path, "activations") as f:
                outputs[attrs["variant"]] = (None if attrs["diverged"]
                                             else f["layers"][output_layer(attrs)][()])
        panels.append((x.numpy(), y.numpy(), classes, outputs))
    return panels


# The analyses' figures by name (hourglass.analyses.registry): `draw` names
# the function here that draws each from the analysis's tables.
ANALYSIS_FIGURES = {name: figure for analysis in ANALYSES.values()
                    for name, figure in analysis.figures.items()}


def measure_layers(matrix, labels, measure, paths, dpi=150):
    """Layer x layer similarity within each network at its final checkpoint,
    averaged over seeds: a heatmap per variant (mirror structure shows as an
    anti-diagonal). A cell undefined in any seed is grey with an 'x'."""
    variants = list(dict.fromkeys(labels["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(5.2 * len(variants), 4.2), squeeze=False,
                             layout="constrained")
    for ax, variant in zip(axes[0], variants):
        final = labels[(labels["variant"] == variant) & (labels["epoch"] == "final")]
        layers = list(final.sort_values("layer_index")["layer"].drop_duplicates())
        stack = []
        for _, run in final.groupby("seed"):
            idx = run.sort_values("layer_index").index.to_numpy()
            stack.append(matrix[np.ix_(idx, idx)])
        mean = np.mean(stack, axis=0)
        image = ax.imshow(mean, cmap=HEATMAP_CMAP)
        rows, cols = np.nonzero(np.isnan(mean))
        ax.plot(cols, rows, color="black", **UNDEFINED_MARK)
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right")
        ax.set_yticks(range(len(layers)), layers)
        ax.set_title(f"{variant}, final ({len(stack)} seeds)" + (
            f"\nx: undefined (see {measure}.csv: undefined)" if len(rows) else ""))
        fig.colorbar(image, ax=ax, shrink=0.8, label=measure)
    save(fig, paths, dpi)


def measure_seeds(matrix, labels, measure, paths, dpi=150):
    """Each layer compared with the same layer of the other seeds: mean over
    seed pairs with ±1 standard deviation, a line per checkpoint; undefined
    (see across_seeds) where any pair is."""
    fig, axes, panels = layer_panels(labels)
    colours = epoch_colours(labels["epoch"])
    undefined = False
    for ax, variant, rows, layers in panels:
        for epoch, colour in colours.items():
            means, sds = across_seeds(matrix, rows, epoch, layers)
            ax.fill_between(range(len(layers)), means - sds, means + sds, color=colour,
                            alpha=0.2, lw=0)
            ax.plot(range(len(layers)), means, marker="o", ms=3, color=colour,
                    label=epoch_label(epoch))
            undefined |= mark_undefined(ax, range(len(layers)), means, colour)
        ax.set_title(f"{variant} ({rows['seed'].nunique()} seeds)", pad=14)
    axes[0, 0].set_ylabel(f"{measure}, same layer across seeds")
    if undefined:
        undefined_legend_entry(axes[0, -1], f"{measure}.csv")
    axes[0, -1].legend(fontsize=8)
    save(fig, paths, dpi)


def measure_epochs(matrix, labels, measure, paths, dpi=150):
    """Each layer at each checkpoint compared with itself at the final one
    (same seed), averaged over seeds: which layers settle first. Undefined
    where any seed's value is (a mean over every seed, or none)."""
    variants = list(dict.fromkeys(labels["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.4),
                             sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    key = ["seed", "layer"]
    undefined = False
    for ax, variant in zip(axes[0], variants):
        rows = labels[labels["variant"] == variant]
        final = rows[rows["epoch"] == "final"].reset_index().set_index(key)["index"]
        layers = list(rows.sort_values("layer_index")["layer"].drop_duplicates())
        epochs = epoch_order(rows["epoch"])
        for i, layer in enumerate(layers):
            curve = []
            for epoch in epochs:
                sel = rows[(rows["epoch"] == epoch) & (rows["layer"] == layer)]
                values = [matrix[a, final[(s, layer)]] for a, s in zip(sel.index, sel["seed"])]
                curve.append(np.mean(values) if values else np.nan)
            colour = cmap(i / max(len(layers) - 1, 1))
            ax.plot(range(len(epochs)), curve, marker="o", ms=3, label=layer, color=colour)
            undefined |= mark_undefined(ax, range(len(epochs)), curve, colour)
        ax.set_xticks(range(len(epochs)), epochs)
        ax.set_xlabel("checkpoint (epoch)")
        ax.set_title(variant)
    axes[0, 0].set_ylabel(f"{measure} to the final checkpoint")
    if undefined:
        undefined_legend_entry(axes[0, -1], f"{measure}.csv")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, title="layer")
    save(fig, paths, dpi)


MEASURE_FIGURES = {"layers": measure_layers, "seeds": measure_seeds, "epochs": measure_epochs}


def per_variant(value, variant):
    """`value[variant]` where `value` is given per variant (a dict), else `value`:
    variants trained on different classes have their own labels and names."""
    return value[variant] if isinstance(value, dict) else value


def silhouette_bars(ax, rows, names):
    """Rousseeuw's silhouette plot of one code on `ax`: a horizontal bar per
    probe image, grouped by class, each class sorted from the highest down;
    a dashed line at the mean. NaN silhouettes are no bars (a gap) and an 'x'
    per class on the left edge. Whether any was NaN."""
    start, centres, undefined = 0, [], False
    for label in sorted(rows["label"].unique()):
        values = rows.loc[rows["label"] == label, "silhouette"].sort_values(ascending=False)
        y = start + np.arange(len(values))
        colour = PALETTE[label % len(PALETTE)]
        ax.barh(y, values, height=1.0, color=colour, lw=0)
        nan = values.isna().to_numpy()
        if nan.any():  # one mark per class: one per image would pile up into a bar
            ax.plot([0], [y[nan].mean()], color=colour, transform=ax.get_yaxis_transform(),
                    clip_on=False, **UNDEFINED_MARK)
            undefined = True
        centres.append((y.mean() if len(y) else start, names[label]))
        start += len(values) + max(len(rows) // 20, 2)  # a gap between classes
    mean = rows["silhouette"].mean(skipna=False)  # a mean over every image, or none
    if np.isfinite(mean):
        ax.axvline(mean, color="black", ls="--", lw=1, label=f"mean {mean:.2f}")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_yticks([c for c, _ in centres], [n for _, n in centres])
    ax.set_ylim(start, -1)  # the first class on top, as Rousseeuw draws it
    ax.set_xlim(-1, 1)
    return undefined


def silhouette_plot(samples, classes, paths, dpi=150, seeds=None):
    """Silhouette plots (Rousseeuw 1987) at the final checkpoint: a panel per
    variant (rows) and seed (columns), by default each variant's first three
    seeds.

    samples: the latent analysis' `samples` tables of several variants with
    a `variant` column; classes: class names indexed by label, or a dict of
    them per variant. A seed whose silhouettes are undefined has no bars and
    an 'x' per class on the left edge, with a legend entry.
    """
    final = samples[samples["epoch"] == "final"]
    variants = list(dict.fromkeys(final["variant"]))
    chosen = {v: list(seeds) if seeds is not None
              else sorted(final.loc[final["variant"] == v, "seed"].unique())[:3] for v in variants}
    n_cols = max(map(len, chosen.values()))
    fig, axes = plt.subplots(len(variants), n_cols, squeeze=False, layout="constrained",
                             figsize=(3.2 * n_cols, 2.8 * len(variants)))
    for row, variant in zip(axes, variants):
        for ax, seed in zip(row, chosen[variant]):
            rows = final[(final["variant"] == variant) & (final["seed"] == seed)]
            ax.set_title(f"{variant}, seed {seed}")
            ax.set_xlabel("silhouette (Euclidean)")
            if rows.empty:
                ax.set_title(f"{variant}, seed {seed}\n(no final codes)")
                continue
            if silhouette_bars(ax, rows, per_variant(classes, variant)):
                ax.set_title(f"{variant}, seed {seed}\n(silhouette undefined)")
                undefined_legend_entry(ax, "silhouettes.csv")
            ax.legend(loc="upper left", fontsize=7)  # the top class's bars start positive
        for ax in row[len(chosen[variant]):]:
            ax.set_visible(False)
        row[0].set_ylabel("probe images, by class")
    save(fig, paths, dpi)


def latent_scatter(codes, labels, classes, paths, dpi=150):
    """Two-unit codes of the probe images: a panel per variant (rows) and seed
    (columns), a colour per class (the same class name keeps its colour
    across variants), one legend.

    codes: {(variant, seed): images x 2}; labels and classes: the probe
    labels and class names, or dicts of them per variant. Images whose code
    is NaN are not drawn; the panel's title counts them.
    """
    variants = list(dict.fromkeys(v for v, _ in codes))
    seeds = {v: sorted(s for w, s in codes if w == v) for v in variants}
    n_cols = max(map(len, seeds.values()))
    fig, axes = plt.subplots(len(variants), n_cols, squeeze=False, layout="constrained",
                             figsize=(2.6 * n_cols + 1.2, 2.6 * len(variants)))
    colours = {}
    for row, variant in zip(axes, variants):
        names, y = per_variant(classes, variant), np.asarray(per_variant(labels, variant))
        for ax, seed in zip(row, seeds[variant]):
            Z = np.asarray(codes[(variant, seed)], dtype=float)
            if Z.ndim != 2 or Z.shape[1] != 2:
                raise ValueError(f"{variant} seed {seed}: codes of shape {Z.shape}; the scatter "
                                 "needs images x 2 (project wider codes with pca_codes first)")
            for label in np.unique(y):
                colour = colours.setdefault(names[label], PALETTE[len(colours) % len(PALETTE)])
                ax.scatter(*Z[y == label].T, s=6, color=colour, alpha=0.7, lw=0)
            missing = int((~np.isfinite(Z).all(axis=1)).sum())
            note = f"\n{missing} of {len(Z)} codes undefined (not drawn)" if missing else ""
            ax.set_title(f"{variant}, seed {seed}{note}")
            ax.set_xlabel("unit 1")
            ax.set_ylabel("unit 2")
        for ax in row[len(seeds[variant]):]:
            ax.set_visible(False)
    handles = [Line2D([], [], ls="", marker="o", color=c, label=name)
               for name, c in colours.items()]
    fig.legend(handles=handles, loc="outside right upper", title="class")
    save(fig, paths, dpi)


def class_names(table):
    """{variant: {label: class name}} of a latent table with label and class columns."""
    return {variant: dict(zip(rows["label"], rows["class"]))
            for variant, rows in table.groupby("variant", sort=False)}


def silhouette_plot_figure(samples, paths, dpi=150, seeds=None):
    """`silhouette_plot` of the latent analysis's gathered `samples` table."""
    silhouette_plot(samples, class_names(samples), paths, dpi, seeds)


def latent_scatter_figure(codes, paths, dpi=150):
    """`latent_scatter` of the latent analysis's gathered `codes` table."""
    units = [c for c in codes.columns if c.startswith("unit") and codes[c].notna().any()]
    if len(units) != 2:
        raise ValueError(f"the latent scatter draws codes of 2 units, but layer "
                         f"{codes['layer'].iloc[0]!r} has {len(units)}: set analyses.latent.layer "
                         "to a 2-unit layer")
    codes = codes.sort_values(["image"], kind="stable")
    scatter = {key: rows[units].to_numpy()
               for key, rows in codes.groupby(["variant", "seed"], sort=False)}
    # every seed of a variant codes the same probe images
    labels = {variant: rows["label"].to_numpy() for variant, rows
              in codes.drop_duplicates(["variant", "image"]).groupby("variant", sort=False)}
    latent_scatter(scatter, labels, class_names(codes), paths, dpi)


# the baselines of silhouette_by_variant: legend label, colour, line style
BASELINE_LINES = {"input": ("raw probe images", "grey", "--"), "pca": ("exact PCA", PALETTE[3], ":")}


def silhouette_by_variant(silhouettes, baselines, paths, dpi=150):
    """Silhouette of every seed at the final checkpoint (dots), per variant,
    against the baselines of that variant's data (short lines over it).

    silhouettes: the latent `silhouettes` tables with a `variant` column;
    baselines: the `baselines` tables with `variant` and `data` (the data
    setting, on the tick below the variant's name). An undefined value is an
    'x' at the foot of the axis, not a point.
    """
    final = silhouettes[silhouettes["epoch"] == "final"]
    variants = list(dict.fromkeys(final["variant"]))
    fig, ax = plt.subplots(figsize=(max(1.4 * len(variants), 2.8) + 3.6, 3.6), layout="constrained")
    undefined, ticks = False, []
    for x, variant in enumerate(variants):
        scores = final[final["variant"] == variant].sort_values("seed")["silhouette"].to_numpy()
        spread = np.linspace(-0.15, 0.15, len(scores)) if len(scores) > 1 else np.zeros(1)
        ax.plot(x + spread, scores, ls="", marker="o", ms=4, alpha=0.8, color=PALETTE[0],
                label="a seed (final checkpoint)")
        undefined |= mark_undefined(ax, x + spread, scores, PALETTE[0])
        own = baselines[baselines["variant"] == variant]
        for baseline, value in zip(own["baseline"], own["silhouette"]):
            label, colour, style = BASELINE_LINES[baseline]
            ax.plot([x - 0.35, x + 0.35], [value] * 2, color=colour, ls=style, lw=1.5, label=label)
            undefined |= mark_undefined(ax, [x], [value], colour)
        ticks.append(f"{variant}\n({own['data'].iloc[0]})" if len(own) else variant)
    ax.set_xticks(range(len(variants)), ticks, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(variants) - 0.4)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("silhouette score\n(Euclidean, probe images)")
    ax.set_xlabel("variant (data setting)")
    if undefined:
        undefined_legend_entry(ax, "silhouettes.csv, baselines.csv")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # each label once, not once per variant
    ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    save(fig, paths, dpi)


REGION_COLOURS = {"input": plt.cm.Greys, "encoder": plt.cm.Blues, "bottleneck": plt.cm.Oranges,
                  "decoder": plt.cm.Greens, "output": plt.cm.Greens}


def region_colours(layers, regions):
    """A colour per layer: its region's colour map, darker deeper in the region."""
    colours = {}
    for region in dict.fromkeys(regions):
        members = [layer for layer, r in zip(layers, regions) if r == region]
        for k, layer in enumerate(members):
            colours[layer] = REGION_COLOURS.get(region, plt.cm.Greys)(0.45 + 0.5 * (k + 1) / len(members))
    return colours


def dynamics_figure(dynamics, paths, dpi=150):
    """Each layer against the same layer at the final checkpoint over
    training: a row per variant, a column per measure; per layer the mean
    over seeds at each checkpoint (training order) with ± one standard
    deviation; undefined means as an 'x' at the foot."""
    to_final = dynamics[dynamics["epoch_b"] == "final"]
    variants = list(dict.fromkeys(to_final["variant"]))
    measures = list(dict.fromkeys(to_final["measure"]))
    fig, axes = plt.subplots(len(variants), len(measures), squeeze=False, layout="constrained",
                             figsize=(4.4 * len(measures) + 1.6, 3.0 * len(variants)))
    undefined = False
    for row, variant in zip(axes, variants):
        rows = to_final[to_final["variant"] == variant]
        epochs = epoch_order(rows["epoch_a"])
        layers = rows.sort_values("layer_index").drop_duplicates("layer")
        colours = region_colours(list(layers["layer"]), list(layers["region"]))
        for ax, measure in zip(row, measures):
            for layer in layers["layer"]:
                one = rows[(rows["measure"] == measure) & (rows["layer"] == layer)]
                values = one.groupby("epoch_a")["value"]
                mean = values.mean().reindex(epochs).to_numpy(dtype=float)
                sd = values.std().reindex(epochs).fillna(0).to_numpy(dtype=float)
                x = np.arange(len(epochs))
                ax.plot(x, mean, marker="o", ms=2.5, color=colours[layer], label=layer)
                ax.fill_between(x, mean - sd, mean + sd, color=colours[layer], alpha=0.12, lw=0)
                undefined |= mark_undefined(ax, x, mean, colours[layer])
            ax.set_xticks(range(len(epochs)), epochs, rotation=30, ha="right")
            ax.set_title(f"{variant}: {measure}", fontsize=9)
            ax.set_xlabel("checkpoint (epoch)")
            ax.set_ylabel(f"{measure} to the final\ncheckpoint (mean over seeds)")
        if undefined:
            undefined_legend_entry(row[-1], "dynamics.csv")
        row[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, title="layer")
    save(fig, paths, dpi)


def dynamics_heatmaps(dynamics, paths, dpi=150):
    """Every pair of checkpoints of each layer, as the paper draws them: a
    checkpoint x checkpoint heatmap per layer (columns) and variant and
    measure (rows), the mean over seeds, on one colour scale per measure; a
    cell undefined in any seed is grey, and the diagonal, a checkpoint
    against itself, which dynamics.csv does not hold, is left white."""
    panels = list(dict.fromkeys(zip(dynamics["variant"], dynamics["measure"])))
    limits = dynamics.groupby("measure")["value"].agg(["min", "max"])
    layers = dynamics.sort_values("layer_index").drop_duplicates("layer")["layer"].tolist()
    fig, axes = plt.subplots(len(panels), len(layers), squeeze=False, layout="constrained",
                             figsize=(1.7 * len(layers) + 1.2, 1.9 * len(panels) + 0.6))
    for row, (variant, measure) in zip(axes, panels):
        rows = dynamics[(dynamics["variant"] == variant) & (dynamics["measure"] == measure)]
        epochs = epoch_order([*rows["epoch_a"], *rows["epoch_b"]])
        for ax, layer in zip(row, layers):
            one = rows[rows["layer"] == layer]
            if one.empty:  # a layer this variant's model does not have
                ax.axis("off")
                continue
            mean = one.groupby(["epoch_a", "epoch_b"])["value"].agg(lambda v: v.mean(skipna=False))
            grid = np.full((len(epochs), len(epochs)), np.nan)
            for (a, b), value in mean.items():
                i, j = epochs.index(a), epochs.index(b)
                grid[i, j] = grid[j, i] = value
            image = ax.imshow(grid, cmap=HEATMAP_CMAP, vmin=limits.loc[measure, "min"],
                              vmax=limits.loc[measure, "max"])
            for i in range(len(epochs)):
                ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, color="white"))
            ax.set_xticks(range(len(epochs)), epochs, fontsize=5, rotation=90)
            ax.set_yticks(range(len(epochs)), epochs, fontsize=5)
            ax.set_title(layer, fontsize=7)
        row[0].set_ylabel(f"{variant}\n{measure}", fontsize=7)
        fig.colorbar(image, ax=row, shrink=0.8, label=f"{measure}\n(mean over seeds)")
    save(fig, paths, dpi)


COLLAPSE_PANELS = {"active_units": "active latent units\n(variance of the mean > threshold)",
                   "kl": "KL(q(z|x) || p(z)), nats\n(summed over dimensions)",
                   "cka_mean_sampled": "linear CKA between\nthe mean and the sampled code"}


def collapse_figure(collapse, paths, dpi=150):
    """Posterior collapse over training: per checkpoint (x, in training order,
    `final` last), each panel of COLLAPSE_PANELS, one line per variant, the
    mean over seeds with a band of ± one standard deviation; seeds whose value
    is undefined are left out of the mean, and a checkpoint where all are is
    an 'x' at the foot."""
    epochs = epoch_order(collapse["epoch"])
    variants = list(dict.fromkeys(collapse["variant"]))
    fig, axes = plt.subplots(1, len(COLLAPSE_PANELS), figsize=(4.2 * len(COLLAPSE_PANELS), 3.4),
                             layout="constrained")
    undefined = False
    for ax, (column, label) in zip(axes, COLLAPSE_PANELS.items()):
        for i, variant in enumerate(variants):
            rows = collapse[collapse["variant"] == variant]
            by_epoch = rows.groupby("epoch")[column]
            mean = by_epoch.mean().reindex(epochs).to_numpy(dtype=float)
            sd = by_epoch.std().reindex(epochs).fillna(0).to_numpy(dtype=float)
            colour = PALETTE[i % len(PALETTE)]
            x = np.arange(len(epochs))
            ax.plot(x, mean, marker="o", ms=3, color=colour,
                    label=f"{variant} ({rows['seed'].nunique()} seeds)")
            ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.2, lw=0)
            undefined |= mark_undefined(ax, x, mean, colour)
        ax.set_xticks(range(len(epochs)), epochs, rotation=30, ha="right")
        ax.set_xlabel("checkpoint (epoch)")
        ax.set_ylabel(label)
    if undefined:
        undefined_legend_entry(axes[-1], "collapse.csv")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title="variant")
    save(fig, paths, dpi)


SIDES = ("a", "b")
PAIRING_STYLE = {"same seed": "-", "across seeds": "--", "seeds of one variant": ":"}


def across_variants_figure(layers, paths, dpi=150):
    """Each layer against itself in the other variants recorded on the same
    probe images: per layer the mean (± one SD) over pairs of variants with
    the same seed, with different seeds, and, for reference, over pairs of
    seeds of one variant; a column per group of variants, a row per measure.
    An undefined mean is an 'x' at the foot."""
    groups = list(dict.fromkeys(layers["probes"]))
    measures = list(dict.fromkeys(layers["measure"]))
    fig, axes = plt.subplots(len(measures), len(groups), squeeze=False, layout="constrained",
                             figsize=(5.0 * len(groups) + 1.6, 3.4 * len(measures)))
    undefined = False
    for row, measure in zip(axes, measures):
        for ax, probes in zip(row, groups):
            rows = layers[(layers["probes"] == probes) & (layers["measure"] == measure)]
            # a layer is its name and place: two architectures may share a name
            order = rows.sort_values("layer_index").drop_duplicates(["layer", "layer_index"])
            names = list(order["layer"])
            shade_regions(ax, list(order["region"]))
            layer_axis(ax, names)
            keys = pd.MultiIndex.from_frame(order[["layer", "layer_index"]])
            for i, (kind, style) in enumerate(PAIRING_STYLE.items()):
                one = rows[rows["pairing"] == kind].set_index(["layer", "layer_index"]).reindex(keys)
                if one["pairs"].isna().all():
                    continue
                x = np.arange(len(names))
                mean = one["mean"].to_numpy(dtype=float)
                sd = one["sd"].fillna(0).to_numpy(dtype=float)
                colour = PALETTE[i]
                ax.plot(x, mean, ls=style, marker="o", ms=3, color=colour, label=kind)
                ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.12, lw=0)
                undefined |= mark_undefined(ax, x, mean, colour)
            ax.set_title(f"{probes}: {measure}", fontsize=9, pad=14)
            ax.set_ylabel(f"{measure}, layer against itself\n(mean over pairs, band ±1 SD)")
    if undefined:
        undefined_legend_entry(axes[0][-1], "pairs.csv")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title="pairs")
    save(fig, paths, dpi)


def across_variants_heatmaps(pairs, paths, dpi=150):
    """Layer x layer between each two variants recorded on the same probe
    images, of the same seed, averaged over seeds: a heatmap per pair of
    variants and measure (rows: the first variant's layers), on one colour
    scale per measure. A cell undefined in any seed is grey."""
    pairs = pairs[(pairs["a_variant"] != pairs["b_variant"]) & (pairs["a_seed"] == pairs["b_seed"])]
    limits = pairs.groupby("measure")["value"].agg(["min", "max"])
    swap = {c: {"a_": "b_", "b_": "a_"}[c[:2]] + c[2:] for c in pairs if c[:2] in ("a_", "b_")}
    both = pd.concat([pairs, pairs.rename(columns=swap)])
    panels = []
    for (probes, measure), rows in pairs.groupby(["probes", "measure"], sort=False):
        variants = list(dict.fromkeys([*rows["a_variant"], *rows["b_variant"]]))
        panels += [(probes, measure, a, b) for i, a in enumerate(variants) for b in variants[i + 1:]]
    columns = min(len(panels), 3) or 1
    lines = -(-len(panels) // columns) or 1
    fig, axes = plt.subplots(lines, columns, squeeze=False, layout="constrained",
                             figsize=(4.4 * columns, 4.0 * lines))
    for ax, (probes, measure, a, b) in zip(axes.flat, panels):
        rows = both[(both["probes"] == probes) & (both["measure"] == measure)
                    & (both["a_variant"] == a) & (both["b_variant"] == b)]
        grid = rows.groupby(["a_layer_index", "b_layer_index"])["value"].agg(
            lambda v: v.mean(skipna=False)).unstack()
        names = {side: dict(zip(rows[f"{side}_layer_index"], rows[f"{side}_layer"]))
                 for side in SIDES}
        image = ax.imshow(grid.to_numpy(dtype=float), cmap=HEATMAP_CMAP,
                          vmin=limits.loc[measure, "min"], vmax=limits.loc[measure, "max"])
        ax.set_yticks(range(len(grid.index)), [names["a"][i] for i in grid.index], fontsize=6)
        ax.set_xticks(range(len(grid.columns)), [names["b"][i] for i in grid.columns],
                      fontsize=6, rotation=90)
        ax.set_ylabel(a)
        ax.set_xlabel(b)
        ax.set_title(f"{measure} ({probes})", fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.8,
                     label=f"{measure}, mean over seeds\n(same seed on both sides)")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    save(fig, paths, dpi)


REGION_ORDER = ["input", "encoder", "bottleneck", "decoder", "output"]


def merged_layers(table):
    """One layer order for variants whose layers may differ (other widths,
    bottleneck depths or architectures): by region (input, encoder,
    bottleneck, decoder, output), then by place within the region, then by
    name, so that layers of the same name share a position on a common axis;
    a repeated layer (model.repeat) right after the layer it repeats. The
    layers and their regions."""
    place = {}
    for _, rows in table.groupby("variant", sort=False):
        layers, regions = layer_order(rows)
        # the place within its region of each layer that is not a repeat
        within, counts = {}, {}
        for layer, region in zip(layers, regions):
            if not repeat_of(layer):
                within[layer] = counts.get(region, 0)
                counts[region] = within[layer] + 1
        for layer, region in zip(layers, regions):
            base, copy = repeat_of(layer) or (layer, 0)
            rank = REGION_ORDER.index(region) if region in REGION_ORDER else len(REGION_ORDER)
            key = (rank, within[base], copy, layer)
            place[layer] = min(place.get(layer, (key,))[0], key), region
    merged = sorted(place, key=lambda layer: place[layer][0])
    return merged, [place[layer][1] for layer in merged]


def across_seeds(matrix, labels, epoch, layers):
    """Per layer: mean and standard deviation, over pairs of seeds, of the
    measure between the same layer of two seeds at checkpoint `epoch`. NaN
    where any pair's value is undefined, as RC is: not a mean over the rest."""
    means, sds = [], []
    for layer in layers:
        idx = labels[(labels["epoch"] == epoch) & (labels["layer"] == layer)].index.to_numpy()
        values = matrix[np.ix_(idx, idx)][np.triu_indices(len(idx), k=1)]
        means.append(values.mean() if len(values) else np.nan)
        sds.append(values.std() if len(values) else np.nan)
    return np.array(means), np.array(sds)


def overview(table, measure, paths, dpi=150):
    """The headline result on one page, at the final checkpoint: RC per layer of
    every variant on one axis and, if a measure is given as (name, matrix,
    labels), that measure between the same layer of different seeds. Repeated
    layers (model.repeat) are hatched."""
    variants = list(dict.fromkeys(table["variant"]))
    layers, regions = merged_layers(table)
    position = {layer: i for i, layer in enumerate(layers)}
    colours = dict(zip(variants, PALETTE * (len(variants) // len(PALETTE) + 1)))
    width = max(5.2, 0.3 * len(layers))  # room for every layer's name
    fig, axes = plt.subplots(1, 2 if measure else 1, figsize=(2 * width if measure else width, 3.9),
                             squeeze=False, sharey=False, layout="constrained")
    axes = axes[0]
    for ax in axes:
        shade_regions(ax, regions)
        for i, layer in enumerate(layers):  # a repeated layer (model.repeat): hatched
            if repeat_of(layer):
                ax.axvspan(i - 0.5, i + 0.5, facecolor="none", edgecolor="grey", hatch="///",
                           lw=0, alpha=0.4)
        layer_axis(ax, layers)
        ax.axhline(0, color="grey", lw=0.5)
    ax = axes[0]
    undefined = False
    for variant in variants:
        rows = table[(table["variant"] == variant) & (table["epoch"] == "final")]
        rows = rows.sort_values("layer_index")
        x = rows["layer"].map(position)
        ax.fill_between(x, rows["rc_low"], rows["rc_high"], color=colours[variant],
                        alpha=0.15, lw=0)
        ax.plot(x, rows["rc"], marker="o", ms=3.5, color=colours[variant],
                label=f"{variant} ({seed_count(rows['n_seeds'].iloc[0], rows['seeds_excluded'].iloc[0])})"
                if len(rows) else variant)
        undefined |= mark_undefined(ax, x, rows["rc"], colours[variant])
    ax.set_ylabel("representational consistency at the final checkpoint\n"
                  "(mean Pearson r of RDMs across seeds;\nband: bootstrap interval)")
    ax.set_title("How consistent is each layer across seeds?", pad=14)
    if undefined:
        undefined_legend_entry(ax, "consistency.csv")
    ax.legend(fontsize=8, title="variant", title_fontsize=8)
    if measure:
        name, matrix, labels = measure
        ax = axes[1]
        undefined = False
        for variant in variants:
            rows = labels[labels["variant"] == variant]
            own = [layer for layer in layers if layer in set(rows["layer"])]
            means, sds = across_seeds(matrix, rows, "final", own)
            x = [position[layer] for layer in own]
            ax.fill_between(x, means - sds, means + sds, color=colours[variant], alpha=0.15, lw=0)
            ax.plot(x, means, marker="o", ms=3.5, color=colours[variant], label=variant)
            undefined |= mark_undefined(ax, x, means, colours[variant])
        ax.set_ylabel(f"{name} at the final checkpoint\n(same layer, pairs of seeds;\n"
                      "band: ±1 SD over pairs)")
        ax.set_title(f"{name} across seeds", pad=14)
        if undefined:  # the variants' colours are in the legend on the left
            undefined_legend_entry(ax, f"{name}.csv")
            ax.legend(handles=ax.get_lines()[-1:], fontsize=8)
    save(fig, paths, dpi)


LOSS_PANELS = {"min_test_loss": "minimum test loss", "first_below": "first epoch with the\n"
               "training loss under the threshold"}


def grid_levels(values):
    """A grid setting's levels in their natural order (numbers, numpy's too,
    ascending; names, or numbers mixed with names or nulls, as given)."""
    levels = list(dict.fromkeys(values))
    numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in levels)
    return sorted(levels) if numeric else levels


def summary_text(values, spread=False, undefined="never"):
    """A cell of grid_heatmaps: the mean of the defined `values` (± their sd
    where `spread`), and how many runs are NaN, counted as `undefined` (the
    losses' runs that never trained under the threshold: "never")."""
    defined, missing = values.dropna(), int(values.isna().sum())
    if defined.empty:
        return f"{undefined} ({missing})"
    text = f"{defined.mean():.4g}" + (f"\n± {defined.std():.2g}" if spread and len(defined) > 1
                                      else "")
    return text + (f"\n({missing} {undefined})" if missing else "")


def grid_heatmaps(runs, panels, paths, dpi=150, baselines=None, undefined="undefined"):
    """Manakov et al.'s grid of runs (a row per variant and seed, the grid's
    two settings after those columns): per panel of `panels` ({column:
    label}), the mean over seeds of each cell of the first grid setting
    (rows, e.g. area) x the second (columns, e.g. compression), and in a last
    row and column the mean ± sd over the runs of each level (the
    marginals). An undefined (NaN) run is left out of its mean and counted
    in the cell as `undefined`; a cell with none is grey. `baselines` ({column: value}): cells above it are framed
    in red, and the title gives it."""
    rows_key, columns_key = runs.columns[2:4]
    row_levels, column_levels = grid_levels(runs[rows_key]), grid_levels(runs[columns_key])
    fig, axes = plt.subplots(1, len(panels), layout="constrained", squeeze=False,
                             figsize=(len(panels) * (1.6 + 1.0 * len(column_levels)), 3.6))
    for ax, (column, label) in zip(axes[0], panels.items()):
        grid = np.full((len(row_levels) + 1, len(column_levels) + 1), np.nan)
        text = {}
        for i, r in enumerate(row_levels):
            for j, c in enumerate(column_levels):
                values = runs.loc[(runs[rows_key] == r) & (runs[columns_key] == c), column]
                grid[i, j] = values.mean()
                text[i, j] = summary_text(values, undefined=undefined)
        for i, r in enumerate(row_levels):
            text[i, len(column_levels)] = summary_text(runs.loc[runs[rows_key] == r, column],
                                                       True, undefined)
        for j, c in enumerate(column_levels):
            text[len(row_levels), j] = summary_text(runs.loc[runs[columns_key] == c, column],
                                                    True, undefined)
        image = ax.imshow(grid, cmap=HEATMAP_CMAP)
        n_rows, n_columns = len(row_levels), len(column_levels)
        # the marginals are text on white, not cells of the colour scale
        ax.add_patch(plt.Rectangle((-0.5, n_rows - 0.5), n_columns + 1, 1, color="white"))
        ax.add_patch(plt.Rectangle((n_columns - 0.5, -0.5), 1, n_rows + 1, color="white"))
        for (i, j), value in text.items():
            shade = image.norm(grid[i, j]) if i < len(row_levels) and j < len(column_levels) else 1
            ax.text(j, i, value, ha="center", va="center", fontsize=7,
                    color="white" if shade < 0.6 else "black")
        ax.axhline(len(row_levels) - 0.5, color="black", lw=1)
        ax.axvline(len(column_levels) - 0.5, color="black", lw=1)
        ax.set_xticks(range(len(column_levels) + 1), [f"{c:g}" if isinstance(c, float) else c
                                                      for c in column_levels] + ["mean ± sd"])
        ax.set_yticks(range(len(row_levels) + 1), [*row_levels, "mean ± sd"])
        ax.set_xlabel(columns_key)
        ax.set_ylabel(rows_key)
        baseline = (baselines or {}).get(column)
        if baseline is not None:
            for i in range(n_rows):
                for j in range(n_columns):
                    if grid[i, j] > baseline:
                        ax.add_patch(plt.Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False,
                                                   ec="red", lw=2))
            label += f"\n(red: above the baseline's {baseline:.3f})"
        ax.set_title(f"{label}\n(mean over seeds)")
    save(fig, paths, dpi)


def losses_heatmaps(runs, paths, dpi=150):
    """The losses analysis's grid: minimum test loss and training speed."""
    grid_heatmaps(runs, LOSS_PANELS, paths, dpi, undefined="never")


def probes_heatmap(probes, paths, dpi=150):
    """The probes analysis's grid: the codes' mean score (over model seeds,
    probe seeds and targets) on the images the model trained on and on
    unseen ones, cells above the raw pixels' score framed."""
    metric = probes["metric"].iloc[0]
    grid = list(probes.columns[2:4])
    codes = probes[probes["features"] == "code"]
    runs = codes.pivot_table(index=["variant", "seed", *grid], columns="images",
                             values="value", aggfunc="mean", dropna=False,
                             sort=False).reset_index()  # the grid's levels in their order
    pixels = probes[probes["features"] == "pixels"].groupby("images")["value"].mean()
    label = {"macro_f1": "macro-F1", "auroc": "mean AUROC"}[metric]
    shown = [which for which in ("seen", "unseen") if which in runs.columns]
    grid_heatmaps(runs, {which: f"{label}, {which} images" for which in shown},
                  paths, dpi, baselines=pixels.to_dict())


def outliers_heatmap(outliers, paths, dpi=150):
    """The outliers analysis's grid: how well reconstruction errors tell the
    out-of-distribution images from the test images."""
    grid_heatmaps(outliers, {"auroc": "outlier detection AUROC"}, paths, dpi)


def copy_heatmap(copies, paths, dpi=150):
    """The copy analysis's grid: how copy-like each code is, and the error on its images."""
    grid_heatmaps(copies, {"svcca": "SVCCA, code vs its patches",
                           "linear_cka": "linear CKA, code vs its patches",
                           "mse": "MSE on these images"}, paths, dpi)


def image_grid(variants, paths, dpi=150, seed=None):
    """The image grids of an image file (hourglass.io.read_images) of the
    first seed with a model (or `seed`) of each variant: a block of rows per
    variant, ordered by its grid settings (e.g. area, then compression), a
    column per step of the walk."""
    levels = {key: grid_levels([attrs["grid"][key] for attrs, _ in variants])
              for key in variants[0][0]["grid"]}
    variants = sorted(variants, key=lambda v: [levels[k].index(v[0]["grid"][k]) for k in levels])
    blocks = []
    for attrs, grids in variants:
        shown = seed if seed is not None else next(
            (s for s, g in grids.items() if g is not None), None)
        blocks.append((attrs, shown, grids.get(shown) if shown is not None else None))
    n_rows = sum(1 if grid is None else len(grid) for *_, grid in blocks)
    n_columns = len(variants[0][0]["columns"])
    fig, axes = plt.subplots(n_rows, n_columns, squeeze=False,
                             figsize=(0.8 * n_columns + 1.8, 0.8 * n_rows + 0.4))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    for ax, column in zip(axes[0], variants[0][0]["columns"]):
        ax.set_title(column, fontsize=7)
    row = iter(axes)
    for attrs, shown, grid in blocks:
        label = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in attrs["grid"].items())
        if grid is None:
            next(row)[0].set_ylabel(f"{label}\n(no model: diverged)", rotation=0, ha="right",
                                    va="center", fontsize=7)
            continue
        for i, images in enumerate(grid):
            ax_row = next(row)
            for ax, image in zip(ax_row, images):
                image = np.moveaxis(image, 0, -1)
                ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None,
                          vmin=0, vmax=255)
            if i == 0:
                ax_row[0].set_ylabel(f"{label}\n(seed {shown})", rotation=0, ha="right",
                                     va="center", fontsize=7)
    save(fig, paths, dpi)


def loss_curves(curves, paths, dpi=150):
    """Training (dashed) and test (solid) loss per epoch, the mean over seeds:
    a panel per level of the first grid setting (e.g. area), a colour per
    level of the second (e.g. compression), on a log scale."""
    rows_key, columns_key = curves.columns[2:4]  # as in losses_heatmaps
    curves = curves.astype({"epoch": int})
    panels, colours = grid_levels(curves[rows_key]), grid_levels(curves[columns_key])
    fig, axes = plt.subplots(1, len(panels), sharey=True, layout="constrained", squeeze=False,
                             figsize=(3.6 * len(panels) + 1.4, 3.2))
    for ax, panel in zip(axes[0], panels):
        for k, level in enumerate(colours):
            rows = curves[(curves[rows_key] == panel) & (curves[columns_key] == level)]
            mean = rows[rows["epoch"] >= 1].groupby("epoch")[["train_loss", "test_loss"]].mean()
            colour = PALETTE[k % len(PALETTE)]
            ax.plot(mean.index, mean["test_loss"], color=colour,
                    label=f"{level:g}" if isinstance(level, float) else str(level))
            ax.plot(mean.index, mean["train_loss"], color=colour, ls="--")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(f"{rows_key} {panel}")
    axes[0][0].set_ylabel("loss (solid: test, dashed: training)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), title=columns_key, fontsize=8)
    save(fig, paths, dpi)


def inversion_images(networks, paths, dpi=150):
    """The inversion's image file (hourglass.io.read_images): per network
    side by side, a row per layer of its first image: the target, then the
    input generated for each state."""
    fig = plt.figure(layout="constrained", figsize=(
        sum(0.75 * len(attrs["columns"]) + 0.5 for attrs, _ in networks),
        0.75 * max(len(attrs["rows"]) for attrs, _ in networks) + 0.6))
    for sub, (attrs, grids) in zip(np.atleast_1d(fig.subfigures(1, len(networks))), networks):
        seed, grid = next(iter(grids.items()))
        axes = sub.subplots(len(grid), len(attrs["columns"]), squeeze=False)
        sub.suptitle(f"{attrs['variant']} (seed {seed})", fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
        for ax, column in zip(axes[0], attrs["columns"]):
            ax.set_title(column, fontsize=7)
        for ax_row, layer, images in zip(axes, attrs["rows"], grid):
            ax_row[0].set_ylabel(layer, fontsize=7)
            for ax, image in zip(ax_row, images):
                image = np.moveaxis(image, 0, -1)
                ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None,
                          vmin=0, vmax=255)
    save(fig, paths, dpi)


def inverted_means(table):
    """Per network, state, layer and recorded step: m_g, m_r and m_i, the
    means over seeds and images, layers in order."""
    keys = ["network", "state", "layer_index", "layer", "iteration"]
    means = table.groupby(keys, sort=False)[["m_g", "m_r", "m_i"]].mean().reset_index()
    state = means["state"].map({"untrained": 0, "trained": 1, "imagenet": 2})
    return means.assign(order=state).sort_values(
        ["order", "layer_index", "iteration"], kind="stable").drop(columns="order") \
        .sort_values("network", key=lambda n: n.map(
            {name: k for k, name in enumerate(dict.fromkeys(table["network"]))}), kind="stable")


def inversion_distances(table, paths, dpi=150):
    """Per network (a row of panels) after the last step, per layer: bars of
    m_g for each state beside m_r (hatched), on a log scale; and bars of m_i
    beside the start's distance (dashed)."""
    means = inverted_means(table)
    networks = list(dict.fromkeys(means["network"]))
    fig, axes = plt.subplots(len(networks), 2, squeeze=False, layout="constrained",
                             figsize=(11, 2.6 * len(networks)))
    for (left, right), network in zip(axes, networks):
        rows = means[means["network"] == network]
        last = rows[rows["iteration"] == rows["iteration"].max()]
        states = list(dict.fromkeys(last["state"]))
        layers = list(dict.fromkeys(last["layer"]))
        width = 0.8 / (2 * len(states))
        for k, state in enumerate(states):
            own = last[last["state"] == state].set_index("layer").loc[layers]
            start = rows[(rows["state"] == state) & (rows["iteration"] == 0)] \
                .set_index("layer").loc[layers]
            x = np.arange(len(layers)) + (2 * k - len(states) + 0.5) * width
            colour = PALETTE[k % len(PALETTE)]
            left.bar(x, own["m_g"], width, color=colour, label=f"m_g {state}")
            left.bar(x + width, own["m_r"], width, color="white", edgecolor=colour,
                     hatch="///", label=f"m_r {state}")
            right.bar(x + width / 2, own["m_i"], 2 * width, color=colour, label=state)
            right.scatter(x + width / 2, start["m_i"], marker="_", s=120, color="black",
                          label="at the start" if k == 0 else None)
        left.set_yscale("log")
        left.set_ylabel(f"{network}\nactivation distance")
        right.set_ylabel("input distance m_i")
        for ax in (left, right):
            layer_axis(ax, layers)
        left.legend(fontsize=7, ncol=2)
        right.legend(fontsize=7)
    axes[0][0].set_title("m_g (candidate) against m_r (noised copy): lower is closer")
    axes[0][1].set_title("m_i: how far the candidate is from the target")
    save(fig, paths, dpi)


def inversion_trajectories(table, paths, dpi=150):
    """Per network and state, a line per layer through its recorded steps:
    input distance m_i against activation distance m_g (Badger: the input
    distance can grow while the embedding distance falls); the end marked."""
    means = inverted_means(table)
    panels = list(dict.fromkeys(zip(means["network"], means["state"])))
    n_columns = min(4, len(panels))
    n_rows = -(-len(panels) // n_columns)
    fig, axes = plt.subplots(n_rows, n_columns, squeeze=False, layout="constrained",
                             figsize=(3.3 * n_columns + 1.2, 2.8 * n_rows))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (network, state) in zip(axes.flat, panels):
        rows = means[(means["network"] == network) & (means["state"] == state)]
        layers = list(dict.fromkeys(rows["layer"]))
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(layers)))
        for colour, layer in zip(colours, layers):
            own = rows[rows["layer"] == layer]
            ax.plot(own["m_g"], own["m_i"], color=colour, lw=1, label=layer)
            ax.scatter(own["m_g"].iloc[-1:], own["m_i"].iloc[-1:], color=colour, s=12)
        ax.set_xscale("log")
        ax.set_title(f"{network}, {state}", fontsize=8)
        ax.set_xlabel("activation distance m_g")
        ax.set_ylabel("input distance m_i")
        ax.legend(fontsize=6, ncol=2)
    save(fig, paths, dpi)


def nothing_to_draw(paths, dpi, text):
    fig, ax = plt.subplots(figsize=(4, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    save(fig, paths, dpi)


def inversion_depth(table, paths, dpi=150):
    """The ResNets' stages across networks: final m_i over the start's per
    stage, a line per network, solid untrained, dashed with ImageNet weights."""
    resnets = table[table["architecture"].str.startswith("resnet")]
    if resnets.empty:
        return nothing_to_draw(paths, dpi, "no ResNet inverted (analyses.inversion.networks)")
    relative = inverted_layers(resnets)
    fig, ax = plt.subplots(layout="constrained", figsize=(6.5, 3.4))
    layers = list(dict.fromkeys(relative.sort_values("layer_index", kind="stable")["layer"]))
    for k, network in enumerate(dict.fromkeys(relative["network"])):
        for state, style in (("untrained", "-"), ("imagenet", "--")):
            own = relative[(relative["network"] == network) & (relative["state"] == state)]
            if not own.empty:
                own = own.set_index("layer").reindex(layers)
                ax.plot(range(len(layers)), own["relative"], style, marker="o", ms=3,
                        color=PALETTE[k % len(PALETTE)], label=f"{network} {state}")
    layer_axis(ax, layers)
    ax.set_ylabel("m_i after the descent / at the start")
    ax.legend(fontsize=7)
    save(fig, paths, dpi)


def inversion_width(table, paths, dpi=150):
    """The MLPs: final m_i over the start's at the first layer against the
    layer's width over the input's, a line per activation."""
    mlps = table[table["architecture"] == "mlp"]
    if mlps.empty:
        return nothing_to_draw(paths, dpi, "no MLP inverted (analyses.inversion.networks)")
    relative = first_layers(inverted_layers(mlps))
    relative = relative.assign(
        ratio=relative["values"] / relative["input_values"],
        activation=relative["network"].map(mlps.groupby("network")["activation"].first()))
    fig, ax = plt.subplots(layout="constrained", figsize=(5, 3.4))
    for k, (name, rows) in enumerate(relative.sort_values("ratio").groupby("activation")):
        ax.plot(rows["ratio"], rows["relative"], marker="o", color=PALETTE[k % len(PALETTE)],
                label=name)
    for ratio in (1, 2):
        ax.axvline(ratio, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("layer width / input values")
    ax.set_ylabel("m_i after the descent / at the start")
    ax.legend(title="activation", fontsize=7)
    save(fig, paths, dpi)
