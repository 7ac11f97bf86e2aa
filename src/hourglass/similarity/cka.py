"""Centred kernel alignment (CKA): linear, RBF, and streamed over minibatches."""

import math
from typing import NamedTuple

import torch

from hourglass.similarity.arrays import representation_pair
from hourglass.similarity.linalg import inner_products
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
    """Plan for `linear_cka`: a summary is the representation's centred Gram
    matrix, or its centred features where those are cheaper (`_form`).

    Two forms of the same inner products <K~, L~> of centred Gram matrices:
    the Gram form costs n^2 p per representation and n^2 per pair, the
    feature form n p^2 and n p_x p_y (||X~^T Y~||_F^2 and, debiased, the
    corrections of the U-centring, which need only each stimulus's squared
    norm). Both give the same number to rounding; pairs across the forms
    are computed as tr(Y~^T K~ Y~).
    """

    def summarise(X, name):
        return _linear_summary(X, debiased, name)

    return Plan(
        summarise,
        _combine_summaries,
        # feature form: F, and the rows' float64 norms where debiased
        summary_bytes=lambda n, p, itemsize: (
            n * p * itemsize + 8 * n * debiased if _form(n, p) == "feature form" else _packed_size(n) * itemsize),
        min_stimuli=4 if debiased else 3,
        form=_form,
    )


def rbf_cka_plan(threshold: float = 1.0, debiased: bool = False) -> Plan:
    """Plan for `rbf_cka`: a summary is the representation's centred RBF Gram matrix."""
    if not threshold > 0:
        raise ValueError(f"rbf_cka threshold must be positive, got {threshold!r}")

    def summarise(X, name):
        return _gram_summary(_rbf_gram(X, threshold, name), _u_centred_ if debiased else _centred, name)

    return Plan(
        summarise,
        _combine_summaries,
        summary_bytes=lambda n, p, itemsize: _packed_size(n) * itemsize,
        min_stimuli=4 if debiased else 3,
    )


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
        K, L = _u_centred_(_linear_gram(X)), _u_centred_(_linear_gram(Y))
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


def _form(stimuli, features):
    """The cheaper form of a linear CKA summary, measured: with 40 random
    representations in float32 on 2 cores the feature form was the faster
    up to about 160 features at 1,000 stimuli, 240 at 2,000 and 450 at
    4,000 (the Gram form's passes over n^2 entries are memory-bound and slow
    down as they outgrow the caches). Its summary is never the larger."""
    return "feature form" if features <= max(5 * math.sqrt(stimuli), 0.12 * stimuli) else "Gram form"


class _Features(NamedTuple):
    """A feature-form summary: F F^T is the centred Gram matrix divided by
    HSIC(K, K)^(1/2) (F = X~ / ||K~||^(1/2) for the biased HSIC); `norms` the
    squared norms of F's rows (for the U-centring; None for the biased HSIC)."""

    F: torch.Tensor
    norms: torch.Tensor | None


def _linear_summary(X, debiased, name):
    n, dtype = X.shape[0], X.dtype
    scale = torch.linalg.vector_norm(X)
    X = X - X.mean(dim=0)
    # Centring leaves rounding errors of about eps |x| per entry: a
    # representation whose variation is at that level (a constant one in
    # all but rounding) has nothing to measure.
    _check_variance(torch.linalg.vector_norm(X), scale, n, dtype, debiased, name)
    gram_norm = _squared_products(X, X).sqrt()  # ||K~||_F, from p x p
    norms = X.square().sum(dim=1, dtype=torch.float64)[None] if debiased else None
    # HSIC(K, K) up to its constant factor, ||K~||^2 or <U(K), U(K)>, without
    # a pass over the n x n Gram matrix; U-centring can cancel it to rounding.
    hsic = gram_norm.square() + (_u_corrections(norms, norms)[0, 0] if debiased else 0.0)
    _check_variance(hsic.sqrt(), gram_norm, n, dtype, debiased, name)
    if _form(*X.shape) == "feature form":
        # F F^T = K~ / sqrt(hsic): F = X~ / hsic^(1/4) (= X~ / ||K~||^(1/2) when biased)
        return _Features(X / hsic.pow(0.25).to(dtype), None if norms is None else norms[0] / hsic.sqrt())
    # Column-centred X has a double-centred Gram matrix: for the biased HSIC
    # there is nothing left to centre.
    K = X @ X.T
    return _packed(_u_centred_(K) if debiased else K).div_(hsic.sqrt().to(dtype))


def _gram_summary(K, centre, name):
    gram_norm = torch.linalg.vector_norm(K)
    v = _packed(centre(K))
    norm = torch.linalg.vector_norm(v, dtype=torch.float64)
    _check_variance(norm, gram_norm, K.shape[0], K.dtype, centre is _u_centred_, name)
    return v.div_(norm.to(v.dtype))


def _check_variance(norm, reference, n, dtype, debiased, name):
    # Centring removes everything of a Gram matrix that a constant
    # representation could produce; a norm at rounding level of `reference`
    # (what was centred) means HSIC(K, K) = 0 and CKA would be 0/0.
    if not norm > reference * n * torch.finfo(dtype).eps:
        estimator = "unbiased" if debiased else "biased"
        raise ValueError(
            f"representation {name!r} has no variance left after centring its Gram matrix "
            f"({estimator} HSIC with itself is 0); CKA is undefined: leave it out"
        )


def _combine_summaries(A, B):
    """(len(A), len(B)) float64 CKA between summaries of either form."""
    out = torch.empty(len(A), len(B), dtype=torch.float64, device=_device(A[0]))
    forms_A, forms_B = _by_form(A), _by_form(B)
    symmetric = A is B
    for form_a, rows in forms_A.items():
        for form_b, columns in forms_B.items():
            if symmetric and (form_a, form_b) == (_Features, torch.Tensor):
                continue  # mirrored from (Tensor, _Features) below
            a, b = [A[i] for i in rows], [B[j] for j in columns]
            if form_a is form_b is torch.Tensor:
                block = inner_products(a, a if symmetric else b)
            elif form_a is form_b is _Features:
                block = _feature_products(a, b, upper=symmetric)
            elif form_a is torch.Tensor:
                block = _mixed_products(a, b)
            else:
                block = _mixed_products(b, a).T
            out[torch.tensor(rows)[:, None], torch.tensor(columns)] = block
            if symmetric and form_a is not form_b:
                out[torch.tensor(columns)[:, None], torch.tensor(rows)] = block.T
    if symmetric and _Features in forms_A:
        # _feature_products filled only j >= i within the feature form
        rows = torch.tensor(forms_A[_Features])
        sub = out[rows[:, None], rows]
        out[rows[:, None], rows] = sub.triu() + sub.triu(1).T
    return out


def _device(summary):
    return summary.F.device if isinstance(summary, _Features) else summary.device


def _by_form(summaries):
    forms = {}
    for i, s in enumerate(summaries):
        forms.setdefault(type(s), []).append(i)
    return forms


def _feature_products(A, B, upper):
    # <K~_a, K~_b> = ||F_a^T F_b||_F^2 (+ the U-centring's corrections): one
    # product of each F_a with all F_b side by side; the squares are summed in
    # float64, since these sums cancel against the corrections.
    out = torch.zeros(len(A), len(B), dtype=torch.float64, device=A[0].F.device)
    side_by_side, owner, starts = _side_by_side(B)
    for i, a in enumerate(A):
        first = i if upper else 0
        columns = a.F.T @ side_by_side[:, starts[first]:]
        out[i].index_add_(0, owner[starts[first]:], columns.square().sum(dim=0, dtype=torch.float64))
    if A[0].norms is not None:
        out += _u_corrections(torch.stack([a.norms for a in A]), torch.stack([b.norms for b in B]))
    return out


def _mixed_products(grams, features):
    # <K~, F F^T> = sum((K~ F) * F): the Gram summary's zero row sums make its
    # inner product with F F^T that with the centred (or U-centred) F F^T.
    out = torch.empty(len(grams), len(features), dtype=torch.float64, device=grams[0].device)
    side_by_side, owner, _ = _side_by_side(features)
    for i, v in enumerate(grams):
        products = (_unpacked(v, side_by_side.shape[0]) @ side_by_side).mul_(side_by_side)
        out[i] = torch.zeros(len(features), dtype=torch.float64, device=v.device).index_add_(
            0, owner, products.sum(dim=0, dtype=torch.float64))
    return out


def _side_by_side(features):
    """The F of feature summaries side by side, the summary each column
    belongs to (for index_add_), and where each summary's columns start."""
    widths = torch.tensor([f.F.shape[1] for f in features])
    side_by_side = torch.cat([f.F for f in features], dim=1)
    owner = torch.repeat_interleave(torch.arange(len(features)), widths).to(side_by_side.device)
    return side_by_side, owner, torch.cat([torch.zeros(1, dtype=torch.long), widths.cumsum(0)])


def _squared_products(X, Y):
    """||X^T Y||_F^2, summed in float64."""
    return (X.T @ Y).square().sum(dtype=torch.float64)


def _u_corrections(norms_a, norms_b):
    # The U-centred inner product of the linear Gram matrices of column-centred
    # X and Y over n stimuli, from their rows' squared norms a and b:
    #   <U(K), U(L)> = ||X^T Y||^2 - n/(n-2) a.b + (sum a)(sum b)/((n-1)(n-2)),
    # since K~ 1 = -a and 1^T K~ 1 = -sum a for K~, K with a zero diagonal
    # (Song et al.'s unbiased HSIC). One row of norms per summary.
    n = norms_a.shape[1]
    return -n / (n - 2) * (norms_a @ norms_b.T) + torch.outer(norms_a.sum(dim=1), norms_b.sum(dim=1)) / ((n - 1) * (n - 2))


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


def _u_centred_(K: torch.Tensor) -> torch.Tensor:
    # U-centring (Szekely & Rizzo 2014, Ann. Stat.), in place: with K~ = K
    # with its diagonal zeroed, U_ij = K~_ij - r_i/(n-2) - r_j/(n-2) +
    # s/((n-1)(n-2)) off the diagonal (r row sums, s total sum of K~), U_ii =
    # 0. Then Song et al.'s unbiased HSIC(K, L) = <U(K), U(L)>_F / (n(n-3)),
    # an inner product, so the debiased CKA batches like the biased one. In
    # place because each pass over n^2 entries costs more than the arithmetic,
    # and a copy would be one more n x n matrix to hold.
    n = K.shape[0]
    U = K.fill_diagonal_(0.0)
    means = U.sum(dim=1) / (n - 2)  # r_i / (n-2); s / ((n-1)(n-2)) is their sum / (n-1)
    U.sub_(means[:, None]).sub_(means[None, :]).add_(means.sum() / (n - 1))
    return U.fill_diagonal_(0.0)


# Rows of a Gram matrix packed together by `_packed`.
_PACK_BLOCK = 64


def _packed(S: torch.Tensor) -> torch.Tensor:
    """Symmetric S's entries on and above its diagonal blocks, those above
    times sqrt 2: half the memory of S, and <packed(S), packed(T)> = <S, T>_F.

    For each band of `_PACK_BLOCK` rows: its diagonal block whole, then the
    entries to its right. An exact triangle would cost a slice per row, more
    than computing S (measured at 2,000 stimuli); this keeps n * 32 more
    entries than one.
    """
    n = S.shape[0]
    v = S.new_empty(_packed_size(n))
    offset = 0
    for start, stop in _bands(n):
        for block, factor in ((S[start:stop, start:stop], 1.0), (S[start:stop, stop:], math.sqrt(2.0))):
            torch.mul(block, factor, out=v[offset : offset + block.numel()].view(block.shape))
            offset += block.numel()
    return v


def _unpacked(v: torch.Tensor, n: int) -> torch.Tensor:
    """The n x n symmetric matrix S of `_packed(S)`."""
    S = v.new_empty(n, n)
    offset = 0
    for start, stop in _bands(n):
        width = stop - start
        S[start:stop, start:stop] = v[offset : offset + width * width].view(width, width)
        offset += width * width
        right = v[offset : offset + width * (n - stop)].view(width, n - stop) / math.sqrt(2.0)
        S[start:stop, stop:] = right
        S[stop:, start:stop] = right.T
        offset += right.numel()
    return S


def _packed_size(n):
    return sum((stop - start) * (n - start) for start, stop in _bands(n))


def _bands(n):
    return [(start, min(start + _PACK_BLOCK, n)) for start in range(0, n, _PACK_BLOCK)]
