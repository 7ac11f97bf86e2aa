"""Representational dissimilarity matrices (RDMs) of stimuli x features arrays."""

import numpy as np
import torch


def as_matrix(X, dtype=torch.float64) -> torch.Tensor:
    """Stimuli x features tensor of `X` (NumPy or torch, any layer shape)."""
    X = torch.as_tensor(X)
    return X.reshape(X.shape[0], -1).to(dtype)


def rdm(X, metric: str = "correlation"):
    """Stimulus x stimulus dissimilarities of `X` (stimuli x features).

    correlation: 1 - Pearson r between two stimuli's activation patterns,
    range [0, 2]; invariant to shifting or scaling a stimulus's pattern.
    A constant pattern (e.g. every ReLU unit silent) has no defined
    correlation; it is given r = 0 (dissimilarity 1) to every other stimulus,
    and `constant_patterns` counts such stimuli.

    Returns a torch tensor for tensor input, else a NumPy array.
    """
    if metric != "correlation":
        raise ValueError(f"unknown RDM metric {metric!r}; known: 'correlation'")
    Z = as_matrix(X)
    Z = Z - Z.mean(dim=1, keepdim=True)
    norm = Z.norm(dim=1, keepdim=True)
    Z = torch.where(norm > 0, Z / norm.clamp_min(torch.finfo(Z.dtype).tiny), 0.0)
    D = 1.0 - Z @ Z.T
    D.fill_diagonal_(0.0)
    return D if isinstance(X, torch.Tensor) else D.numpy()


def constant_patterns(X) -> int:
    """Number of stimuli whose activation pattern is constant across features."""
    Z = as_matrix(X)
    return int((Z.amax(dim=1) == Z.amin(dim=1)).sum())


def upper_triangle(D):
    """The entries above the diagonal of square matrix `D`, row by row."""
    n = D.shape[-1]
    if isinstance(D, torch.Tensor):
        i, j = torch.triu_indices(n, n, offset=1, device=D.device)
        return D[..., i, j]
    i, j = np.triu_indices(n, k=1)
    return D[..., i, j]
