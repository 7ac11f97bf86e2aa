"""Bootstrap intervals and permutation tests, against plain re-computations."""

import numpy as np
import pytest
import torch

from hourglass.similarity import bootstrap, linear_cka, permutation_test, rdm, rsa


def related(n=15, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    return X, X @ rng.normal(size=(6, 4)) + noise * rng.normal(size=(n, 4))


def draws(n_stimuli, n, seed):
    """The resamples `bootstrap` documents: seeded torch draws, one after another."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(n_stimuli, (n_stimuli,), generator=generator).numpy() for _ in range(n)]


def test_bootstrap_rsa_leaves_out_pairs_of_a_stimulus_with_its_copy():
    X, Y = related()
    Dx, Dy = rdm(X), rdm(Y)
    values = []
    for s in draws(15, 40, seed=3):
        pairs = [(s[a], s[b]) for a in range(15) for b in range(a + 1, 15) if s[a] != s[b]]
        u = [Dx[i, j] for i, j in pairs]
        v = [Dy[i, j] for i, j in pairs]
        values.append(np.corrcoef(u, v)[0, 1])
    interval = bootstrap(X, Y, "rsa", n=40, ci=0.9, seed=3)
    assert interval.estimate == pytest.approx(rsa(X, Y), abs=1e-12)
    np.testing.assert_allclose([interval.low, interval.high], np.quantile(values, [0.05, 0.95]), atol=1e-12)


def test_bootstrap_other_measures_resample_rows():
    X, Y = related(n=20)
    values = [linear_cka(X[s], Y[s], debiased=True) for s in draws(20, 30, seed=1)]
    interval = bootstrap(X, Y, "linear_cka", n=30, seed=1, debiased=True)
    assert interval.estimate == pytest.approx(linear_cka(X, Y, debiased=True), abs=1e-12)
    np.testing.assert_allclose([interval.low, interval.high], np.quantile(values, [0.025, 0.975]), atol=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    X, Y = related(n=20)
    first = bootstrap(X, Y, "rsa", n=50, seed=0, compare="spearman")
    assert bootstrap(X, Y, "rsa", n=50, seed=0, compare="spearman") == first
    assert bootstrap(X, Y, "rsa", n=50, seed=1, compare="spearman") != first
    assert first.low <= first.estimate <= first.high


def test_bootstrap_checks_its_arguments():
    X, Y = related()
    with pytest.raises(ValueError, match="ci must be"):
        bootstrap(X, Y, "rsa", ci=95)
    with pytest.raises(ValueError, match="unknown similarity measure"):
        bootstrap(X, Y, "rv")
    with pytest.raises(ValueError, match="'pre' is constant"):
        bootstrap(np.ones((15, 3)), Y, "procrustes", names=("pre", "post"))


@pytest.mark.parametrize("compare", ["pearson", "spearman", "kendall_tau_a"])
def test_permutation_null_relabels_stimuli_of_one_rdm(compare):
    X, Y = related(n=9)
    result = permutation_test(X, Y, n=20, seed=5, metric="euclidean", compare=compare)
    assert result.estimate == pytest.approx(rsa(X, Y, "euclidean", compare), abs=1e-12)
    generator = torch.Generator().manual_seed(5)
    # Permuting Y's stimuli permutes the rows and columns of its RDM together.
    expected = [rsa(X, Y[torch.randperm(9, generator=generator).numpy()], "euclidean", compare) for _ in range(20)]
    np.testing.assert_allclose(result.null, expected, atol=1e-12)
    assert result.p_value == (1 + np.sum(result.null >= result.estimate - 1e-12)) / 21


def test_permutation_p_values():
    X, Y = related(n=20, noise=0.3)
    assert permutation_test(X, Y, n=99).p_value == pytest.approx(0.01)  # the +1 correction: never 0
    Z = np.random.default_rng(9).normal(size=(20, 4))
    assert permutation_test(X, Z, n=99).p_value > 0.05


def test_permutation_is_seeded():
    X, Y = related(n=12)
    a, b = permutation_test(X, Y, n=30, seed=4), permutation_test(X, Y, n=30, seed=4)
    np.testing.assert_array_equal(a.null, b.null)
    assert a.p_value == b.p_value
