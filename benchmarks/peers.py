"""Peer libraries' all-pairs similarity matrices, to time hourglass against on the same data.

`build_peers()` fills PEERS: for each hourglass measure name (plus
"linear_cka_debiased"), a list of (label, function), where function(reps)
takes a list of float64 stimuli x features arrays and returns the R x R
matrix of that measure as the peer library computes it, converted to
hourglass's convention where the relation is exact. A peer that cannot be
imported is left out, and MISSING says why. A peer whose convention differs
from hourglass's is left out too, with the reason in a comment below.

Install the pip-installable peers (repsim builds from source; it needs a C++17 compiler):
    pip install rsatoolbox==0.3.2 ckatorch==1.0.3 repsim==0.1.5
netrep and anatome are not on PyPI: clone github.com/ahwillia/netrep and
github.com/moskomule/anatome and pass the clones to `add_source_paths`
before `build_peers()`.
"""

import importlib.metadata
import sys

import numpy as np
import torch

MEASURES = ("linear_cka", "linear_cka_debiased", "rsa", "procrustes", "cca", "svcca", "pwcca")
PEERS = {measure: [] for measure in MEASURES}
MISSING = {
    # torch-cka 0.21 computes CKA only through CKA(model1, model2).compare(dataloader),
    # from forward hooks; it has no function on activation matrices.
    "torch-cka": "no function on activation matrices (models and dataloaders only)",
}


def add_source_paths(paths):
    """Put source checkouts (the folders holding netrep/ or anatome/) first on sys.path."""
    for path in reversed(list(paths)):
        sys.path.insert(0, str(path))


def _label(distribution):
    try:
        return f"{distribution} {importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{distribution} (source)"


def _pairwise(reps, pair):
    """The matrix of a symmetric pair measure, calling it once per pair as these peers expect."""
    M = np.eye(len(reps))
    for i in range(len(reps)):
        for j in range(i + 1, len(reps)):
            M[i, j] = M[j, i] = pair(reps[i], reps[j])
    return M


def _rsatoolbox():
    import rsatoolbox

    def rsa(reps):
        rdms = rsatoolbox.rdm.concat(
            [rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(X), method="correlation") for X in reps])
        return rsatoolbox.rdm.compare(rdms, rdms, method="corr")

    return {"rsa": rsa}


def _ckatorch():
    from ckatorch import cka_base

    def linear_cka(debiased):
        def pair(X, Y):
            X, Y = torch.from_numpy(X), torch.from_numpy(Y)
            return cka_base(X, Y, kernel="linear", unbiased=debiased).item()
        return lambda reps: _pairwise(reps, pair)

    return {"linear_cka": linear_cka(False), "linear_cka_debiased": linear_cka(True)}


def _repsim():
    # repsim takes all representations at once. Left out: its "song" and "lange"
    # CKA estimators put an unbiased HSIC over biased (Gretton) normalisers, so
    # they are not debiased CKA; its svcca divides by the full widths rather
    # than the kept ones; its pwcca averages both weighting directions, where
    # hourglass's weights by the first argument.
    import repsim

    return {
        "linear_cka": lambda reps: repsim.cka(reps, kernel_type="linear", estimator="gretton"),
        # "yanai" is sum rho_i^2 / min(p, q), hourglass's mean squared canonical
        # correlation whenever the representations have full column rank.
        "cca": lambda reps: repsim.cca(reps, summary_type="yanai"),
    }


def _netrep():
    from netrep.metrics import LinearMetric

    metric = LinearMetric(alpha=1.0, center_columns=True, score_method="angular")
    if hasattr(metric, "pairwise_distances"):  # netrep since 2023: a method, over worker processes
        def angles(reps):
            return metric.pairwise_distances(reps, verbose=False)[0]
    else:
        from netrep.multiset import pairwise_distances

        def angles(reps):
            return pairwise_distances(metric, reps, verbose=False)

    # The angular shape distance is arccos(nu), nu hourglass's procrustes similarity.
    return {"procrustes": lambda reps: np.cos(angles(reps))}


def _anatome():
    # anatome returns distances, one pair at a time, on torch tensors. Left out:
    # reduce_bias=True (its normalisers mix X's and Y's row norms and lack a
    # square root, so it is not debiased CKA); svcca_distance (keeps directions
    # by the sum of singular values of uncentred data, not by variance); and
    # pwcca_distance (weights each direction by the sum over stimuli of its
    # canonical variate, not by the units it accounts for).
    from anatome.distance import cca, linear_cka_distance, orthogonal_procrustes_distance

    def similarity(distance):  # linear CKA and Procrustes: similarity = 1 - distance
        def pair(X, Y):
            return 1 - distance(torch.from_numpy(X), torch.from_numpy(Y)).item()
        return lambda reps: _pairwise(reps, pair)

    def mean_squared_correlation(X, Y):
        rho = cca(torch.from_numpy(X), torch.from_numpy(Y), backend="svd")[2]
        return rho.square().mean().item()

    return {
        "linear_cka": similarity(lambda x, y: linear_cka_distance(x, y, reduce_bias=False)),
        "procrustes": similarity(orthogonal_procrustes_distance),
        "cca": lambda reps: _pairwise(reps, mean_squared_correlation),
    }


_LIBRARIES = {"rsatoolbox": _rsatoolbox, "ckatorch": _ckatorch, "repsim": _repsim,
              "netrep": _netrep, "anatome": _anatome}


def build_peers():
    """Fill PEERS with every importable peer, and MISSING with why the others are absent."""
    for peers in PEERS.values():
        peers.clear()
    for distribution, wrap in _LIBRARIES.items():
        try:
            measures = wrap()
        except ImportError as error:
            MISSING[distribution] = f"cannot import: {error}"
            continue
        MISSING.pop(distribution, None)
        for measure, function in measures.items():
            PEERS[measure].append((_label(distribution), function))
    return PEERS
