"""Stimuli x features matrices: conversion and the checks every measure shares."""

import numpy as np
import torch


def as_matrix(X, dtype=torch.float64, device=None) -> torch.Tensor:
    """Stimuli x features tensor of `X` (NumPy or torch, any layer shape).

    Row i holds stimulus i's activations flattened (a conv layer's
    channels x height x width becomes one row). The tensor may share memory
    with `X`: callers never modify it in place.
    """
    if not isinstance(X, torch.Tensor):
        X = np.asarray(X)
        if any(stride < 0 for stride in X.strides):  # torch cannot view X[:, ::-1]
            X = X.copy()
    X = torch.as_tensor(X, device=device)
    return X.reshape(X.shape[0], -1).to(dtype)


def representation(X, name: str, *, dtype=torch.float64, device=None, min_stimuli: int = 3) -> torch.Tensor:
    """`X` as a stimuli x features tensor, after checking a measure can use it.

    Raises ValueError naming `name` when `X` is not numeric, has fewer than
    `min_stimuli` stimuli or no features, holds NaN or inf, or is constant
    across stimuli (no measure of similarity is defined for it).
    """
    try:
        M = as_matrix(X, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError, IndexError) as error:
        raise ValueError(
            f"representation {name!r} is not a numeric stimuli x features array "
            f"(got {type(X).__name__}); pass a NumPy array or torch tensor with one row per stimulus"
        ) from error
    n, p = M.shape
    if n < min_stimuli:
        raise ValueError(
            f"representation {name!r} has {n} stimuli (rows); this measure needs at least "
            f"{min_stimuli}: measure it on more probe stimuli"
        )
    if p == 0:
        raise ValueError(f"representation {name!r} has no features (shape {tuple(M.shape)}); check the layer dump")
    finite = torch.isfinite(M)
    if not bool(finite.all()):
        nan = int(torch.isnan(M).sum())
        raise ValueError(
            f"representation {name!r} holds {nan} NaN and {int((~finite).sum()) - nan} infinite values; "
            "similarity is undefined: check the activations (e.g. a diverged training run) and drop or fix them"
        )
    if bool((M == M[:1]).all()):
        raise ValueError(
            f"representation {name!r} is constant across stimuli (every stimulus has the same pattern, "
            "e.g. a layer whose units are all dead); its similarity to anything is undefined: leave it out"
        )
    return M


def check_same_stimuli(n_x: int, n_y: int, names) -> None:
    """Raise ValueError unless two representations hold the same number of stimuli."""
    if n_x != n_y:
        raise ValueError(
            f"representations {names[0]!r} and {names[1]!r} hold different numbers of stimuli "
            f"({n_x} vs {n_y}); both must be measured on the same probe stimuli, in the same order"
        )


def representation_pair(X, Y, names, *, dtype=torch.float64, min_stimuli: int = 3):
    """`X` and `Y` checked by `representation` and for equal stimulus counts.

    On `X`'s device when it is a tensor (Y is moved there), else on the CPU.
    """
    device = X.device if isinstance(X, torch.Tensor) else None
    X = representation(X, names[0], dtype=dtype, device=device, min_stimuli=min_stimuli)
    Y = representation(Y, names[1], dtype=dtype, device=X.device, min_stimuli=min_stimuli)
    check_same_stimuli(X.shape[0], Y.shape[0], names)
    return X, Y


def unit_rows(Z: torch.Tensor, centre: bool) -> torch.Tensor:
    """Rows of `Z` (centred first when `centre`) scaled to unit norm, so that
    their inner products are Pearson r (or cosines). A row of norm 0, a
    constant pattern, becomes zeros: r = 0 with every other row."""
    if centre:
        Z = Z - Z.mean(dim=-1, keepdim=True)
    norm = Z.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, Z / norm.clamp_min(torch.finfo(Z.dtype).tiny), 0.0)
