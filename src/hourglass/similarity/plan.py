"""How a measure is computed: summarise each representation once, combine summaries.

Every measure in this package is a `Plan`. Its pairwise function is
`combine([summarise(X)], [summarise(Y)])`, and `all_pairs` runs the same two
steps over many representations at once, so a matrix of similarities equals
the pairwise results by construction (tests check the batching).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hourglass.similarity.arrays import representation_pair


@dataclass(frozen=True)
class Plan:
    """summarise(X, name) -> summary of one validated stimuli x features tensor;
    combine(A, B) -> (len(A), len(B)) tensor of the measure between summaries;
    summary_bytes(stimuli, features, itemsize) -> upper bound on a summary's size,
    used by `all_pairs` to stay under `max_memory`;
    symmetric: measure(X, Y) == measure(Y, X);
    min_stimuli: fewest stimuli for which the measure is defined;
    rdm_steps: for measures that compare RDMs, (X -> RDM, (RDM entries, name)
    -> summary), so `bootstrap` can resample stimuli without pairing a
    stimulus with its own copy;
    form: for measures with more than one way to summarise, (stimuli,
    features) -> the name of the way taken, which `all_pairs` reports."""

    summarise: Callable[[torch.Tensor, str], Any]
    combine: Callable[[Sequence[Any], Sequence[Any]], torch.Tensor]
    summary_bytes: Callable[[int, int, int], int]
    symmetric: bool = True
    min_stimuli: int = 3
    rdm_steps: tuple[Callable, Callable] | None = None
    form: Callable[[int, int], str] | None = None


def compare_pair(plan: Plan, X, Y, names=("X", "Y"), dtype=torch.float64) -> float:
    """The measure `plan` between representations `X` and `Y`, as a float."""
    X, Y = representation_pair(X, Y, names, dtype=dtype, min_stimuli=plan.min_stimuli)
    return float(plan.combine([plan.summarise(X, names[0])], [plan.summarise(Y, names[1])])[0, 0])
