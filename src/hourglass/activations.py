"""Every named layer's activations on the probe stimuli, to and from HDF5.

Layout: group `layers` holds one float32 dataset per layer (stimuli x layer
shape); the root's attributes give the layer order, roles (hourglass.models.
ROLES: where each layer sits, whatever its name) and shapes, the seed,
the checkpoint and the epochs its weights were trained for, the variant and
its model settings, what a VAE's decoder read (`record_from`), the package
version, and `diverged`: empty, or why the run diverged, in which case the
file holds no layers.
"""

import json
import re
from pathlib import Path

import h5py
import numpy as np

from hourglass.data import load_split
from hourglass.io import atomic_path, open_h5, write_attrs

# What a VAE's decoder reads while the probe images are recorded: a code
# sampled from the posterior, drawn from a stream the variant, the seed and
# the weights' epochs fix, or the posterior's mean (the `sampled` layer is
# then the mean). Two variants draw apart, as separately trained models do:
# one stream for both would make their sampled codes alike wherever the
# posterior ignores the image, whatever the weights learned.
RECORD_FROM = ("sampled", "mean")


def record(checkpoint, data, out, threads=1, record_from="sampled"):
    """Run the probe set through `checkpoint` and write every layer to `out`."""
    # torch only here: the readers below serve the figure and table jobs,
    # which should not pay its seconds of start-up each
    import torch

    from hourglass.train import EVAL_BATCH, RECORD_NOISE, load_checkpoint, noise_stream

    if record_from not in RECORD_FROM:
        raise ValueError(f"record_from {record_from!r} is not known; choose "
                         f"{' or '.join(RECORD_FROM)}")
    torch.set_num_threads(threads)
    model, state = load_checkpoint(checkpoint)
    names, roles, batches = [], [], []
    if model is not None:
        x, _ = load_split(data, "probe")
        noise = (noise_stream(state["seed"], RECORD_NOISE, state["epoch"],
                              *state["variant"].encode())
                 if record_from == "sampled" else None)
        with torch.no_grad():
            batches = [model.layers(b, noise) for b in x.split(EVAL_BATCH)]
        names, roles = model.layer_names, model.layer_roles
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        layers = f.create_group("layers")
        for name in names:
            act = torch.cat([b[name] for b in batches]).numpy().astype(np.float32)
            layers.create_dataset(name, data=act, chunks=(min(len(act), 256), *act.shape[1:]),
                                  compression="gzip", shuffle=True)
        write_attrs(
            f, layer_names=names, layer_roles=roles,
            shapes={n: list(layers[n].shape[1:]) for n in names}, seed=state["seed"],
            epoch=state["epoch"], variant=state["variant"],
            model=state["model"], checkpoint=Path(checkpoint).stem, diverged=state["diverged"],
            record_from=record_from,
        )


def repeat_name(layer, copy):
    """The name of the `copy`-th repeat (1, 2, ...) of `layer` (model.repeat)."""
    return f"{layer}r{copy}"


def repeat_of(layer):
    """(the layer repeated, which copy) where `layer` is named as a repeat
    (repeat_name), else None."""
    match = re.fullmatch(r"(.+\d+)r(\d+)", layer)
    return (match[1], int(match[2])) if match else None


def layer_regions(attrs):
    """{layer: region} of an activation file (its describe() attributes): the
    region (input, encoder, bottleneck, decoder, output) of each layer's role."""
    from hourglass.models import ROLES  # with torch: not for the figures' readers

    return {name: ROLES[role] for name, role in zip(attrs["layer_names"], attrs["layer_roles"])}


def output_layer(attrs):
    """The name of the layer of an activation file (its attributes) whose role
    is output: the reconstruction, whatever the model calls it."""
    outputs = [n for n, r in zip(attrs["layer_names"], attrs["layer_roles"]) if r == "output"]
    if not outputs:
        raise ValueError(f"variant {attrs['variant']!r} has no layer whose role is output (its "
                         f"layers: {', '.join(attrs['layer_names'])}); nothing to reconstruct")
    return outputs[-1]


def epoch_order(epochs):
    """Checkpoint labels in training order: numbers ascending, then 'final'."""
    return sorted(set(epochs), key=lambda e: (e == "final", int(e) if e != "final" else 0))


def checkpoint_epoch(label):
    """The `epoch` column's value for a checkpoint label: 'epoch4' -> '4', 'final'."""
    return label.removeprefix("epoch")


def describe(path):
    """The attributes of an activations file, JSON fields decoded."""
    with open_h5(path, "activations") as f:
        attrs = dict(f.attrs)
    for key in ("layer_names", "layer_roles", "shapes", "model"):
        attrs[key] = json.loads(attrs[key])
    return attrs


def without_diverged(files):
    """The attributes of `files` ({path: describe(path)}) less those of every seed
    that diverged (at any checkpoint, so that every checkpoint keeps the same
    seeds), and those seeds as sorted (variant, seed) pairs."""
    attrs = {path: describe(path) for path in files}
    diverged = sorted({(a["variant"], int(a["seed"])) for a in attrs.values() if a["diverged"]})
    kept = {p: a for p, a in attrs.items() if (a["variant"], int(a["seed"])) not in diverged}
    return kept, diverged


def read_layer(path, layer):
    """One layer's activations (stimuli x units, flattened) as float64."""
    with open_h5(path, "activations") as f:
        if "layers" not in f or layer not in f["layers"]:
            raise ValueError(f"activations file {path} has no layer {layer!r}; delete it and re-run")
        try:
            act = f["layers"][layer][()]
        except (OSError, RuntimeError) as error:  # a damaged chunk
            raise OSError(f"cannot read layer {layer!r} of activations file {path} ({error}); "
                          "delete it and re-run snakemake, which writes it again") from error
    return act.reshape(len(act), -1).astype(np.float64)
