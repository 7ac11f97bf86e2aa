"""All-pairs comparisons of a study's representations with one similarity
measure: every (variant, seed, checkpoint, layer) against every other.

Seeds that diverged are left out (see activations.without_diverged).
A layer that tells no probe images apart (a dead layer: every image alike,
or for RSA an RDM with all dissimilarities equal) has no similarity to
anything; it is left out of the computation, its row and column are NaN
(never 0), its `constant` label is true and its `undefined` label says why;
each pair's `undefined` in the CSV names the side(s) and why.
"""

import numpy as np
import pandas as pd
import torch

from hourglass.activations import checkpoint_epoch, layer_regions, read_layer, without_diverged
from hourglass.checks import check_activation_files
from hourglass.io import write_matrix, write_table
from hourglass.progress import every, log_line
from hourglass.similarity import all_pairs, rdm, upper_triangle

LABELS = ["variant", "seed", "epoch", "trained_epochs", "layer", "layer_index"]


def representations(described):
    """Labels (a DataFrame, one row per representation) and a loader for each,
    of activation files given as {path: describe(path)}."""
    rows, loaders = [], []
    for path, attrs in described.items():
        regions = layer_regions(attrs)
        for index, layer in enumerate(attrs["layer_names"]):
            rows.append(dict(variant=attrs["variant"], seed=int(attrs["seed"]),
                             epoch=checkpoint_epoch(attrs["checkpoint"]),
                             trained_epochs=int(attrs["epoch"]), layer=layer, layer_index=index,
                             region=regions[layer]))
            loaders.append(lambda path=path, layer=layer: read_layer(path, layer))
    return pd.DataFrame(rows), loaders


def undefined_reason(X, measure, options):
    """Why no similarity is defined for representation `X`, for people ('' where
    it is): every probe image alike, or, for RSA, an RDM with every
    dissimilarity equal (e.g. one unit under the correlation metric)."""
    if (X == X[:1]).all():
        return "dead layer (every probe image alike)"
    if measure == "rsa":
        metric = options.get("metric", "correlation")
        T = upper_triangle(rdm(X, metric))
        if T.max() == T.min():
            one_unit = X.shape[1] == 1 and metric == "correlation"
            return "1 unit: correlation RDM undefined" if one_unit else "constant RDM"
    return ""


def compare(files, measure, options, dtype="float64", device="cpu", max_memory_gb=None,
            log=log_line):
    """The R x R matrix of `measure` over every representation in `files`, and its labels."""
    kept, diverged = without_diverged(files)
    if diverged:
        log(f"left out, diverged: {', '.join(f'{v} seed {s}' for v, s in diverged)}")
    labels, loaders = representations(kept)
    reasons = [undefined_reason(load(), measure, options) for load in loaders]
    labels["constant"] = [reason != "" for reason in reasons]
    labels["undefined"] = reasons
    for row in labels[labels["constant"]].itertuples():
        log(f"warning: {row.variant} seed {row.seed} epoch {row.epoch} {row.layer}: "
            f"{row.undefined}; left out of {measure}")
    keep = np.flatnonzero(~labels["constant"].to_numpy())
    names = [f"{r.variant}/seed{r.seed}/epoch {r.epoch}/{r.layer}" for r in labels.itertuples()]
    max_memory = None if max_memory_gb is None else int(max_memory_gb * 2**30)
    log(f"{measure}: {len(keep)} representations")
    throttled, last = every(30, log), []

    def progress(line):
        last[:] = [line]
        throttled(line)

    kept = all_pairs([loaders[i] for i in keep], measure, names=[names[i] for i in keep],
                     dtype=getattr(torch, dtype), device=device, max_memory=max_memory,
                     progress=progress, **options)
    log(f"{measure}: every pair done: {last[0]}")  # the summaries' forms among it
    matrix = np.full((len(labels), len(labels)), np.nan)
    matrix[np.ix_(keep, keep)] = kept
    return matrix, labels


def tidy(matrix, labels):
    """One row per pair i < j: the labels of both sides (a_*, b_*), the value,
    and `undefined`: why the value is NaN, e.g. "a: dead layer (every probe
    image alike); b: constant RDM" ('' where it is defined)."""
    i, j = np.triu_indices(len(labels), k=1)
    a = labels[LABELS].iloc[i].reset_index(drop=True).add_prefix("a_")
    b = labels[LABELS].iloc[j].reset_index(drop=True).add_prefix("b_")
    why_a, why_b = (labels["undefined"].to_numpy()[k] for k in (i, j))
    why_a = np.where(why_a != "", "a: " + why_a, "")
    why_b = np.where(why_b != "", "b: " + why_b, "")
    both = np.where((why_a != "") & (why_b != ""), "; ", "")
    undefined = pd.Series(why_a + both + why_b, name="undefined")
    return pd.concat([a, b, pd.Series(matrix[i, j], name="value"), undefined], axis=1)


def check_device(device):
    """ValueError, before any compute, where a job asked for CUDA sees none."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("similarity.device is 'cuda' but this job sees no CUDA device; "
                         "set similarity.device: cpu or run the job on a GPU")


def run(files, measure, settings, out_h5, out_csv, threads=1):
    """The pipeline's stage for one measure: matrix to HDF5, pairs to CSV."""
    check_activation_files(files)  # all of them, before any compute
    torch.set_num_threads(threads)
    check_device(settings["device"])
    matrix, labels = compare(files, measure, settings["options"], settings["dtype"],
                             settings["device"], settings["max_memory_gb"])
    write_matrix(out_h5, matrix, labels, measure, settings["options"])
    write_table(tidy(matrix, labels), out_csv)
