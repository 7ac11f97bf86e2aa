"""Dead units: per layer, seed and checkpoint, the share of units whose
activation is the same for every probe image. They tell no image apart, and
a layer of only dead units has no RDM: its RC is undefined."""

import numpy as np

from hourglass.activations import checkpoint_epoch, describe, read_layer
from hourglass.io import write_table


def dead_share(activations):
    """The share of units (columns) constant over the probe images (rows)."""
    return float(np.mean(np.ptp(activations, axis=0) == 0))


def run(activations, settings, out, threads=1):
    rows = []
    for path in activations:
        attrs = describe(path)
        for index, layer in enumerate(attrs["layer_names"]):
            rows.append(dict(variant=attrs["variant"], seed=int(attrs["seed"]),
                             epoch=checkpoint_epoch(attrs["checkpoint"]), layer=layer,
                             layer_index=index, dead=dead_share(read_layer(path, layer))))
    write_table(rows, out["dead_units"])
