"""Ad-hoc comparison of two activation files with any registered measure
(`hourglass compare`), layer by layer, and the list of measures (`hourglass
measures`).

A layer that tells no probe images apart (see comparisons.undefined_reason) has
no similarity: its entries are NaN and `dead` names the file it is dead in,
as the pipeline's all-pairs jobs do.
"""

import inspect

import numpy as np
import pandas as pd
import torch

from hourglass.activations import read_layer
from hourglass.analyses.comparisons import undefined_reason
from hourglass.files import describe_file
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


def activations_file(path) -> dict:
    """`files.describe_file` of `path`; ValueError unless it is an activations file."""
    d = describe_file(path)
    if d["kind"] != "activations":
        raise ValueError(f"{path} is a {d['kind']} file, not an activations file "
                         "({variant}/seed{s}/activations/{checkpoint}.h5)")
    return d


def same_probe_images(a, b, names_a, names_b):
    """False when both files have an `input` layer and the images in it differ."""
    if "input" not in names_a or "input" not in names_b:
        return True
    return np.array_equal(read_layer(a, "input"), read_layer(b, "input"))


def pick_layers(a, b, names_a, names_b, layers=None):
    """The layers to compare: `layers` (each must be in both files), or every
    layer of `a` that `b` has too, in `a`'s order."""
    if not layers:
        common = [n for n in names_a if n in names_b]
        if not common:
            raise ValueError(f"{a} and {b} have no layer name in common ({', '.join(names_a)} / "
                             f"{', '.join(names_b)}); name layers with --layer, or compare the "
                             "full matrix with --matrix")
        return common
    for path, names in ((a, names_a), (b, names_b)):
        missing = [n for n in layers if n not in names]
        if missing:
            raise ValueError(f"{path} has no layer {', '.join(map(repr, missing))}; its layers: "
                             f"{', '.join(names)}")
    return list(layers)


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
    info_a, info_b = activations_file(a), activations_file(b)
    names_a, names_b = ([r["name"] for r in info["layers"]] for info in (info_a, info_b))
    n_a, n_b = info_a["stimuli"], info_b["stimuli"]
    if n_a != n_b:
        raise ValueError(f"{a} holds {n_a} probe stimuli and {b} {n_b}: a measure compares "
                         "representations of the same stimuli; record both on the same dataset file")
    if not same_probe_images(a, b, names_a, names_b):
        log(f"warning: the input layers of {a} and {b} differ: they were recorded on different "
            "probe images, so their similarity says little")
    if matrix and not layers:
        rows, cols = names_a, names_b
    else:
        rows = cols = pick_layers(a, b, names_a, names_b, layers)
    X_a, dead_a = _load(a, rows, measure, options, log)
    X_b, dead_b = _load(b, cols, measure, options, log)

    def dead(na, nb):
        return ", ".join(side for side, d in (("a", na in dead_a), ("b", nb in dead_b)) if d)

    torch_dtype = getattr(torch, dtype)
    if not matrix:
        shapes_a, shapes_b = ({r["name"]: r["shape"] for r in info["layers"]} for info in (info_a, info_b))
        function = MEASURES[measure].function
        return pd.DataFrame([
            {"layer": n, "shape_a": "x".join(map(str, shapes_a[n])),
             "shape_b": "x".join(map(str, shapes_b[n])),
             "value": np.nan if dead(n, n) else function(
                 X_a[n], X_b[n], names=(f"{a}:{n}", f"{b}:{n}"), dtype=torch_dtype, **options),
             "dead": dead(n, n)}
            for n in rows])
    live_a = [n for n in rows if n not in dead_a]
    live_b = [n for n in cols if n not in dead_b]
    values = pd.DataFrame(np.nan, index=rows, columns=cols)
    if live_a and live_b:
        values.loc[live_a, live_b] = all_pairs(
            [X_a[n] for n in live_a], measure, others=[X_b[n] for n in live_b],
            names=[f"{a}:{n}" for n in live_a], other_names=[f"{b}:{n}" for n in live_b],
            dtype=torch_dtype, device=device, **options)
    return pd.DataFrame([{"layer_a": na, "layer_b": nb, "value": values.loc[na, nb],
                          "dead": dead(na, nb)} for na in rows for nb in cols])


def _load(path, names, measure, options, log):
    """{layer: activations} of `names` in `path`, and the set of dead ones (logged)."""
    loaded = {name: read_layer(path, name) for name in names}
    dead = {name for name, X in loaded.items() if undefined_reason(X, measure, options)}
    for name in sorted(dead, key=names.index):
        log(f"warning: {name} of {path} tells no probe images apart (a dead layer); no {measure} for it")
    return loaded, dead


def _number(v):
    return f"{v:.4f}" if np.isfinite(v) else "nan"


def _aligned(header, rows, right):
    """Rows of text cells in columns; columns whose index is in `right` right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in [header, *rows])


def format_comparison(table, measure, matrix=False) -> str:
    """The table of `compare_files` as text: layer rows, or a layer x layer matrix."""
    if not matrix:
        rows = [(r.layer, r.shape_a, r.shape_b, _number(r.value), f"dead in {r.dead}" if r.dead else "")
                for r in table.itertuples()]
        return _aligned(("layer", "shape a", "shape b", measure, ""), rows, right={3})
    names_a = list(dict.fromkeys(table["layer_a"]))
    names_b = list(dict.fromkeys(table["layer_b"]))
    value = table.set_index(["layer_a", "layer_b"])["value"]
    rows = [(na, *(_number(value[na, nb]) for nb in names_b)) for na in names_a]
    return (f"{measure}; rows: layers of a, columns: layers of b (nan: a dead layer)\n"
            + _aligned(("a \\ b", *names_b), rows, right=set(range(1, len(names_b) + 1))))


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
