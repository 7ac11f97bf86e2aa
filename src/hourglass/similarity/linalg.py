"""Singular value decompositions that survive low-rank activations."""

import numpy as np
import scipy.linalg
import torch


def svd(A: torch.Tensor):
    """Thin SVD (U, s, Vh) of matrix `A` or a batch of them (..., k, l), descending s.

    torch's default LAPACK driver (gesdd) can fail to converge on matrices of
    dead or saturated units; the slower QR-iteration driver gesvd (through
    SciPy, on the CPU) converges where gesdd does not, so it is the fallback.
    """
    try:
        return torch.linalg.svd(A, full_matrices=False)
    except torch.linalg.LinAlgError:
        flat = A.cpu().numpy().reshape(-1, *A.shape[-2:])
        parts = zip(*(scipy.linalg.svd(M, full_matrices=False, lapack_driver="gesvd") for M in flat))
        return tuple(torch.from_numpy(np.stack(part)).reshape(*A.shape[:-2], *part[0].shape).to(A) for part in parts)


def singular_values(A: torch.Tensor) -> torch.Tensor:
    """Singular values of a batch of matrices (..., k, l), descending."""
    try:
        return torch.linalg.svdvals(A)
    except torch.linalg.LinAlgError:
        flat = A.cpu().numpy().reshape(-1, *A.shape[-2:])
        s = [scipy.linalg.svd(M, compute_uv=False, lapack_driver="gesvd") for M in flat]
        return torch.from_numpy(np.stack(s)).reshape(*A.shape[:-2], -1).to(A)


def centred_svd(X: torch.Tensor):
    """Rank-revealing thin SVD (U, s, Vh) of `X` with its columns centred.

    Directions whose singular value is below s_max * max(n, p) * eps (NumPy's
    matrix_rank tolerance) are rounding noise from dead, duplicated or
    collinear units; they are dropped, so U is an orthonormal basis of the
    centred column space, with rank(X~) columns.
    """
    U, s, Vh = svd(X - X.mean(dim=0))
    tolerance = s[0] * max(X.shape) * torch.finfo(X.dtype).eps
    k = max(int((s > tolerance).sum()), 1)
    return U[:, :k], s[:k], Vh[:k]


# Columns of the rows stacked and multiplied at once by `inner_products`.
_INNER_BLOCK = 4096


def inner_products(A, B) -> torch.Tensor:
    """(len(A), len(B)) float64 inner products between the vectors in `A` and in `B`.

    The vectors are long (a Gram matrix or an RDM: n^2/2 entries) and many:
    they are stacked a block of `_INNER_BLOCK` entries at a time, so no
    second copy of all of them is ever held, and each block's product is
    added in float64. In float32 that errs by about 2e-8 on unit vectors of
    2 million entries, where one float32 product of the whole stacks errs
    by 1e-6, at the same speed (memory-bound either way).
    """
    out = torch.zeros(len(A), len(B), dtype=torch.float64, device=A[0].device)
    for start in range(0, A[0].shape[0], _INNER_BLOCK):
        rows = torch.stack([a[start : start + _INNER_BLOCK] for a in A])
        columns = rows if B is A else torch.stack([b[start : start + _INNER_BLOCK] for b in B])
        out += (rows @ columns.T).double()
    return out


def cross_products(A, B, upper=False):
    """a^T b for every n x k_a matrix a in `A` and n x k_b matrix b in `B`, batched.

    Yields (i, columns, products): products[t] = A[i]^T B[columns[t]]. The b's
    are grouped by width so each group is one batched product (and one
    batched SVD downstream) without padding, which would make every matrix
    as costly as the widest. upper: only the pairs j >= i (for B = A where
    the rest mirror them).
    """
    groups = {}
    for j, b in enumerate(B):
        groups.setdefault(b.shape[1], []).append(j)
    for columns in groups.values():
        stacked = torch.stack([B[j] for j in columns])
        for i, a in enumerate(A):
            # columns ascend, so the pairs kept are a suffix: a view, not a copy
            first = next((t for t, j in enumerate(columns) if j >= i), len(columns)) if upper else 0
            if first < len(columns):
                yield i, columns[first:], a.T @ stacked[first:]


def cross_nuclear_norms(A, B) -> torch.Tensor:
    """(len(A), len(B)) nuclear norms ||a^T b||_* (sums of singular values).
    With B the very list A, each unordered pair is computed once."""
    out = A[0].new_empty(len(A), len(B))
    for i, columns, products in cross_products(A, B, upper=B is A):
        out[i, columns] = singular_values(products).sum(dim=-1)
    return out.triu() + out.triu(1).T if B is A else out
