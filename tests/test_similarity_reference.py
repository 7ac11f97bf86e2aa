"""Each measure against a plain, independent per-pair formula (NumPy loops, SciPy)."""

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats
import torch

from hourglass.similarity import (
    MinibatchCKA,
    all_pairs,
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
from hourglass.similarity.cka import _form


def related(n=30, p=8, q=6, noise=1.0, seed=0):
    """Two representations of the same n stimuli that share some structure."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) + 2.0  # an offset, so centring matters
    Y = X @ rng.normal(size=(p, q)) + noise * rng.normal(size=(n, q))
    return X, Y


# ---------------------------------------------------------------- references


def ref_rdm(X, metric):
    if metric == "correlation":
        n = len(X)
        return np.array([[1 - np.corrcoef(X[i], X[j])[0, 1] if i != j else 0.0 for j in range(n)] for i in range(n)])
    return scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(X, metric))


def ref_triangle(D):
    n = len(D)
    return np.array([D[i, j] for i in range(n) for j in range(i + 1, n)])


def ref_tau_a(u, v):
    m = len(u)
    total = 0.0
    for k in range(m):
        for l in range(k + 1, m):
            total += np.sign(u[k] - u[l]) * np.sign(v[k] - v[l])
    return total / (m * (m - 1) / 2)


def centring(n):
    return np.eye(n) - np.ones((n, n)) / n


def ref_hsic_biased(K, L):
    n = len(K)
    H = centring(n)
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def ref_hsic_unbiased(K, L):
    # Song et al. 2012, JMLR, eq. (5).
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (
        np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ K @ L @ one
    ) / (n * (n - 3))


def ref_cka(K, L, debiased):
    hsic = ref_hsic_unbiased if debiased else ref_hsic_biased
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def ref_rbf(X, threshold):
    D2 = scipy.spatial.distance.cdist(X, X, "sqeuclidean")
    return np.exp(-D2 / (2 * threshold**2 * np.median(D2)))


def ref_canonical(X, Y):
    """Canonical correlations and X's canonical variates by whitening covariances."""
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Sxx, Syy, Sxy = Xc.T @ Xc, Yc.T @ Yc, Xc.T @ Yc
    Wx = np.linalg.inv(scipy.linalg.sqrtm(Sxx).real)
    Wy = np.linalg.inv(scipy.linalg.sqrtm(Syy).real)
    U, rho, _ = np.linalg.svd(Wx @ Sxy @ Wy)
    r = min(X.shape[1], Y.shape[1])
    H = Xc @ Wx @ U[:, :r]  # canonical variates of X, unit norm
    return rho[:r], H, Xc


def ref_svd_reduce(X, keep):
    Xc = X - X.mean(0)
    U, s, _ = np.linalg.svd(Xc, full_matrices=False)
    total, d = 0.0, 0
    while total < keep * (s**2).sum():
        total += s[d] ** 2
        d += 1
    return U[:, :d] * s[:d]


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "sqeuclidean", "cosine"])
def test_rdm_matches_pairwise_formula(metric):
    X, _ = related(n=12)
    np.testing.assert_allclose(rdm(X, metric), ref_rdm(X, metric), atol=1e-10)


def test_rdm_keeps_tensor_type_and_constant_pattern_convention():
    X, _ = related(n=6)
    X[2] = 3.0  # a constant pattern: r = 0 with every other stimulus
    D = rdm(torch.tensor(X))
    assert isinstance(D, torch.Tensor) and isinstance(rdm(X), np.ndarray)
    np.testing.assert_allclose(D[2, [0, 1, 3, 4, 5]].numpy(), 1.0)
    assert D[2, 2] == 0


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_rsa_pearson_and_spearman(metric):
    X, Y = related(n=15)
    u, v = ref_triangle(ref_rdm(X, metric)), ref_triangle(ref_rdm(Y, metric))
    assert rsa(X, Y, metric) == pytest.approx(np.corrcoef(u, v)[0, 1], abs=1e-12)
    assert rsa(X, Y, metric, "spearman") == pytest.approx(scipy.stats.spearmanr(u, v).statistic, abs=1e-12)


def test_rsa_kendall_tau_a_by_pair_counting():
    X, Y = related(n=10)
    u, v = ref_triangle(ref_rdm(X, "euclidean")), ref_triangle(ref_rdm(Y, "euclidean"))
    assert rsa(X, Y, "euclidean", "kendall_tau_a") == pytest.approx(ref_tau_a(u, v), abs=1e-12)


def test_kendall_is_tau_a_not_tau_b_under_ties():
    # Integer patterns give tied Euclidean distances; tau-a counts tied pairs
    # as neither concordant nor discordant but keeps them in the denominator.
    rng = np.random.default_rng(3)
    X, Y = rng.integers(0, 3, size=(9, 2)), rng.integers(0, 3, size=(9, 2))
    u, v = ref_triangle(ref_rdm(X, "sqeuclidean")), ref_triangle(ref_rdm(Y, "sqeuclidean"))
    tau_a = rsa(X, Y, "sqeuclidean", "kendall_tau_a")
    assert tau_a == pytest.approx(ref_tau_a(u, v), abs=1e-12)
    assert abs(tau_a) < abs(scipy.stats.kendalltau(u, v, variant="b").statistic)
    assert rsa(X, X, "sqeuclidean", "kendall_tau_a") < 1.0  # ties: tau-a of identical RDMs stays below 1


def test_spearman_ties_get_mean_ranks():
    rng = np.random.default_rng(4)
    X, Y = rng.integers(0, 3, size=(9, 2)), rng.normal(size=(9, 3))
    u, v = ref_triangle(ref_rdm(X, "sqeuclidean")), ref_triangle(ref_rdm(Y, "sqeuclidean"))
    assert rsa(X, Y, "sqeuclidean", "spearman") == pytest.approx(scipy.stats.spearmanr(u, v).statistic, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_from_hsic_definition(debiased):
    X, Y = related(n=20, p=30, q=25)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    expected = ref_cka(X @ X.T, Y @ Y.T, debiased)  # HSIC centres K itself
    assert linear_cka(X, Y, debiased=debiased) == pytest.approx(expected, abs=1e-12)
    if not debiased:  # Kornblith et al.'s feature-space form
        feature_form = np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
        assert linear_cka(X, Y) == pytest.approx(feature_form, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n, p, q", [(20, 5, 8), (20, 5, 60), (20, 60, 5), (20, 60, 70), (130, 9, 140), (4, 1, 9)])
def test_linear_cka_feature_and_gram_forms_agree(n, p, q, debiased):
    # Both forms and the pairs across them; 130 stimuli pack into three bands
    # of rows, 4 is the fewest the unbiased HSIC takes.
    assert _form(20, 8) == _form(130, 9) == "feature form" and _form(20, 60) == _form(130, 140) == "Gram form"
    X, Y = related(n=n, p=p, q=q)
    expected = ref_cka(X @ X.T, Y @ Y.T, debiased)
    tolerance = 1e-10 if n == 4 else 1e-12  # 4 stimuli: the unbiased HSIC cancels to n(n-3) = 4 terms
    assert linear_cka(X, Y, debiased=debiased) == pytest.approx(expected, abs=tolerance)
    matrix = all_pairs([X, Y], "linear_cka", debiased=debiased)
    np.testing.assert_allclose(matrix, [[1, expected], [expected, 1]], atol=tolerance)


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_refuses_a_representation_constant_but_for_rounding(debiased):
    # float32 centring of 1000 + 1e-4 noise leaves rounding errors as large as the noise
    X = torch.tensor(1000 + 1e-4 * np.random.default_rng(0).normal(size=(50, 8)), dtype=torch.float32)
    with pytest.raises(ValueError, match="'X' has no variance left after centring"):
        linear_cka(X, X + 1, debiased=debiased, dtype=torch.float32)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("threshold", [0.5, 1.0])
def test_rbf_cka_from_hsic_definition(debiased, threshold):
    X, Y = related(n=17)  # odd n: an odd number of squared distances
    expected = ref_cka(ref_rbf(X, threshold), ref_rbf(Y, threshold), debiased)
    assert rbf_cka(X, Y, threshold, debiased) == pytest.approx(expected, abs=1e-12)
    X, Y = related(n=16)  # even count: NumPy's median averages the middle two
    expected = ref_cka(ref_rbf(X, threshold), ref_rbf(Y, threshold), debiased)
    assert rbf_cka(X, Y, threshold, debiased) == pytest.approx(expected, abs=1e-12)


def test_minibatch_cka_averages_unbiased_hsic_over_batches():
    X, Y = related(n=40, p=10, q=7)
    cka = MinibatchCKA()
    sums = np.zeros(3)
    for rows in np.array_split(np.arange(40), 4):
        cka.update(X[rows], Y[rows])
        K, L = X[rows] @ X[rows].T, Y[rows] @ Y[rows].T
        sums += [ref_hsic_unbiased(K, L), ref_hsic_unbiased(K, K), ref_hsic_unbiased(L, L)]
    assert cka.batches == 4
    assert cka.compute() == pytest.approx(sums[0] / np.sqrt(sums[1] * sums[2]), abs=1e-12)


def test_minibatch_cka_with_one_batch_is_debiased_cka():
    X, Y = related(n=25, p=9, q=40)
    cka = MinibatchCKA()
    cka.update(torch.tensor(X), torch.tensor(Y))
    assert cka.compute() == pytest.approx(linear_cka(X, Y, debiased=True), abs=1e-12)


def test_one_feature_each_gives_squared_pearson():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 1)), rng.normal(size=(12, 1))
    r = np.corrcoef(x[:, 0], y[:, 0])[0, 1]
    assert linear_cka(x, y) == pytest.approx(r**2, abs=1e-12)
    assert cca(x, y) == pytest.approx(r**2, abs=1e-12)
    assert procrustes(x, y) == pytest.approx(abs(r), abs=1e-12)


def test_procrustes_nuclear_norm_and_orthogonal_fit():
    X, Y = related(n=20, p=6, q=6)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Xc, Yc = Xc / np.linalg.norm(Xc), Yc / np.linalg.norm(Yc)
    nu = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    assert procrustes(X, Y) == pytest.approx(nu, abs=1e-12)
    Q, _ = scipy.linalg.orthogonal_procrustes(Xc, Yc)
    residual = np.linalg.norm(Xc @ Q - Yc)
    assert procrustes_distance(X, Y, "euclidean") == pytest.approx(residual, abs=1e-10)
    assert procrustes_distance(X, Y, "angular") == pytest.approx(np.arccos(nu), abs=1e-10)


def test_procrustes_with_unequal_feature_counts():
    X, Y = related(n=20, p=9, q=4)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    nu = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum() / (np.linalg.norm(Xc) * np.linalg.norm(Yc))
    assert procrustes(X, Y) == pytest.approx(nu, abs=1e-12)


def test_procrustes_with_more_features_than_stimuli():
    # The wide path summarises by the stimuli x stimuli Gram matrix, with a
    # dead and a duplicated unit among the features.
    X, Y = related(n=15, p=40, q=60)
    X[:, 3], X[:, 7] = 0.0, X[:, 5]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    nu = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum() / (np.linalg.norm(Xc) * np.linalg.norm(Yc))
    assert procrustes(X, Y) == pytest.approx(nu, abs=1e-12)
    assert procrustes(X, Y[:, :10]) == pytest.approx(
        np.linalg.svd(Xc.T @ Yc[:, :10], compute_uv=False).sum()
        / (np.linalg.norm(Xc) * np.linalg.norm(Yc[:, :10])), abs=1e-12)
    assert procrustes(X, Y, dtype=torch.float32) == pytest.approx(nu, abs=1e-6)
    assert procrustes(X, X) == pytest.approx(1.0, abs=1e-14)


def test_cca_mean_squared_canonical_correlation():
    X, Y = related(n=40, p=5, q=4, noise=2.0)
    rho, _, _ = ref_canonical(X, Y)
    assert cca(X, Y) == pytest.approx(np.mean(rho**2), abs=1e-10)


def test_svcca_keeps_99_percent_of_variance_and_averages_rho():
    rng = np.random.default_rng(6)
    # Features of very unequal variance, so the 99% cut drops some directions.
    X = rng.normal(size=(60, 8)) * np.array([10, 8, 6, 4, 1, 0.5, 0.1, 0.05])
    Y = X @ rng.normal(size=(8, 8)) + rng.normal(size=(60, 8))
    Xr, Yr = ref_svd_reduce(X, 0.99), ref_svd_reduce(Y, 0.99)
    assert 1 < Xr.shape[1] < 8
    rho, _, _ = ref_canonical(Xr, Yr)
    assert svcca(X, Y) == pytest.approx(np.mean(rho), abs=1e-10)
    Xr, Yr = ref_svd_reduce(X, 0.5), ref_svd_reduce(Y, 0.5)
    rho, _, _ = ref_canonical(Xr, Yr)
    assert svcca(X, Y, keep=0.5) == pytest.approx(np.mean(rho), abs=1e-10)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5)])
def test_pwcca_projection_weighting(shape):
    X, Y = related(n=50, p=shape[0], q=shape[1], noise=2.0)
    rho, H, Xc = ref_canonical(X, Y)
    alpha = np.abs(H.T @ Xc).sum(axis=1)
    assert pwcca(X, Y) == pytest.approx((alpha * rho).sum() / alpha.sum(), abs=1e-10)


def test_debiased_cka_can_be_negative_and_is_not_nan():
    # Independent representations of few stimuli: the unbiased estimate of
    # their (zero) dependence falls below 0 for some draws.
    rng = np.random.default_rng(7)
    for _ in range(50):
        X, Y = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
        value = linear_cka(X, Y, debiased=True)
        if value < 0:
            break
    assert value < 0 and np.isfinite(value)
    assert value == pytest.approx(ref_cka(X @ X.T, Y @ Y.T, debiased=True), abs=1e-12)
    cka = MinibatchCKA()
    cka.update(X, Y)
    assert cka.compute() == pytest.approx(value, abs=1e-12)


def test_all_measures_accept_layer_shapes_and_tensors():
    rng = np.random.default_rng(8)
    X4, Y2 = rng.normal(size=(10, 2, 3, 2)), rng.normal(size=(10, 5))
    X2 = X4.reshape(10, -1)
    for f in (rsa, linear_cka, rbf_cka, procrustes, cca, svcca, pwcca):
        assert f(X4, Y2) == pytest.approx(f(X2, Y2), abs=1e-12)
        assert f(torch.tensor(X4, dtype=torch.float32), torch.tensor(Y2)) == pytest.approx(f(X2, Y2), abs=1e-5)

