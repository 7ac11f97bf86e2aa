"""The registry of measures by name, as the pipeline and `all_pairs` refer to them."""

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

from hourglass.similarity.cca import cca, cca_plan, pwcca, pwcca_plan, svcca, svcca_plan
from hourglass.similarity.cka import linear_cka, linear_cka_plan, rbf_cka, rbf_cka_plan
from hourglass.similarity.plan import Plan
from hourglass.similarity.procrustes import (
    procrustes,
    procrustes_distance,
    procrustes_distance_plan,
    procrustes_plan,
)
from hourglass.similarity.rsa import rsa, rsa_plan


@dataclass(frozen=True)
class Measure:
    """description: one line for people; function: the pairwise function
    (X, Y, **options) -> float; plan: options -> the `Plan` that `function`
    and `all_pairs` both run."""

    description: str
    function: Callable[..., float]
    plan: Callable[..., Plan]


MEASURES = {
    "rsa": Measure("correlation of RDM upper triangles (metric=, compare=)", rsa, rsa_plan),
    "linear_cka": Measure("linear centred kernel alignment (debiased=)", linear_cka, linear_cka_plan),
    "rbf_cka": Measure(
        "Gaussian-kernel CKA, median-scaled bandwidth (threshold=, debiased=)", rbf_cka, rbf_cka_plan
    ),
    "procrustes": Measure("Procrustes similarity: nuclear norm of centred, normalised X^T Y", procrustes, procrustes_plan),
    "procrustes_distance": Measure(
        "Procrustes shape distance, arccos or sqrt(2 - 2 nu) (kind=)", procrustes_distance, procrustes_distance_plan
    ),
    "cca": Measure("mean squared canonical correlation", cca, cca_plan),
    "svcca": Measure("mean canonical correlation of top singular directions (keep=)", svcca, svcca_plan),
    "pwcca": Measure("projection-weighted CCA, weights from the first argument", pwcca, pwcca_plan),
}


def measure_plan(measure: str, **options) -> Plan:
    """The `Plan` of the registered `measure` with `options`; ValueError for unknown names or options."""
    if measure not in MEASURES:
        known = "; ".join(f"{name}: {entry.description}" for name, entry in MEASURES.items())
        raise ValueError(f"unknown similarity measure {measure!r}; known: {known}")
    plan = MEASURES[measure].plan
    signature = inspect.signature(plan)
    try:
        signature.bind(**options)
    except TypeError:
        raise ValueError(
            f"measure {measure!r} takes the options {signature}, got {sorted(options)}"
        ) from None
    for name, value in options.items():
        expected = signature.parameters[name].annotation
        if not is_of_type(value, expected):
            raise ValueError(
                f"option {name} of measure {measure!r} must be {TYPE_NAMES[expected]}, got {value!r}"
                f" ({type(value).__name__})")
    return plan(**options)


# The types a plan's options are annotated with; a value must be of its
# option's type exactly: the string "false" is no bool, 2.0 no int, and a
# number is finite.
TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def is_of_type(value, expected):
    if expected is bool or expected is str:
        return type(value) is expected
    if isinstance(value, bool) or not isinstance(value, (int, float) if expected is float else int):
        return False
    return math.isfinite(value)
