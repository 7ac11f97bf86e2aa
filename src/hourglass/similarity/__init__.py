"""Similarity of neural representations, as functions of stimuli x features arrays.

Every measure takes NumPy arrays or torch tensors (one row per stimulus, any
layer shape flattened), computes in torch (float64 by default) and raises
ValueError naming the bad representation instead of returning NaN.
`all_pairs` computes a measure between many representations at once;
`MEASURES` names them all.
"""

from hourglass.similarity.cca import cca, pwcca, svcca
from hourglass.similarity.cka import MinibatchCKA, linear_cka, rbf_cka
from hourglass.similarity.measures import MEASURES, Measure
from hourglass.similarity.pairs import all_pairs
from hourglass.similarity.procrustes import procrustes, procrustes_distance
from hourglass.similarity.rdm import as_matrix, constant_patterns, rdm, upper_triangle
from hourglass.similarity.resampling import Interval, PermutationResult, bootstrap, permutation_test
from hourglass.similarity.rsa import rsa

__all__ = [
    "MEASURES",
    "Interval",
    "Measure",
    "MinibatchCKA",
    "PermutationResult",
    "all_pairs",
    "as_matrix",
    "bootstrap",
    "cca",
    "constant_patterns",
    "linear_cka",
    "permutation_test",
    "procrustes",
    "procrustes_distance",
    "pwcca",
    "rbf_cka",
    "rdm",
    "rsa",
    "svcca",
    "upper_triangle",
]
