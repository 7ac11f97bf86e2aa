"""Uncertainty and significance by resampling stimuli: bootstrap and permutation tests."""

from typing import NamedTuple

import numpy as np
import torch

from hourglass.similarity.arrays import representation, representation_pair
from hourglass.similarity.measures import measure_plan
from hourglass.similarity.plan import compare_pair
from hourglass.similarity.rsa import compare_rdm_vectors, rsa_plan

# Pairs of permuted RDM entries gathered at once by `permutation_test`.
_PERMUTATION_BLOCK = 2**22


class Interval(NamedTuple):
    estimate: float  # the measure on all stimuli
    low: float
    high: float


class PermutationResult(NamedTuple):
    estimate: float  # the observed RSA value
    p_value: float
    null: np.ndarray  # the measure under each permutation


def bootstrap(
    X,
    Y,
    measure: str,
    n: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    *,
    names=("X", "Y"),
    dtype=torch.float64,
    **measure_kwargs,
) -> Interval:
    """Percentile bootstrap interval of `measure` (a name in `MEASURES`) between `X` and `Y`.

    Draws `n` resamples of the stimuli with replacement (the same draw for X
    and Y), computes the measure on each, and returns the measure on all
    stimuli with the (1 - ci)/2 and (1 + ci)/2 quantiles of the resampled
    values (NumPy's linear interpolation). Seeded: the same seed gives the
    same interval.

    RDM-based measures (rsa): a stimulus drawn twice would be compared with
    its own copy, a dissimilarity of 0 that says nothing about the
    representation and inflates RDM correlations. Both RDMs are computed
    once on all stimuli; a resample's RDM vector holds the entries
    D[s_a, s_b] for all positions a < b of the resample with s_a != s_b
    (pairs of distinct stimuli, with their multiplicity), and pairs of a
    stimulus with itself are left out (as rsatoolbox's bootstrap does).
    Other measures are computed on the resampled rows as they are.

    Raises ValueError (naming the resample) if a resample is degenerate,
    which only happens for very few stimuli.
    """
    if not 0 < ci < 1:
        raise ValueError(f"bootstrap ci must be a coverage in (0, 1), got {ci!r}")
    if n < 1:
        raise ValueError(f"bootstrap needs n >= 1 resamples, got {n!r}")
    plan = measure_plan(measure, **measure_kwargs)
    X, Y = representation_pair(X, Y, names, dtype=dtype, min_stimuli=plan.min_stimuli)
    estimate = compare_pair(plan, X, Y, names, dtype)
    stimuli = X.shape[0]
    generator = torch.Generator().manual_seed(seed)
    if plan.rdm_steps is not None:
        to_rdm, prepare = plan.rdm_steps
        D_x, D_y = to_rdm(X), to_rdm(Y)
        i, j = torch.triu_indices(stimuli, stimuli, offset=1)
    values = np.empty(n)
    for b in range(n):
        draw = torch.randint(stimuli, (stimuli,), generator=generator).to(X.device)
        labels = [f"{name} (bootstrap resample {b})" for name in names]
        if plan.rdm_steps is not None:
            a, c = draw[i.to(X.device)], draw[j.to(X.device)]
            distinct = a != c
            a, c = a[distinct], c[distinct]
            summaries = prepare(D_x[a, c], labels[0]), prepare(D_y[a, c], labels[1])
        else:
            summaries = tuple(
                plan.summarise(representation(Z[draw], label, dtype=dtype), label) for Z, label in zip((X, Y), labels)
            )
        values[b] = float(plan.combine([summaries[0]], [summaries[1]])[0, 0])
    low, high = np.quantile(values, [(1 - ci) / 2, (1 + ci) / 2])
    return Interval(estimate, float(low), float(high))


def permutation_test(
    X,
    Y,
    n: int = 1000,
    seed: int = 0,
    metric: str = "correlation",
    compare: str = "pearson",
    *,
    names=("X", "Y"),
    dtype=torch.float64,
) -> PermutationResult:
    """Permutation test of RSA between `X` and `Y` (Nili et al. 2014, PLoS Comput. Biol.).

    The null hypothesis is that the RDMs are unrelated: the stimulus labels
    of Y's RDM are shuffled (rows and columns by the same permutation) `n`
    times and `rsa(X, Y, metric, compare)` recomputed. One-sided (are the
    RDMs more similar than chance?), with the +1 correction that counts the
    observed labelling as one of the permutations:
      p = (1 + #{null >= observed}) / (n + 1),
    so p is never 0; null values within rounding of the observed count as
    reaching it. Seeded: the same seed gives the same p.
    """
    if n < 1:
        raise ValueError(f"permutation_test needs n >= 1 permutations, got {n!r}")
    plan = rsa_plan(metric, compare)
    X, Y = representation_pair(X, Y, names, dtype=dtype, min_stimuli=plan.min_stimuli)
    u, v = plan.summarise(X, names[0]), plan.summarise(Y, names[1])
    estimate = float(compare_rdm_vectors(u[None], v[None], compare)[0, 0])
    # Relabelling stimuli by pi sends RDM entry (i, j) to (pi_i, pi_j): it
    # rearranges the upper-triangle entries, and a prepared vector (centred,
    # ranked or raw) is rearranged the same way, so Y's is permuted directly.
    stimuli = X.shape[0]
    i, j = torch.triu_indices(stimuli, stimuli, offset=1)
    position = torch.empty(stimuli, stimuli, dtype=torch.long)
    position[i, j] = position[j, i] = torch.arange(i.shape[0])
    generator = torch.Generator().manual_seed(seed)
    block = max(1, _PERMUTATION_BLOCK // i.shape[0])
    null = []
    for start in range(0, n, block):
        permutations = torch.stack([torch.randperm(stimuli, generator=generator) for _ in range(min(block, n - start))])
        entries = position[permutations[:, i], permutations[:, j]].to(v.device)
        null.append(compare_rdm_vectors(u[None], v[entries], compare)[0].cpu().double().numpy())
    null = np.concatenate(null)
    tolerance = i.shape[0] * torch.finfo(dtype).eps * max(1.0, abs(estimate))
    p_value = (1 + int((null >= estimate - tolerance).sum())) / (n + 1)
    return PermutationResult(estimate, p_value, null)

