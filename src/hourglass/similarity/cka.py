"""Centred kernel alignment (CKA): linear, RBF, and streamed over minibatches."""

import math

import torch

from hourglass.similarity.arrays import representation_pair
from hourglass.similarity.plan import Plan, compare_pair
from hourglass.similarity.rdm import dissimilarities


def linear_cka(X, Y, debiased: bool = False, *, names=("X", "Y"), dtype=torch.float64) -> float:
    """Linear CKA between `X` and `Y` (stimuli x features each).

    With K = X~ X~^T and L = Y~ Y~^T the linear Gram matrices of the
    column-centred representations,
      CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),
    which for the biased HSIC = tr(HKHL) / (n-1)^2 (H = I - 11^T/n) is
      ||Y~^T X~||_F^2 / (||X~^T X~||_F ||Y~^T Y~||_F)   (Kornblith et al. 2019, ICML).
    debiased=True uses the unbiased HSIC estimator of Song et al. 2012
    (JMLR), as Nguyen, Raghu & Kornblith 2021 (ICLR) do; it needs n >= 4
    stimuli and removes the bias towards 1 that the biased estimator has when
    features outnumber stimuli.

    Range: biased [0, 1]; debiased [-1, 1] (it can be negative; no square
    root is taken of HSIC(K, L), so never NaN). Identical inputs give 1.
    Invariant to orthogonal transforms and isotropic scaling of either
    representation and to translations, but not to arbitrary invertible
    linear maps. Symmetric in X and Y.
    """
    return compare_pair(linear_cka_plan(debiased), X, Y, names, dtype)


def rbf_cka(
    X, Y, threshold: float = 1.0, debiased: bool = False, *, names=("X", "Y"), dtype=torch.float64
) -> float:
    """CKA with Gaussian (RBF) kernels (Kornblith et al. 2019, ICML).

    K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)), with the bandwidth set per
    representation as sigma^2 = threshold^2 * median of the squared
    distances over all n^2 ordered pairs, the zero diagonal included (as in
    Kornblith et al.'s code; NumPy's median: the mean of the two middle
    values for an even count). CKA is then computed from K and L as in
    `linear_cka` (biased or, with debiased=True, unbiased HSIC).

    Range: biased [0, 1]; debiased [-1, 1]. Identical inputs give 1.
    Invariant to orthogonal transforms, translations and isotropic scaling
    (the bandwidth scales with the data). Symmetric in X and Y.
    Raises ValueError when more than half of the squared distances are 0
    (the bandwidth would be 0).
    """
    return compare_pair(rbf_cka_plan(threshold, debiased), X, Y, names, dtype)


def linear_cka_plan(debiased: bool = False) -> Plan:
    """Plan for `linear_cka`: a summary is the representation's centred Gram matrix."""
    return _gram_plan(lambda X, name: _linear_gram(X), debiased)


def rbf_cka_plan(threshold: float = 1.0, debiased: bool = False) -> Plan:
    """Plan for `rbf_cka`: a summary is the representation's centred RBF Gram matrix."""
    if not threshold > 0:
        raise ValueError(f"rbf_cka threshold must be positive, got {threshold!r}")
    return _gram_plan(lambda X, name: _rbf_gram(X, threshold, name), debiased)


class MinibatchCKA:
    """Linear CKA streamed over minibatches of stimuli (Nguyen, Raghu & Kornblith 2021, ICLR).

      CKA_mb = mean_b HSIC_1(K_b, L_b) / sqrt(mean_b HSIC_1(K_b, K_b) mean_b HSIC_1(L_b, L_b))
    with HSIC_1 the unbiased estimator of Song et al. 2012 on batch b's
    linear Gram matrices. The state is three running sums, so activations
    never have to be held for all stimuli at once. The value depends on the
    batch size; with a single batch holding all stimuli it equals
    `linear_cka(X, Y, debiased=True)`. Range [-1, 1].

        cka = MinibatchCKA(names=("enc1", "dec1"))
        for X_batch, Y_batch in batches:
            cka.update(X_batch, Y_batch)
        cka.compute()
    """

    def __init__(self, *, names=("X", "Y"), dtype=torch.float64):
        self.names = names
        self.dtype = dtype
        self.batches = 0
        self._sums = {"xy": 0.0, "xx": 0.0, "yy": 0.0}

    def update(self, X, Y) -> None:
        """Add one minibatch: the same n >= 4 stimuli as rows of `X` and `Y`."""
        names = [f"{name} (batch {self.batches})" for name in self.names]
        X, Y = representation_pair(X, Y, names, dtype=self.dtype, min_stimuli=4)
        n = X.shape[0]
        K, L = _u_centred(_linear_gram(X)), _u_centred(_linear_gram(Y))
        for key, (A, B) in {"xy": (K, L), "xx": (K, K), "yy": (L, L)}.items():
            self._sums[key] += float((A * B).sum()) / (n * (n - 3))
        self.batches += 1

    def compute(self) -> float:
        """CKA over the minibatches seen so far."""
        if self.batches == 0:
            raise ValueError("MinibatchCKA has seen no minibatch: call update(X, Y) first")
        xx, yy = self._sums["xx"], self._sums["yy"]
        for name, hsic in zip(self.names, (xx, yy)):
            if not hsic > 0:
                raise ValueError(
                    f"representation {name!r} has no variance under the unbiased HSIC over "
                    f"{self.batches} minibatch(es); CKA is undefined: use larger batches or leave it out"
                )
        return self._sums["xy"] / math.sqrt(xx * yy)


def _gram_plan(gram, debiased: bool) -> Plan:
    def summarise(X, name):
        K = gram(X, name)
        centred = _u_centred(K) if debiased else _centred(K)
        v = _packed(centred)
        norm = v.norm()
        # Centring removes everything of a Gram matrix that a constant
        # representation could produce; a norm at rounding level means
        # HSIC(K, K) = 0 and CKA would be 0/0.
        if not norm > K.norm() * K.shape[0] * torch.finfo(K.dtype).eps:
            estimator = "unbiased" if debiased else "biased"
            raise ValueError(
                f"representation {name!r} has no variance left after centring its Gram matrix "
                f"({estimator} HSIC with itself is 0); CKA is undefined: leave it out"
            )
        return v / norm

    def combine(A, B):
        return torch.stack(list(A)) @ torch.stack(list(B)).T

    return Plan(
        summarise,
        combine,
        summary_bytes=lambda n, p, itemsize: n * (n + 1) // 2 * itemsize,
        min_stimuli=4 if debiased else 3,
    )


def _linear_gram(X: torch.Tensor) -> torch.Tensor:
    X = X - X.mean(dim=0)
    return X @ X.T


def _rbf_gram(X: torch.Tensor, threshold: float, name: str) -> torch.Tensor:
    distances = dissimilarities(X, "sqeuclidean")
    median = _median(distances)
    if not median > 0:
        raise ValueError(
            f"representation {name!r}: more than half of its stimulus pairs have identical patterns, so the "
            "median squared distance and the RBF bandwidth are 0; use linear_cka or leave it out"
        )
    return torch.exp(-distances / (2.0 * threshold**2 * median))


def _median(values: torch.Tensor) -> torch.Tensor:
    # NumPy's convention (mean of the two middle values for an even count),
    # which Kornblith et al.'s bandwidth uses; torch.median takes the lower one.
    values = values.flatten()
    count = values.numel()
    lower = torch.kthvalue(values, (count + 1) // 2).values
    upper = torch.kthvalue(values, count // 2 + 1).values
    return (lower + upper) / 2


def _centred(K: torch.Tensor) -> torch.Tensor:
    # H K H with H = I - 11^T/n: biased HSIC(K, L) = <HKH, HLH>_F / (n-1)^2.
    return K - K.mean(dim=0) - K.mean(dim=1, keepdim=True) + K.mean()


def _u_centred(K: torch.Tensor) -> torch.Tensor:
    # U-centring (Szekely & Rizzo 2014, Ann. Stat.): with K~ = K with its
    # diagonal zeroed, U_ij = K~_ij - r_i/(n-2) - r_j/(n-2) + s/((n-1)(n-2))
    # off the diagonal (r row sums, s total sum of K~), U_ii = 0. Then Song
    # et al.'s unbiased HSIC(K, L) = <U(K), U(L)>_F / (n(n-3)), an inner
    # product, so the debiased CKA batches like the biased one.
    n = K.shape[0]
    K = K.clone()
    K.fill_diagonal_(0.0)
    rows = K.sum(dim=1)
    U = K - rows[:, None] / (n - 2) - rows[None, :] / (n - 2) + K.sum() / ((n - 1) * (n - 2))
    U.fill_diagonal_(0.0)
    return U


def _packed(S: torch.Tensor) -> torch.Tensor:
    # The upper triangle of symmetric S with off-diagonal entries times sqrt 2:
    # half the memory of S, and <packed(S), packed(T)> = <S, T>_F.
    n = S.shape[0]
    i, j = torch.triu_indices(n, n, device=S.device)
    v = math.sqrt(2.0) * S[i, j]
    v[i == j] = S.diagonal()
    return v

