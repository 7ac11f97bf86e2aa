"""Ad-hoc comparison of two activation files with any registered measure
(`hourglass compare`), layer by layer, and the list of measures (`hourglass
measures`).

A layer that tells no probe images apart (see comparisons.is_degenerate) has
no similarity: its entries are NaN and `dead` names the file it is dead in,
as the pipeline's all-pairs jobs do.
"""

import inspect

import numpy as np
import pandas as pd
import torch

from hourglass.activations import describe, read_layer
from hourglass.analyses.comparisons import is_degenerate
from hourglass.io import open_h5
from hourglass.similarity import MEASURES, all_pairs
from hourglass.similarity.measures import measure_plan


def measure_options(name: str) -> str:
    """A measure's options and their defaults, e.g. "debiased=False" ('' for none)."""
    params = inspect.signature(MEASURES[name].plan).parameters.values()
    return ", ".join(f"{p.name}={p.default!r}" for p in params)


def measure_list() -> pd.DataFrame:
    """One row per registered measure: name, options (with defaults), description."""
    return pd.DataFrame([{"measure": name, "options": measure_options(name),
                          "description": entry.description} for name, entry in MEASURES.items()])


def format_measures() -> str:
    table = measure_list()
    width = table["measure"].str.len().max()
    lines = []
    for row in table.itertuples():
        lines.append(f"{row.measure:<{width}}  {row.description}")
        if row.options:
            lines.append(f"{'':<{width}}  options: {row.options}")
    return "\n".join(lines)


def check_measure(measure, options):
    """ValueError naming the known measures (or the measure's options) when `measure` is not usable."""
    if measure not in MEASURES:
        known = ", ".join(MEASURES)
        raise ValueError(f"unknown measure {measure!r}; known: {known} (`hourglass measures` "
                         "describes them)")
    measure_plan(measure, **options)


def stimuli(path):
    """Number of probe stimuli in an activations file."""
    attrs = describe(path)
    with open_h5(path, "activations") as f:
        counts = {len(f["layers"][name]) for name in attrs["layer_names"]}
    if len(counts) != 1:
        raise ValueError(f"activations file {path} has layers of different stimuli counts {sorted(counts)}")
    return counts.pop()


def same_probe_images(a, b):
    """False when both files have an `input` layer and the images in it differ."""
    names_a, names_b = describe(a)["layer_names"], describe(b)["layer_names"]
    if "input" not in names_a or "input" not in names_b:
        return True
    return np.array_equal(read_layer(a, "input"), read_layer(b, "input"))


def pick_layers(a, b, layers=None):
    """The layers of `a` and of `b` to compare: `layers` (each must be in both), or
    every layer of `a` that `b` has too, in `a`'s order."""
    names_a, names_b = describe(a)["layer_names"], describe(b)["layer_names"]
    if not layers:
        common = [n for n in names_a if n in names_b]
        if not common:
            raise ValueError(f"{a} and {b} have no layer name in common ({', '.join(names_a)} / "
                             f"{', '.join(names_b)}); name layers with --layer, or compare the "
                             "full matrix with --matrix")
        return common, common
    for path, names in ((a, names_a), (b, names_b)):
        missing = [n for n in layers if n not in names]
        if missing:
            raise ValueError(f"{path} has no layer {', '.join(map(repr, missing))}; its layers: "
                             f"{', '.join(names)}")
    return list(layers), list(layers)


def compare_files(a, b, measure, options=None, layers=None, matrix=False, dtype="float64",
                  device="cpu", log=print):
    """`measure` between the layers of activation files `a` and `b`.

    Returns a DataFrame: with matrix=False one row per layer (`layer`, the
    shapes in a and b, `value`, `dead`), the layer compared with the same
    layer of the other file; with matrix=True one row per pair of layers
    (`layer_a`, `layer_b`, `value`, `dead`). Dead layers get NaN.
    """
    options = options or {}
    check_measure(measure, options)
    n_a, n_b = stimuli(a), stimuli(b)
    if n_a != n_b:
        raise ValueError(f"{a} holds {n_a} probe stimuli and {b} {n_b}: a measure compares "
                         "representations of the same stimuli; record both on the same dataset file")
    if not same_probe_images(a, b):
        log(f"warning: the input layers of {a} and {b} differ: they were recorded on different "
            "probe images, so their similarity says little")
    if matrix:
        rows = describe(a)["layer_names"] if not layers else pick_layers(a, b, layers)[0]
        cols = describe(b)["layer_names"] if not layers else rows
    else:
        rows, cols = pick_layers(a, b, layers)
    side = {}
    for key, path, names in (("a", a, rows), ("b", b, cols)):
        loaded = {name: read_layer(path, name) for name in names}
        side[key] = (names, loaded, {n for n, X in loaded.items() if is_degenerate(X, measure, options)})
    for key, path in (("a", a), ("b", b)):
        for name in sorted(side[key][2]):
            log(f"warning: {name} of {path} tells no probe images apart (a dead layer); "
                f"no {measure} for it")
    (names_a, X_a, dead_a), (names_b, X_b, dead_b) = side["a"], side["b"]
    live_a = [n for n in names_a if n not in dead_a]
    live_b = [n for n in names_b if n not in dead_b]
    values = np.full((len(names_a), len(names_b)), np.nan)
    if matrix and live_a and live_b:
        kept = all_pairs([X_a[n] for n in live_a], measure, others=[X_b[n] for n in live_b],
                         names=[f"{a}:{n}" for n in live_a], other_names=[f"{b}:{n}" for n in live_b],
                         dtype=getattr(torch, dtype), device=device, **options)
        values[np.ix_([names_a.index(n) for n in live_a], [names_b.index(n) for n in live_b])] = kept
    elif not matrix:
        function = MEASURES[measure].function
        for i, (na, nb) in enumerate(zip(names_a, names_b)):
            if na not in dead_a and nb not in dead_b:
                values[i, i] = function(X_a[na], X_b[nb], names=(f"{a}:{na}", f"{b}:{nb}"),
                                        dtype=getattr(torch, dtype), **options)

    def dead(na, nb):
        return ", ".join(which for which, is_dead in (("a", na in dead_a), ("b", nb in dead_b))
                         if is_dead)

    if matrix:
        return pd.DataFrame([{"layer_a": na, "layer_b": nb, "value": values[i, j], "dead": dead(na, nb)}
                             for i, na in enumerate(names_a) for j, nb in enumerate(names_b)])
    shapes_a, shapes_b = describe(a)["shapes"], describe(b)["shapes"]
    return pd.DataFrame([{"layer": na if na == nb else f"{na}/{nb}",
                          "shape_a": "x".join(map(str, shapes_a[na])),
                          "shape_b": "x".join(map(str, shapes_b[nb])),
                          "value": values[i, i], "dead": dead(na, nb)}
                         for i, (na, nb) in enumerate(zip(names_a, names_b))])


def format_comparison(table, measure, matrix=False) -> str:
    """The table of `compare_files` as text: layer rows, or a layer x layer matrix."""
    if not matrix:
        shown = table.assign(value=[f"{v:.4f}" if np.isfinite(v) else "nan" for v in table["value"]],
                             dead=[f"dead in {d}" if d else "" for d in table["dead"]])
        return shown.rename(columns={"value": measure}).to_string(index=False)
    square = table.pivot(index="layer_a", columns="layer_b", values="value")
    square = square.loc[list(dict.fromkeys(table["layer_a"])), list(dict.fromkeys(table["layer_b"]))]
    square.index.name, square.columns.name = "a \\ b", None
    return f"{measure}, rows: layers of a, columns: layers of b (nan: dead layer)\n" + \
        square.to_string(float_format=lambda v: f"{v:.4f}", na_rep="nan")


def read_options(pairs):
    """--option KEY=VALUE arguments as a dict; values read as YAML (true, 0.5, spearman)."""
    import yaml

    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {pair!r} is not KEY=VALUE, e.g. --option debiased=true")
        options[key] = yaml.safe_load(value)
    return options
