"""Learning dynamics (Bonheme & Grzes): each layer of one seed at each
checkpoint against the same layer at every other checkpoint, with the
all-pairs engine's measures. Where a layer's line against the final
checkpoint reaches 1 early, that layer was learned early: the paper finds
the encoder's layers learned long before the decoder's.

A layer that tells no probe images apart at a checkpoint has no similarity
there: its pairs are NaN, and `undefined` says why (never a plausible 0).
"""

import numpy as np
import pandas as pd
import torch

from hourglass.activations import (checkpoint_epoch, epoch_order, layer_regions, read_layer,
                                   without_diverged)
from hourglass.analyses.comparisons import undefined_reason
from hourglass.io import write_table
from hourglass.similarity import all_pairs

COLUMNS = ["variant", "seed", "layer", "layer_index", "region", "measure", "epoch_a", "epoch_b",
           "trained_a", "trained_b", "value", "undefined"]


def across_checkpoints(arrays, measure, names):
    """The K x K matrix of `measure` between one layer's representations at K
    checkpoints (`arrays`), NaN where one side is undefined, and each side's
    reason ('' where defined)."""
    reasons = [undefined_reason(X, measure, {}) for X in arrays]
    keep = [i for i, reason in enumerate(reasons) if not reason]
    matrix = np.full((len(arrays), len(arrays)), np.nan)
    if keep:
        matrix[np.ix_(keep, keep)] = all_pairs([arrays[i] for i in keep], measure,
                                               names=[names[i] for i in keep])
    return matrix, reasons


def layer_rows(key, checkpoints, matrix, reasons):
    """dynamics rows of one layer and measure: every pair of checkpoints a
    before b in training order (`checkpoints`: (label, trained epochs))."""
    rows = []
    for i, (epoch_a, trained_a) in enumerate(checkpoints):
        for j in range(i + 1, len(checkpoints)):
            epoch_b, trained_b = checkpoints[j]
            why = "; ".join(f"{side}: {reasons[k]}" for side, k in (("a", i), ("b", j))
                            if reasons[k])
            rows.append(dict(**key, epoch_a=epoch_a, epoch_b=epoch_b, trained_a=trained_a,
                             trained_b=trained_b, value=matrix[i, j], undefined=why))
    return rows


def run(activations, settings, out, threads=1):
    torch.set_num_threads(threads)
    kept, _ = without_diverged(activations)
    runs = {}  # seed: {checkpoint label: (path, attrs)}
    for path, attrs in kept.items():
        runs.setdefault(int(attrs["seed"]), {})[checkpoint_epoch(attrs["checkpoint"])] = (path,
                                                                                           attrs)
    rows = []
    for seed, files in sorted(runs.items()):
        order = epoch_order(files)
        attrs = files[order[-1]][1]
        regions = layer_regions(attrs)
        checkpoints = [(epoch, int(files[epoch][1]["epoch"])) for epoch in order]
        for index, layer in enumerate(attrs["layer_names"]):
            arrays = [read_layer(files[epoch][0], layer) for epoch in order]  # once, all measures
            names = [f"{attrs['variant']}/seed{seed}/epoch {epoch}/{layer}" for epoch in order]
            for measure in settings["measures"]:
                matrix, reasons = across_checkpoints(arrays, measure, names)
                key = dict(variant=attrs["variant"], seed=seed, layer=layer, layer_index=index,
                           region=regions[layer], measure=measure)
                rows += layer_rows(key, checkpoints, matrix, reasons)
    write_table(pd.DataFrame(rows, columns=COLUMNS), out["dynamics"])
