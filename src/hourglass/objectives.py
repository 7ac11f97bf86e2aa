"""The registry of training objectives by name, as `training.objective` refers to them.

An objective turns one minibatch into named terms: scalar tensors, each a mean
over the batch's images, among them `loss`, the one the optimiser minimises.
Training runs the model (an objective never does): on `inputs(batch)` — the
clean images, or a corruption of them — and hands its layers, keyed by role
(`Autoencoder.by_role`: `output` is the reconstruction whatever the model
names it), with the batch to `terms`. Every term becomes a metrics.csv column
per split (train_loss, val_recon, ...).

A new objective is one entry: a function of its options (typed by their
annotations, the schema's `training.objective` branch of the same name) that
returns a `Loss`. Whatever it needs of the batch is in `Batch`: the clean
images, their labels (for a classifier), the optimiser steps taken (for an
annealing schedule), the reconstruction loss `training.loss` names, and a
seeded noise generator (for corruption or sampling).
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

# training.loss: the reconstruction term of every objective that reconstructs
RECONSTRUCTION_LOSSES = {"mse": F.mse_loss, "bce": F.binary_cross_entropy}


@dataclass(frozen=True)
class Batch:
    """x: the clean images; y: their labels; step: optimiser steps taken before
    this batch (during evaluation, all of them so far); loss: the name of the
    reconstruction loss (training.loss); noise: the generator every random draw
    of the objective takes, so that the run's seed fixes it."""

    x: torch.Tensor
    y: torch.Tensor
    step: int
    loss: str
    noise: torch.Generator


def clean(batch):
    return batch.x


@dataclass(frozen=True)
class Loss:
    """terms: (layers by role, batch) -> {name: scalar tensor}, `loss` among them;
    inputs: batch -> what the model is run on."""

    terms: Callable[[dict, Batch], dict[str, torch.Tensor]]
    inputs: Callable[[Batch], torch.Tensor] = clean


@dataclass(frozen=True)
class Objective:
    """description: one line for people; build: options -> the `Loss` training runs."""

    description: str
    build: Callable[..., Loss]


def reconstruction_error(layers, batch):
    """The output's `training.loss` against the clean images, averaged over
    every pixel (exactly the F.mse_loss(model(x), x) of plain training)."""
    return RECONSTRUCTION_LOSSES[batch.loss](layers["output"], batch.x)


def reconstruction_terms(layers, batch):
    error = reconstruction_error(layers, batch)
    return {"loss": error, "recon": error}


def reconstruction() -> Loss:
    return Loss(reconstruction_terms)


def denoising(noise_std: float) -> Loss:
    def noisy(batch):
        # drawn on the CPU generator: the same noise whichever device trains
        noise = torch.randn(batch.x.shape, generator=batch.noise).to(batch.x.device)
        return (batch.x + noise_std * noise).clamp(0, 1)

    return Loss(reconstruction_terms, noisy)


OBJECTIVES = {
    "reconstruction": Objective(
        "reconstruct the input; training.loss: mse or bce (recon = loss)", reconstruction),
    "denoising": Objective(
        "reconstruct the clean input from one with Gaussian noise of noise_std added, clipped "
        "to [0, 1] (recon = loss)", denoising),
}


def objective_loss(objective) -> Loss:
    """The `Loss` of `training.objective` ({name: ..., options...}); ValueError
    naming the key for an unknown objective or options it does not take. (The
    schema types the options; this catches settings written by hand.)"""
    options = dict(objective)
    name = options.pop("name")
    if name not in OBJECTIVES:
        known = "; ".join(f"{key}: {entry.description}" for key, entry in OBJECTIVES.items())
        raise ValueError(f"training.objective.name {name!r} is not known; known: {known}")
    build = OBJECTIVES[name].build
    signature = inspect.signature(build)
    try:
        signature.bind(**options)
    except TypeError:
        raise ValueError(f"training.objective {name!r} takes the options "
                         f"{list(signature.parameters)}, got {sorted(options)}") from None
    return build(**options)
