"""Representational dissimilarity matrices (RDMs) of stimuli x features arrays."""

import numpy as np
import torch

from hourglass.similarity.arrays import as_matrix, unit_rows

METRICS = ("correlation", "euclidean", "sqeuclidean", "cosine")


def rdm(X, metric: str = "correlation", *, name: str = "X", dtype=torch.float64):
    """Stimulus x stimulus dissimilarities of `X` (stimuli x features).

    correlation: 1 - Pearson r between two stimuli's activation patterns,
        range [0, 2]; invariant to shifting or scaling a pattern.
        A constant pattern (e.g. every ReLU unit silent) has no defined
        correlation; it is given r = 0 (dissimilarity 1) to every other
        stimulus, and `constant_patterns` counts such stimuli.
    cosine: 1 - cos(angle between two patterns), range [0, 2]; invariant to
        scaling a pattern. An all-zero pattern is given cosine 0 (dissimilarity 1).
    euclidean: ||x_i - x_j||, the plain Euclidean distance, range [0, inf)
        (not rsatoolbox's "euclidean", which is squared and divided by the
        number of units); invariant to translations and orthogonal maps of
        feature space.
    sqeuclidean: ||x_i - x_j||^2, same invariances.
    (Kriegeskorte, Mur & Bandettini 2008, Front. Syst. Neurosci.)

    The diagonal is exactly 0. Returns a torch tensor for tensor input, else a
    NumPy array. Raises ValueError naming `name` for NaN or inf input.
    """
    Z = as_matrix(X, dtype=dtype)
    if not bool(torch.isfinite(Z).all()):
        raise ValueError(f"representation {name!r} holds NaN or inf; its RDM is undefined: fix or drop the activations")
    D = dissimilarities(Z, metric)
    return D if isinstance(X, torch.Tensor) else D.cpu().numpy()


def dissimilarities(Z: torch.Tensor, metric: str) -> torch.Tensor:
    """The RDM of stimuli x features tensor `Z` under `metric` (see `rdm`)."""
    if metric in ("correlation", "cosine"):
        Z = unit_rows(Z, centre=metric == "correlation")
        D = (Z @ Z.T).neg_().add_(1.0)  # 1 - r without a second n x n matrix
    elif metric in ("euclidean", "sqeuclidean"):
        # Summing squared differences (not |a|^2 + |b|^2 - 2 a.b through a
        # matrix product) is slower but exact where it matters to rank-based
        # comparisons: identical patterns are at distance exactly 0, and
        # equal distances stay tied instead of differing in the last bits.
        D = torch.cdist(Z, Z, compute_mode="donot_use_mm_for_euclid_dist")
        if metric == "sqeuclidean":
            D = D.square()
    else:
        raise ValueError(f"unknown RDM metric {metric!r}; known: {', '.join(METRICS)}")
    D.fill_diagonal_(0.0)
    return D


def constant_patterns(X) -> int:
    """Number of stimuli whose activation pattern is constant across features."""
    Z = as_matrix(X)
    return int((Z.amax(dim=1) == Z.amin(dim=1)).sum())


def upper_triangle(D):
    """The entries above the diagonal of square matrix `D`, row by row."""
    n = D.shape[-1]
    if isinstance(D, torch.Tensor):
        # Row slices joined: index lists would take 8 times D's entries in
        # int64, and a mask gathers at half the speed.
        return torch.cat([D[..., i, i + 1 :] for i in range(n - 1)], dim=-1)
    i, j = np.triu_indices(n, k=1)
    return D[..., i, j]
