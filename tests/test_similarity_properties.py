"""Properties every measure should have: identity, symmetry, invariances."""

import numpy as np
import pytest
import scipy.stats
import torch

from hourglass.similarity import (
    MEASURES,
    cca,
    linear_cka,
    procrustes,
    procrustes_distance,
    pwcca,
    rbf_cka,
    rdm,
    rsa,
    svcca,
)

SIMILARITIES = [rsa, linear_cka, rbf_cka, procrustes, cca, svcca, pwcca]


@pytest.fixture
def pair():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 6)) + 1.0
    Y = X @ rng.normal(size=(6, 5)) + 0.8 * rng.normal(size=(40, 5))
    return X, Y


def orthogonal(p, seed):
    return scipy.stats.ortho_group.rvs(p, random_state=seed)


def skewed(p, seed):
    """An invertible but far from orthogonal linear map."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(p, p)) @ np.diag(np.geomspace(1, 30, p))


def test_identical_inputs_give_one_or_distance_zero(pair):
    X, _ = pair
    for f in SIMILARITIES:
        assert f(X, X) == pytest.approx(1.0, abs=1e-10), f.__name__
    assert linear_cka(X, X, debiased=True) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(X, X, debiased=True) == pytest.approx(1.0, abs=1e-12)
    for compare in ("spearman", "kendall_tau_a"):
        assert rsa(X, X, compare=compare) == pytest.approx(1.0, abs=1e-12)
    for kind in ("angular", "euclidean"):
        assert procrustes_distance(X, X, kind) == pytest.approx(0.0, abs=1e-6)


def test_symmetry(pair):
    X, Y = pair
    for f in (rsa, linear_cka, rbf_cka, procrustes, procrustes_distance, cca, svcca):
        assert f(X, Y) == pytest.approx(f(Y, X), abs=1e-12), f.__name__
    for compare in ("spearman", "kendall_tau_a"):
        assert rsa(X, Y, compare=compare) == pytest.approx(rsa(Y, X, compare=compare), abs=1e-12)
    assert linear_cka(X, Y, debiased=True) == pytest.approx(linear_cka(Y, X, debiased=True), abs=1e-12)
    assert pwcca(X, Y) != pytest.approx(pwcca(Y, X), abs=1e-6)  # weights come from the first argument


def test_ranges(pair):
    X, Y = pair
    for f in (linear_cka, rbf_cka, procrustes, cca, svcca, pwcca):
        assert 0.0 <= f(X, Y) <= 1.0, f.__name__
    assert 0.0 <= procrustes_distance(X, Y) <= np.pi / 2
    assert 0.0 <= procrustes_distance(X, Y, "euclidean") <= np.sqrt(2)


def test_cka_invariant_to_orthogonal_maps_and_isotropic_scaling_not_to_linear_maps(pair):
    X, Y = pair
    Xt = 7.5 * X @ orthogonal(6, 1) - 3.0
    for f in (linear_cka, rbf_cka):
        for debiased in (False, True):
            assert f(Xt, Y, debiased=debiased) == pytest.approx(f(X, Y, debiased=debiased), abs=1e-10)
    assert abs(linear_cka(X @ skewed(6, 2), Y) - linear_cka(X, Y)) > 1e-3


def test_cca_invariant_to_invertible_linear_maps(pair):
    X, Y = pair
    Xt, Yt = X @ skewed(6, 3) + 5.0, Y @ skewed(5, 4)
    assert cca(Xt, Yt) == pytest.approx(cca(X, Y), abs=1e-10)
    assert pwcca(X, Yt) == pytest.approx(pwcca(X, Y), abs=1e-10)  # Y enters only through its span


def test_procrustes_and_svcca_invariant_to_orthogonal_maps_not_to_linear_maps(pair):
    X, Y = pair
    Xt = 0.2 * X @ orthogonal(6, 5) + 1.0
    for f in (procrustes, procrustes_distance, svcca):
        assert f(Xt, Y) == pytest.approx(f(X, Y), abs=1e-10), f.__name__
    assert abs(procrustes(X @ skewed(6, 6), Y) - procrustes(X, Y)) > 1e-3


def test_rdm_invariances(pair):
    X, Y = pair
    rng = np.random.default_rng(12)
    # correlation: each stimulus's pattern may be shifted and scaled
    shifted = X * rng.uniform(0.5, 2.0, size=(40, 1)) + rng.normal(size=(40, 1))
    np.testing.assert_allclose(rdm(shifted), rdm(X), atol=1e-12)
    np.testing.assert_allclose(rdm(X @ orthogonal(6, 7) + 4.0, "euclidean"), rdm(X, "euclidean"), atol=1e-10)
    np.testing.assert_allclose(rdm(3.0 * X, "cosine"), rdm(X, "cosine"), atol=1e-12)
    # rank comparisons ignore monotone transforms of the dissimilarities
    assert rsa(X, Y, "sqeuclidean", "spearman") == pytest.approx(rsa(X, Y, "euclidean", "spearman"), abs=1e-12)


def test_rdm_diagonal_is_zero_and_matrix_symmetric(pair):
    X, _ = pair
    for metric in ("correlation", "euclidean", "sqeuclidean", "cosine"):
        D = rdm(X, metric)
        assert np.all(np.diag(D) == 0)
        np.testing.assert_allclose(D, D.T, atol=1e-15)


def test_unrelated_representations_score_lower_than_related(pair):
    X, Y = pair
    Z = np.random.default_rng(13).normal(size=(40, 5))
    for name, entry in MEASURES.items():
        f = entry.function
        if name == "procrustes_distance":
            assert f(X, Y) < f(X, Z)
        elif name != "cca":  # 11 units on 40 stimuli: CCA overfits both
            assert f(X, Y) > f(X, Z), name


def test_float32_close_to_float64(pair):
    X, Y = pair
    for f in SIMILARITIES:
        assert f(X, Y, dtype=torch.float32) == pytest.approx(f(X, Y), abs=1e-5), f.__name__
