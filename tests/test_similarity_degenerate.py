"""Degenerate input raises ValueError naming the representation; low-rank input works."""

import numpy as np
import pytest
import torch

from hourglass.similarity import (
    MEASURES,
    MinibatchCKA,
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

FUNCTIONS = [entry.function for entry in MEASURES.values()]


def good(n=12, p=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, p))


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.__name__)
def test_constant_representation(f):
    constant = np.ones((12, 4))
    with pytest.raises(ValueError, match="'enc3' is constant across stimuli"):
        f(constant, good(), names=("enc3", "dec3"))
    with pytest.raises(ValueError, match="'dec3' is constant across stimuli"):
        f(good(), constant, names=("enc3", "dec3"))


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.__name__)
def test_too_few_stimuli(f):
    with pytest.raises(ValueError, match="'X' has 2 stimuli.*at least 3"):
        f(good(2), good(2))


def test_debiased_estimators_need_four_stimuli():
    with pytest.raises(ValueError, match="has 3 stimuli.*at least 4"):
        linear_cka(good(3), good(3), debiased=True)
    with pytest.raises(ValueError, match="has 3 stimuli.*at least 4"):
        rbf_cka(good(3), good(3), debiased=True)
    assert np.isfinite(linear_cka(good(3), good(3, seed=1)))


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite(f, bad):
    X = good()
    X[3, 1] = bad
    with pytest.raises(ValueError, match="'layer7' holds .*(NaN|infinite)"):
        f(good(), X, names=("layer6", "layer7"))


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.__name__)
def test_different_stimulus_counts(f):
    with pytest.raises(ValueError, match="'a' and 'b' hold different numbers of stimuli \\(12 vs 10\\)"):
        f(good(12), good(10), names=("a", "b"))


def test_not_an_array():
    with pytest.raises(ValueError, match="'X' is not a numeric"):
        linear_cka("activations", good())
    with pytest.raises(ValueError, match="'Y' is not a numeric"):
        cca(good(), None)


def test_constant_rdm():
    # Every stimulus's pattern is constant (a different constant each): the
    # representation varies, but every correlation distance is 1.
    X = np.arange(10.0)[:, None] * np.ones((10, 4))
    with pytest.raises(ValueError, match="RDM of representation 'X' is constant"):
        rsa(X, good(10))
    assert np.isfinite(rsa(X, good(10), metric="euclidean"))


def test_rdm_rejects_nan_with_name():
    X = good()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="'conv2' holds NaN"):
        rdm(X, name="conv2")


def test_rbf_bandwidth_zero():
    X = np.zeros((10, 3))
    X[:2] = 1.0  # most pairs are at distance 0: the median is 0
    with pytest.raises(ValueError, match="'X'.*median squared distance"):
        rbf_cka(X, good(10))


def test_bad_options():
    with pytest.raises(ValueError, match="unknown Procrustes distance 'cosine'"):
        procrustes_distance(good(), good(), "cosine")
    with pytest.raises(ValueError, match="keep must be"):
        svcca(good(), good(), keep=99)
    with pytest.raises(ValueError, match="threshold must be positive"):
        rbf_cka(good(), good(), threshold=0)
    with pytest.raises(ValueError, match="unknown RDM metric 'manhattan'"):
        rsa(good(), good(), metric="manhattan")
    with pytest.raises(ValueError, match="unknown RDM metric"):
        rdm(good(), "manhattan")


def test_minibatch_cka_errors():
    cka = MinibatchCKA(names=("enc1", "dec1"))
    with pytest.raises(ValueError, match="no minibatch"):
        cka.compute()
    cka.update(good(8), good(8, seed=1))
    with pytest.raises(ValueError, match="'enc1 \\(batch 1\\)' has 3 stimuli"):
        cka.update(good(3), good(3))
    with pytest.raises(ValueError, match="'enc1 \\(batch 1\\)' is constant"):
        cka.update(np.ones((6, 2)), good(6))


def low_rank(n=30, seed=0):
    """A representation, and the same with dead units and a duplicated unit."""
    X = good(n, 4, seed)
    padded = np.hstack([X, np.zeros((n, 20)), X[:, :1], np.zeros((n, 3))])
    return X, padded


def test_dead_units_change_nothing():
    X, padded = low_rank()
    Y = good(30, 3, seed=1)
    dead = np.hstack([X, np.zeros((30, 23))])
    for f in (linear_cka, rbf_cka, procrustes, cca, svcca, pwcca):
        assert f(dead, Y) == pytest.approx(f(X, Y), abs=1e-10), f.__name__
    # (correlation RDMs do change: silent units move each pattern's mean)
    assert rsa(dead, Y, "euclidean") == pytest.approx(rsa(X, Y, "euclidean"), abs=1e-12)
    assert pwcca(Y, dead) == pytest.approx(pwcca(Y, X), abs=1e-10)
    # a duplicated unit adds no direction: CCA sees the same column space
    assert cca(padded, Y) == pytest.approx(cca(X, Y), abs=1e-10)
    assert cca(padded, padded) == pytest.approx(1.0, abs=1e-10)


def test_rank_one_with_many_units():
    rng = np.random.default_rng(2)
    X = np.outer(rng.normal(size=20), rng.normal(size=50))  # 50 units, rank 1
    Y = good(20, 6, seed=3)
    for f in FUNCTIONS:
        assert np.isfinite(f(X, Y)) and np.isfinite(f(Y, X)), f.__name__
    assert svcca(X, X) == pytest.approx(1.0, abs=1e-10)


def test_svd_failure_falls_back_to_gesvd(monkeypatch):
    X, padded = low_rank()
    Y = good(30, 6, seed=4)
    expected = {f.__name__: f(padded, Y) for f in (procrustes, cca, svcca, pwcca)}

    def fail(*args, **kwargs):
        raise torch.linalg.LinAlgError("the algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", fail)
    monkeypatch.setattr(torch.linalg, "svdvals", fail)
    for f in (procrustes, cca, svcca, pwcca):
        assert f(padded, Y) == pytest.approx(expected[f.__name__], abs=1e-10), f.__name__
