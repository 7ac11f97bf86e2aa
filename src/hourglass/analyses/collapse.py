"""Posterior collapse of a VAE, per seed and checkpoint, on the probe images
(Bonheme & Grzes): which latent dimensions are active (their mean varies
over the images by more than a threshold), the KL of each dimension to the
prior, and the linear CKA between the mean and the sampled code. A
collapsed dimension carries no information about the image: its mean is
the same for every image, its KL near 0, and the sampled code there is
noise, which lowers the CKA between the mean and the sample."""

import numpy as np
import pandas as pd

from hourglass.activations import checkpoint_epoch, describe, read_layer
from hourglass.io import write_table
from hourglass.similarity import linear_cka

HEADS = ("mean", "logvar", "sampled")
KEY = ("variant", "seed", "epoch")


def layer_of_role(attrs, role, path):
    """The name of the one layer of an activation file whose role is `role`."""
    names = [n for n, r in zip(attrs["layer_names"], attrs["layer_roles"]) if r == role]
    if len(names) != 1:
        raise ValueError(f"activations file {path} (variant {attrs['variant']!r}) has no layer "
                         f"whose role is {role!r}: the collapse analysis reads a VAE's mean, "
                         "logvar and sampled layers; enable it for VAE variants only")
    return names[0]


def dimension_rows(mean, logvar, threshold):
    """Per latent dimension: the variance of the mean over the images, whether
    it is active (variance above `threshold`), and the KL of the posterior
    to N(0, 1), averaged over the images."""
    variance = mean.var(axis=0)
    kl = 0.5 * (mean ** 2 + np.exp(logvar) - logvar - 1).mean(axis=0)
    return [dict(dimension=d, variance=float(v), active=bool(v > threshold), kl=float(k))
            for d, (v, k) in enumerate(zip(variance, kl))]


def mean_sampled_cka(mean, sampled, record_from):
    """Linear CKA between the mean and the sampled code over the probe
    images, with the reason it is undefined ('' where it is not)."""
    if record_from == "mean":
        return float("nan"), "recorded with record_from: mean (the sampled layer is the mean)"
    try:
        return linear_cka(mean, sampled), ""
    except ValueError as error:  # a constant layer (every dimension collapsed) has no CKA
        return float("nan"), str(error)


def run(activations, settings, out, threads=1):
    threshold = settings["threshold"]
    summary, dimensions = [], []
    for path in activations:
        attrs = describe(path)
        if attrs["diverged"]:
            continue
        mean, logvar, sampled = (read_layer(path, layer_of_role(attrs, role, path))
                                 for role in HEADS)
        key = dict(variant=attrs["variant"], seed=int(attrs["seed"]),
                   epoch=checkpoint_epoch(attrs["checkpoint"]))
        rows = dimension_rows(mean, logvar, threshold)
        dimensions += [{**key, **row} for row in rows]
        cka, undefined = mean_sampled_cka(mean, sampled, attrs.get("record_from", "sampled"))
        summary.append(dict(**key, latent=len(rows), active_units=sum(r["active"] for r in rows),
                            kl=sum(r["kl"] for r in rows), cka_mean_sampled=cka,
                            undefined=undefined))
    # the columns named, so that a variant whose every seed diverged still has a header
    write_table(pd.DataFrame(summary, columns=[*KEY, "latent", "active_units", "kl",
                                               "cka_mean_sampled", "undefined"]), out["collapse"])
    write_table(pd.DataFrame(dimensions, columns=[*KEY, "dimension", "variance", "active", "kl"]),
                out["dimensions"])
