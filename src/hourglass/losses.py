"""What training minimises: the losses of the objectives that
hourglass.objectives registers by name.

A `Loss` turns one minibatch into named terms: scalar tensors, each a mean
over the batch's images, among them `loss`, the one the optimiser minimises.
Training runs the model (a loss never does): on `inputs(batch)` — the clean
images, or a corruption of them — and hands its layers, keyed by role
(`Autoencoder.by_role`: `output` is the reconstruction whatever the model
names it), with the batch to `terms`. Every term becomes a metrics.csv column
per split (train_loss, val_recon, ...).

Whatever a loss needs of the batch is in `Batch`: the clean images, their
labels (for a classifier), the optimiser steps taken (for an annealing
schedule), the reconstruction loss `training.loss` names, a seeded noise
generator (for corruption or sampling; the model's sampled code draws from
it too), and the number of images of the split (for minibatch-weighted
sampling).
"""

import math
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
    of the objective and of the model takes, so that the run's seed fixes it;
    images: how many images the split the batch is drawn from holds."""

    x: torch.Tensor
    y: torch.Tensor
    step: int
    loss: str
    noise: torch.Generator
    images: int


def clean(batch):
    return batch.x


@dataclass(frozen=True)
class Loss:
    """terms: (layers by role, batch) -> {name: scalar tensor}, `loss` among them;
    inputs: batch -> what the model is run on."""

    terms: Callable[[dict, Batch], dict[str, torch.Tensor]]
    inputs: Callable[[Batch], torch.Tensor] = clean


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


def classifier() -> Loss:
    """Supervised training of a classifier (model.classes): the cross-entropy of
    its class scores against the labels; its accuracy is a term too."""
    def terms(layers, batch):
        scores = layers["classes"]
        loss = F.cross_entropy(scores, batch.y)
        return {"loss": loss, "accuracy": (scores.argmax(1) == batch.y).float().mean()}

    return Loss(terms)


# The variational objectives: each a reconstruction term (a log-likelihood:
# summed over the pixels, averaged over the images) plus a regulariser of the
# posterior N(mean, exp(logvar)), following disentanglement_lib (Locatello et
# al. 2019), whose settings the VAE study reproduces.
def log_likelihood_error(layers, batch):
    """-log p(x | z) per image, averaged over the batch: training.loss bce is a
    Bernoulli decoder (sigmoid cross-entropy of the logits), mse a Gaussian
    one (the squared error of the output, summed over the pixels, as
    disentanglement_lib's l2 loss)."""
    if batch.loss == "bce":
        error = F.binary_cross_entropy_with_logits(layers["logits"], batch.x, reduction="none")
    else:
        error = (layers["output"] - batch.x) ** 2
    return error.flatten(1).sum(1).mean()


def kl_per_dimension(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, 1)) of each latent dimension, averaged over the batch."""
    return 0.5 * (mean ** 2 + logvar.exp() - logvar - 1).mean(0)


def vae_terms(layers, batch, regulariser, **extra):
    """The terms of a VAE whose loss is recon + regulariser(kl): recon, kl,
    `extra` (tc, capacity, ...) and the KL of each latent dimension, kl0, kl1, ..."""
    recon = log_likelihood_error(layers, batch)
    dims = kl_per_dimension(layers["mean"], layers["logvar"])
    kl = dims.sum()
    return {"loss": recon + regulariser(kl), "recon": recon, "kl": kl, **extra,
            **{f"kl{i}": value for i, value in enumerate(dims)}}


def beta_vae(beta: float) -> Loss:
    """Higgins et al. 2017: recon + beta * KL."""
    return Loss(lambda layers, batch: vae_terms(layers, batch, lambda kl: beta * kl))


def gaussian_log_density(z, mean, logvar):
    """log N(z; mean, exp(logvar)), elementwise."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mean) ** 2 * torch.exp(-logvar))


def total_correlation(z, mean, logvar, images):
    """The total correlation KL(q(z) || prod_j q(z_j)) of the aggregate
    posterior, by minibatch-weighted sampling (Chen et al. 2018) from
    a batch's codes `z` (batch x latent) and posteriors, drawn from a split
    of `images` images: log q(z) ~ logsumexp_k log q(z | x_k) - log(N M), as
    Chen et al. write it and their code computes it. The constants add
    (latent - 1) log(N M) to the value and nothing to the gradient: on a
    batch that is its whole split (N = M) of independent, wide posteriors
    the estimate is (latent - 1) log M, not 0, and dependence adds the TC to
    it. (disentanglement_lib leaves the constants out.)"""
    log_q = gaussian_log_density(z[:, None], mean[None], logvar[None])  # code i x image k x dim
    log_nm = math.log(images * len(z))
    joint = torch.logsumexp(log_q.sum(2), dim=1) - log_nm
    marginals = (torch.logsumexp(log_q, dim=1) - log_nm).sum(1)
    return (joint - marginals).mean()


def beta_tc_vae(beta: float) -> Loss:
    """Chen et al. 2018: recon + KL + (beta - 1) * TC (the mutual information
    and dimension-wise KL weighted 1), TC by minibatch-weighted sampling; at
    beta 1, the plain VAE."""
    def terms(layers, batch):
        tc = total_correlation(layers["sampled"], layers["mean"], layers["logvar"], batch.images)
        return vae_terms(layers, batch, lambda kl: kl + (beta - 1) * tc, tc=tc)

    return Loss(terms)


def capacity(step, c_max, ramp_steps):
    """The annealed VAE's target KL after `step` optimiser steps: 0 rising
    linearly to c_max over ramp_steps, then c_max."""
    return c_max * min(1.0, step / ramp_steps)


def annealed_vae(gamma: float, c_max: float, ramp_steps: int) -> Loss:
    """Burgess et al. 2018: recon + gamma * |KL - C|, the capacity C ramped
    from 0 to c_max nats over ramp_steps optimiser steps."""
    def terms(layers, batch):
        c = capacity(batch.step, c_max, ramp_steps)
        return vae_terms(layers, batch, lambda kl: gamma * (kl - c).abs(),
                         capacity=torch.tensor(c))

    return Loss(terms)


def dip_covariance_penalty(mean, logvar, lambda_od, lambda_d):
    """DIP-VAE-II's penalty (Kumar et al. 2018): the covariance of the aggregate
    posterior over the batch, Cov[mean] + E[diag(exp(logvar))], pushed to the
    identity: lambda_od * sum of its squared off-diagonal entries + lambda_d *
    sum of its squared diagonal's distances to 1."""
    centred = mean - mean.mean(0)
    cov = centred.T @ centred / len(mean) + torch.diag(logvar.exp().mean(0))
    diagonal = torch.diagonal(cov)
    off = cov - torch.diag(diagonal)
    return lambda_od * (off ** 2).sum() + lambda_d * ((diagonal - 1) ** 2).sum()


def dip_vae_ii(lambda_od: float, lambda_d: float) -> Loss:
    """Kumar et al. 2018: recon + KL + the covariance penalty."""
    def terms(layers, batch):
        penalty = dip_covariance_penalty(layers["mean"], layers["logvar"], lambda_od, lambda_d)
        return vae_terms(layers, batch, lambda kl: kl + penalty, covariance_penalty=penalty)

    return Loss(terms)
