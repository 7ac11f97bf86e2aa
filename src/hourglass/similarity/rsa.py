"""Representational similarity analysis: comparing two representations' RDMs."""

import torch

from hourglass.similarity.linalg import inner_products
from hourglass.similarity.plan import Plan, compare_pair
from hourglass.similarity.rdm import METRICS, dissimilarities, upper_triangle

COMPARISONS = ("pearson", "spearman", "kendall_tau_a")

# Elements of the sign tensors built at once by Kendall's tau-a (128 MiB in float64).
_KENDALL_BLOCK = 2**24


def rsa(X, Y, metric: str = "correlation", compare: str = "pearson", *, names=("X", "Y"), dtype=torch.float64) -> float:
    """Similarity of the RDMs of `X` and `Y` (stimuli x features each).

    Builds each RDM with `metric` (see `rdm`), takes the m = n(n-1)/2 entries
    above the diagonal as vectors u, v and compares them with
      pearson:       r = sum (u - mean u)(v - mean v) / (|u - mean u| |v - mean v|);
      spearman:      Pearson r of the ranks (ties get their mean rank);
      kendall_tau_a: (concordant - discordant) / (m(m-1)/2) over pairs of
                     entries; tied pairs count as neither, so tied data cannot
                     reach 1 (tau-a, not tau-b; Nili et al. 2014 recommend it
                     for RDMs that predict ties). Costs O(m^2) time.
    Range [-1, 1]; identical representations give 1 (tau-a: if the RDM has
    no ties). Invariant to anything that leaves the RDMs unchanged (for
    correlation RDMs: per-stimulus shift and scale; orthogonal maps of
    features for euclidean) and, for spearman/kendall, to monotone
    transforms of the dissimilarities. Symmetric in X and Y.
    (Kriegeskorte, Mur & Bandettini 2008; Nili et al. 2014, PLoS Comput. Biol.)

    Raises ValueError naming the representation when one is degenerate or
    its RDM is constant.
    """
    return compare_pair(rsa_plan(metric, compare), X, Y, names, dtype)


def rsa_plan(metric: str = "correlation", compare: str = "pearson") -> Plan:
    """Plan for `rsa`: a summary is the RDM's upper triangle, prepared by `rdm_vector`."""
    if metric not in METRICS:
        raise ValueError(f"unknown RDM metric {metric!r}; known: {', '.join(METRICS)}")
    if compare not in COMPARISONS:
        raise ValueError(f"unknown RDM comparison {compare!r}; known: {', '.join(COMPARISONS)}")

    def summarise(X, name):
        return rdm_vector(upper_triangle(dissimilarities(X, metric)), compare, name)

    def combine(A, B):
        return compare_rdm_vectors(A, B, compare)

    return Plan(
        summarise,
        combine,
        summary_bytes=lambda n, p, itemsize: n * (n - 1) // 2 * itemsize,
        rdm_steps=(lambda X: dissimilarities(X, metric), lambda v, name: rdm_vector(v, compare, name)),
    )


def rdm_vector(v: torch.Tensor, compare: str, name: str) -> torch.Tensor:
    """Entries `v` of an RDM, prepared once so comparisons are products.

    pearson: centred and scaled to unit norm, so r is a dot product;
    spearman: the same applied to the ranks; kendall_tau_a: unchanged.
    """
    if bool((v == v[0]).all()):
        raise ValueError(
            f"the RDM of representation {name!r} is constant (all stimuli equally dissimilar, e.g. every "
            "pattern constant under the correlation metric); its RDM cannot be compared: leave it out"
        )
    if compare == "kendall_tau_a":
        return v
    if compare == "spearman":
        v = ranks(v)
    v = v - v.mean(dtype=torch.float64).to(v.dtype)
    return v.div_(torch.linalg.vector_norm(v, dtype=torch.float64).to(v.dtype))  # v is ours


def compare_rdm_vectors(A, B, compare: str) -> torch.Tensor:
    """(a, b) float64 comparisons between the vectors made by `rdm_vector` in
    `A` and in `B` (sequences, or the rows of matrices)."""
    if compare == "kendall_tau_a":
        return _kendall_tau_a(torch.stack(list(A)), torch.stack(list(B)))
    return inner_products(A, B)


def ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..m of the entries of `v`; tied entries share their mean rank."""
    _, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
    last = counts.cumsum(0)
    return (last - (counts - 1) / 2).to(v.dtype)[inverse]


def _kendall_tau_a(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    # tau_a(u, v) = sum over ordered pairs k != l of sign(u_k - u_l) sign(v_k - v_l),
    # divided by m(m-1): an inner product of sign vectors, accumulated over
    # blocks of k so that all (a, b) pairs come out of one matrix product.
    m = A.shape[1]
    block = max(1, _KENDALL_BLOCK // ((A.shape[0] + B.shape[0]) * m))
    total = A.new_zeros(A.shape[0], B.shape[0])
    for start in range(0, m, block):
        signs_A = torch.sign(A[:, start : start + block, None] - A[:, None, :]).flatten(1)
        signs_B = torch.sign(B[:, start : start + block, None] - B[:, None, :]).flatten(1)
        total += signs_A @ signs_B.T
    return total / (m * (m - 1))
