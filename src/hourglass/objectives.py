"""The registry of training objectives by name, as `training.objective` refers to them.

A new objective is one entry: a function of hourglass.losses that takes its
options (typed by their annotations, the schema's `training.objective`
branch of the same name) and returns the `Loss` training runs, and the roles
of the layers it reads (a VAE's `mean` and `logvar`), which the config checks
each variant's model has. The entries name their function rather than hold
it (as the analyses registry does), so that checking a config at start-up
reads the registry without importing torch, which takes seconds.
"""

import inspect
from dataclasses import dataclass

from hourglass.references import function_at


@dataclass(frozen=True)
class Objective:
    """description: one line for people; build: 'module:function' of the
    function that takes the options and returns the `Loss` training runs;
    reads: the roles of the layers its terms read (Autoencoder.by_role)."""

    description: str
    build: str
    reads: tuple[str, ...] = ("output",)


# The variational objectives' layers: the posterior's heads, the code drawn
# from it, and the decoder's logits and output.
VAE_ROLES = ("mean", "logvar", "sampled", "logits", "output")


OBJECTIVES = {
    "reconstruction": Objective(
        "reconstruct the input; training.loss: mse or bce (recon = loss)",
        "hourglass.losses:reconstruction"),
    "denoising": Objective(
        "reconstruct the clean input from one with Gaussian noise of noise_std added, clipped "
        "to [0, 1] (recon = loss)", "hourglass.losses:denoising"),
    "classifier": Objective(
        "classify: cross-entropy of the class scores against the labels (a model with "
        "model.classes; the accuracy is a term too)", "hourglass.losses:classifier", ("classes",)),
    "beta_vae": Objective(
        "VAE: recon + beta * KL (recon: -log p(x|z), bce Bernoulli, mse Gaussian)",
        "hourglass.losses:beta_vae", VAE_ROLES),
    "beta_tc_vae": Objective(
        "VAE: recon + KL + (beta - 1) * total correlation (minibatch-weighted sampling)",
        "hourglass.losses:beta_tc_vae", VAE_ROLES),
    "annealed_vae": Objective(
        "VAE: recon + gamma * |KL - C|, C ramped from 0 to c_max over ramp_steps steps",
        "hourglass.losses:annealed_vae", VAE_ROLES),
    "dip_vae_ii": Objective(
        "VAE: recon + KL + lambda_od * off-diagonal^2 + lambda_d * (diagonal - 1)^2 of the "
        "aggregate posterior's covariance", "hourglass.losses:dip_vae_ii", VAE_ROLES),
}


def objective_loss(objective):
    """The `Loss` of `training.objective` ({name: ..., options...}); ValueError
    naming the key for an unknown objective or options it does not take. (The
    schema types the options; this catches settings written by hand.)"""
    options = dict(objective)
    name = options.pop("name")
    if name not in OBJECTIVES:
        known = "; ".join(f"{key}: {entry.description}" for key, entry in OBJECTIVES.items())
        raise ValueError(f"training.objective.name {name!r} is not known; known: {known}")
    build = function_at(OBJECTIVES[name].build)
    signature = inspect.signature(build)
    try:
        signature.bind(**options)
    except TypeError:
        raise ValueError(f"training.objective {name!r} takes the options "
                         f"{list(signature.parameters)}, got {sorted(options)}") from None
    return build(**options)
