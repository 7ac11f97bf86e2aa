"""Canonical correlation analysis (CCA) and its SVCCA and PWCCA variants."""

import torch

from hourglass.similarity.linalg import centred_svd, cross_nuclear_norms, cross_products, svd
from hourglass.similarity.plan import Plan, compare_pair


def cca(X, Y, *, names=("X", "Y"), dtype=torch.float64) -> float:
    """Mean squared canonical correlation between `X` and `Y` (stimuli x features each).

    The canonical correlations rho_1 >= ... >= rho_r, r = min(rank X~, rank Y~),
    are the singular values of Q_x^T Q_y, with Q orthonormal bases of the
    column-centred representations' column spaces (directions with
    singular values at rounding level are dropped, so dead or duplicated
    units are harmless). Returns
      R^2_CCA = sum_i rho_i^2 / r = ||Q_x^T Q_y||_F^2 / r
    (Kornblith et al. 2019, ICML, who call it R^2_CCA; Hotelling 1936).

    Range [0, 1]; identical inputs give 1. Invariant to every invertible
    linear map and translation of either representation. Symmetric.
    Caution: when rank X~ + rank Y~ >= n, the column spaces intersect and
    some rho_i are trivially 1; with more features than stimuli use `svcca`
    or more stimuli.
    """
    return compare_pair(cca_plan(), X, Y, names, dtype)


def svcca(X, Y, keep: float = 0.99, *, names=("X", "Y"), dtype=torch.float64) -> float:
    """SVCCA: mean canonical correlation after an SVD reduction (Raghu et al. 2017, NeurIPS).

    Each column-centred representation keeps its top d singular directions,
    d the fewest whose squared singular values (variances) reach `keep` of
    the total: 99% of the variance by default, not of the sum of singular
    values. Returns the mean canonical correlation (not squared) between
    the reduced representations,
      SVCCA = sum_i rho_i / min(d_x, d_y).
    Range [0, 1]; identical inputs give 1. Invariant to orthogonal maps,
    translations and isotropic scaling (not to arbitrary linear maps, which
    change which directions are kept). Symmetric.
    """
    return compare_pair(svcca_plan(keep), X, Y, names, dtype)


def pwcca(X, Y, *, names=("X", "Y"), dtype=torch.float64) -> float:
    """Projection-weighted CCA (Morcos, Raghu & Bengio 2018, NeurIPS).

    With canonical correlations rho_i and X's canonical variates h_i
    (unit-norm n-vectors in the centred column space of X), each rho_i is
    weighted by how much of X's units it accounts for,
      alpha_i = sum_j |<h_i, x~_j>|   over X's centred units x~_j,
      PWCCA = sum_i alpha_i rho_i / sum_i alpha_i.
    Not symmetric: the weights come from the first argument, as in the
    paper (Google's reference code instead weights by whichever
    representation has fewer units). Range [0, 1]; identical inputs give 1.
    Invariant to invertible linear maps and translations of Y; for X only to
    translations, isotropic scaling and permuting or sign-flipping units
    (the L1 weights change under rotations of X's units).
    """
    return compare_pair(pwcca_plan(), X, Y, names, dtype)


def cca_plan() -> Plan:
    """Plan for `cca`: a summary is an orthonormal basis of the centred column space."""

    def summarise(X, name):
        U, _, _ = centred_svd(X)
        return U

    def combine(A, B):
        out = A[0].new_empty(len(A), len(B))
        for i, columns, products in cross_products(A, B, upper=B is A):
            out[i, columns] = products.square().sum(dim=(1, 2)) / min(products.shape[1:])
        return out.triu() + out.triu(1).T if B is A else out

    return Plan(summarise, combine, summary_bytes=lambda n, p, itemsize: n * min(n, p) * itemsize)


def svcca_plan(keep: float = 0.99) -> Plan:
    """Plan for `svcca`: a summary is an orthonormal basis of the kept singular directions."""
    if not 0 < keep <= 1:
        raise ValueError(f"svcca keep must be a fraction of variance in (0, 1], got {keep!r}")

    def summarise(X, name):
        U, s, _ = centred_svd(X)
        explained = torch.cumsum(s.square(), dim=0) / s.square().sum()
        # The fewest directions reaching `keep`; the tolerance keeps a
        # cumulative fraction that rounds to just below `keep` from costing
        # one more direction.
        d = int((explained < keep - 4 * torch.finfo(s.dtype).eps).sum()) + 1
        return U[:, :d]

    def combine(A, B):
        widths = torch.tensor([b.shape[1] for b in B], device=A[0].device)
        rank = torch.minimum(torch.tensor([a.shape[1] for a in A], device=A[0].device)[:, None], widths)
        return cross_nuclear_norms(A, B) / rank

    return Plan(summarise, combine, summary_bytes=lambda n, p, itemsize: n * min(n, p) * itemsize)


def pwcca_plan() -> Plan:
    """Plan for `pwcca`: a summary is a basis Q and the units in it, C = Q^T X~."""

    def summarise(X, name):
        U, s, Vh = centred_svd(X)
        return U, s[:, None] * Vh

    def combine(A, B):
        # One SVD per pair, batched over the pairs of a row whose bases have
        # the same width: Q_x^T Q_y = P diag(rho) R^T gives both directions,
        # since Q_y^T Q_x = R diag(rho) P^T.
        out = A[0][0].new_empty(len(A), len(B))
        symmetric = B is A
        for i, columns, products in cross_products([Q for Q, _ in A], [Q for Q, _ in B], upper=symmetric):
            P, rho, Rt = svd(products)
            out[i, columns] = _weighted(P, rho, A[i][1])
            if symmetric:
                for t, j in enumerate(columns):
                    out[j, i] = _weighted(Rt[t].mT, rho[t], A[j][1])
        return out

    return Plan(
        summarise,
        combine,
        summary_bytes=lambda n, p, itemsize: (n + p) * min(n, p) * itemsize,
        symmetric=False,
    )


def _weighted(P, rho, C_x) -> torch.Tensor:
    # X's canonical variates are h_i = Q_x p_i (p_i the columns of P), so
    # <h_i, x~_j> = p_i^T C_x[:, j]. P and rho may be batched.
    alpha = (P.mT @ C_x).abs().sum(dim=-1)
    return (alpha * rho).sum(dim=-1) / alpha.sum(dim=-1)
