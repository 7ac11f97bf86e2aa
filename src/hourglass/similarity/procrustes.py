"""Orthogonal Procrustes similarity and shape distances."""

import torch

from hourglass.similarity.linalg import centred_svd, cross_nuclear_norms
from hourglass.similarity.plan import Plan, compare_pair

KINDS = ("angular", "euclidean")


def procrustes(X, Y, *, names=("X", "Y"), dtype=torch.float64) -> float:
    """Procrustes similarity nu between `X` and `Y` (stimuli x features each).

    With X~, Y~ column-centred and scaled to unit Frobenius norm,
      nu = ||X~^T Y~||_* = max over orthogonal Q of <X~ Q, Y~>_F
    (nuclear norm; Ding, Denain & Steinhardt 2021, NeurIPS), so that
    min_Q ||X~ Q - Y~||_F^2 = 2 - 2 nu. Feature counts may differ (the
    smaller representation is implicitly zero-padded).

    Range [0, 1]; identical inputs give 1. Invariant to orthogonal maps,
    translations and isotropic scaling of either representation, not to
    arbitrary invertible linear maps. Symmetric in X and Y.
    """
    return compare_pair(procrustes_plan(), X, Y, names, dtype)


def procrustes_distance(X, Y, kind: str = "angular", *, names=("X", "Y"), dtype=torch.float64) -> float:
    """Procrustes shape distance between `X` and `Y` (Williams et al. 2021, NeurIPS).

    With nu = `procrustes(X, Y)` (clamped into [-1, 1] against rounding):
      angular:   arccos(nu), range [0, pi/2], a metric on shapes;
      euclidean: sqrt(2 - 2 nu) = min_Q ||X~ Q - Y~||_F, range [0, sqrt 2].
    Identical inputs give 0 up to rounding: both distances are steep near
    nu = 1 (a rounding error e in nu gives about sqrt(2e)), so expect about
    1e-8 in float64 and 1e-3 in float32. Same invariances as `procrustes`. Symmetric.
    """
    return compare_pair(procrustes_distance_plan(kind), X, Y, names, dtype)


def procrustes_plan() -> Plan:
    """Plan for `procrustes`: a summary is U S / ||S|| from the centred SVD U S V^T.

    X~ X~^T = (U S)(U S)^T, so X~^T Y~ and (U_x S_x)^T (U_y S_y) differ only by
    orthogonal factors and share their singular values: an n x rank factor
    stands in for features that may far outnumber stimuli.
    """

    def summarise(X, name):
        U, s, _ = centred_svd(X)
        return U * (s / s.norm())

    return Plan(summarise, cross_nuclear_norms, summary_bytes=lambda n, p, itemsize: n * min(n, p) * itemsize)


def procrustes_distance_plan(kind: str = "angular") -> Plan:
    """Plan for `procrustes_distance`: `procrustes_plan` with nu mapped to a distance."""
    if kind not in KINDS:
        raise ValueError(f"unknown Procrustes distance {kind!r}; known: {', '.join(KINDS)}")
    similarity = procrustes_plan()

    def combine(A, B):
        nu = similarity.combine(A, B).clamp(-1.0, 1.0)
        return torch.arccos(nu) if kind == "angular" else torch.sqrt(2.0 - 2.0 * nu)

    return Plan(similarity.summarise, combine, similarity.summary_bytes)
