"""Representational consistency across seeds (Mehrer et al. 2020; Durbha et
al. 2022) and the second-order RDM of layers x seeds.

For one layer, each seed's RDM (1 - Pearson between stimuli) is compared with
every other seed's by the Pearson correlation r of their upper triangles.
RC is the mean of r over seed pairs; RC² the mean of r², the variance one
seed's RDM shares with another's.

Undefined is not zero. An RDM whose dissimilarities are all equal (a dead
layer, every stimulus alike; or a one-unit layer, whose single-value patterns
have no correlation) has no r with any RDM. Such an r is NaN, never a
plausible 0, and a layer with one such seed has no RC at all: RC is a mean
over every seed pair, not over a silently smaller set. Its values are NaN
and `undefined` says why.
"""

import numpy as np
import pandas as pd
import torch
from sklearn.manifold import MDS

from hourglass.activations import (checkpoint_epoch, layer_regions, read_layer, repeat_of,
                                   without_diverged)
from hourglass.checks import check_activation_files
from hourglass.io import write_table
from hourglass.progress import log_line
from hourglass.similarity.arrays import unit_rows
from hourglass.similarity.rdm import constant_patterns, rdm, upper_triangle


def standardise(T):
    """Rows of `T` centred and scaled to unit norm: their inner products are Pearson r.

    A constant row, the RDM of a layer that tells no stimuli apart, has no
    defined r; it becomes NaN, so that its r with every RDM is NaN (not 0).
    """
    constant = T.amax(-1, keepdim=True) == T.amin(-1, keepdim=True)
    return unit_rows(T, centre=True).masked_fill(constant, float("nan"))


def constant_rdms(activations, rdms):
    """Per seed, whether its RDM is constant (every dissimilarity equal).

    activations: one stimuli x units tensor per seed; rdms: their RDMs.
    Where every stimulus is alike (a dead layer) the RDM is constant in
    exact arithmetic, but rounding may leave it off by a few ulps: the
    activations say so exactly.
    """
    T = upper_triangle(rdms)
    dead = torch.stack([(a == a[:1]).all() for a in activations])
    return dead | (T.amax(-1) == T.amin(-1))


def constant_rdm_reason(units):
    """Why a constant RDM of a layer of `units` units has no r, for people."""
    return "1 unit: correlation RDM undefined" if units == 1 else "RDM constant (dead layer)"


def undefined_reason(units, constant):
    """Why a layer's RC is undefined, for people ('' when it is defined).

    units: the layer's number of units; constant: per seed, whether its RDM
    is constant (see constant_rdms).
    """
    if not constant.any():
        return ""
    if units == 1:
        return constant_rdm_reason(units)
    return f"{int(constant.sum())} of {len(constant)} seeds' RDMs constant (dead layer)"


def second_order(rdms):
    """Pearson r between the upper triangles of every pair of RDMs (items x n x n)."""
    Z = standardise(upper_triangle(rdms))
    return Z @ Z.T


def seed_pair_means(r):
    """Mean of r and of r² over the distinct seed pairs of an S x S matrix r."""
    i, j = torch.triu_indices(r.shape[-1], r.shape[-1], offset=1)
    pairs = r[..., i, j]
    return pairs.mean(-1), (pairs**2).mean(-1)


def bootstrap_rc(rdms, counts):
    """RC and RC² of each stimulus resample given by `counts` (B x n: how often
    each stimulus was drawn).

    A resample's RDM holds every pair of drawn stimuli; a pair of a stimulus
    with its own copy has no dissimilarity and is left out. A resample in
    which a seed's RDM is constant has no RC: NaN. Pair (i, j) then
    appears counts_i * counts_j times, so every weighted sum over pairs is a
    quadratic form c' A c, and all resamples are done with matrix products
    instead of rebuilding RDMs.
    """
    S = len(rdms)
    c = counts.to(rdms.dtype).T  # n x B
    weight = (c.sum(0) ** 2 - (c**2).sum(0)) / 2

    def pair_sum(A):  # sum over pairs i < j of c_i c_j A_ij, for every resample
        return (c * (A @ c)).sum(0) / 2

    # Centre by each RDM's mean off-diagonal value first: it does not change r
    # and keeps the moments below from cancelling.
    off = ~torch.eye(rdms.shape[-1], dtype=torch.bool)
    A = torch.where(off, rdms - upper_triangle(rdms).mean(-1)[:, None, None], 0.0)
    mean = torch.stack([pair_sum(A[s]) for s in range(S)]) / weight
    cov = torch.empty(S, S, len(weight), dtype=rdms.dtype)
    for s in range(S):
        for t in range(s, S):
            cov[s, t] = cov[t, s] = pair_sum(A[s] * A[t]) / weight - mean[s] * mean[t]
    var = cov.diagonal().T  # S x B
    # A resample whose RDM is constant has a variance of 0 up to the rounding
    # of E[A²] - mean², a few ulps of E[A²]: no r, rather than r of rounding noise.
    constant = var <= 1e-9 * (var + mean**2)
    sd = var.clamp_min(0).sqrt()
    r = cov / (sd[:, None] * sd[None, :])
    r = r.masked_fill(constant[:, None] | constant[None, :], float("nan"))
    return seed_pair_means(r.permute(2, 0, 1))


def layer_consistency(activations, n_boot=1000, ci=0.95, seed=0):
    """RC of one layer across seeds, with a percentile bootstrap interval over stimuli.

    activations: one stimuli x units array per seed (at least 2 seeds).
    Returns rc, rc_sq, rc_low, rc_high and undefined (a dict), the RDMs,
    and per seed whether its RDM is constant.

    Where a seed's RDM is constant every value is NaN and `undefined` says
    why (see undefined_reason). Where a bootstrap resample has a constant RDM
    the interval is NaN: a percentile over the other resamples would be
    over a silently smaller set.
    """
    if len(activations) < 2:
        raise ValueError("representational consistency needs at least 2 seeds")
    acts = [torch.as_tensor(a, dtype=torch.float64) for a in activations]
    for seed_index, a in enumerate(acts):
        if not torch.isfinite(a).all():
            raise ValueError(f"the activations of seed #{seed_index} hold NaN or inf: the model "
                             "diverged; retrain it with a lower learning rate")
    rdms = torch.stack([rdm(a) for a in acts])
    constant = constant_rdms(acts, rdms)
    reason = undefined_reason(acts[0][0].numel(), constant)
    if reason:
        nan = float("nan")
        return dict(rc=nan, rc_sq=nan, rc_low=nan, rc_high=nan, undefined=reason), rdms, constant
    rc, rc_sq = seed_pair_means(second_order(rdms))
    n = rdms.shape[-1]
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randint(n, (n_boot, n), generator=gen)
    counts = torch.zeros(n_boot, n, dtype=torch.float64).scatter_add_(
        1, draws, torch.ones(n_boot, n, dtype=torch.float64))
    boot, _ = bootstrap_rc(rdms, counts)
    alpha = (1 - ci) / 2
    low, high = torch.quantile(boot, torch.tensor([alpha, 1 - alpha], dtype=boot.dtype))
    undefined = int(boot.isnan().sum())  # torch.quantile is NaN then too
    reason = (f"rc_low, rc_high: {undefined} of {n_boot} bootstrap resamples have a constant RDM"
              if undefined else "")
    return dict(rc=rc.item(), rc_sq=rc_sq.item(), rc_low=low.item(), rc_high=high.item(),
                undefined=reason), rdms, constant


def cluster_distances(dissimilarity, n_layers, n_seeds):
    """Per layer, from the second-order dissimilarities of layers x seeds
    (an (L*S) x (L*S) matrix, layer-major; NaN for a left-out RDM): the
    cluster's spread, the mean over pairs of two seeds of that layer, and
    the distance to the next layer, the mean over every seed of the layer
    and every seed of the next (Durbha et al., Fig. 2b); the last layer has
    no next (NaN)."""
    D = np.asarray(dissimilarity, dtype=np.float64).reshape(n_layers, n_seeds, n_layers, n_seeds)
    i, j = np.triu_indices(n_seeds, 1)
    spread = np.array([D[k, i, k, j].mean() for k in range(n_layers)])
    to_next = np.array([D[k, :, k + 1, :].mean() for k in range(n_layers - 1)] + [np.nan])
    return spread, to_next


def one_instance(dissimilarity, n_layers, n_seeds, seed_index):
    """The second-order dissimilarities between the layers of one seed (an
    L x L matrix) out of those of layers x seeds (layer-major, as
    cluster_distances reads them)."""
    D = np.asarray(dissimilarity, dtype=np.float64).reshape(n_layers, n_seeds, n_layers, n_seeds)
    return D[:, seed_index, :, seed_index]


# Figs. 7 and 8 of Durbha et al.: one seed's layers with the input and the
# output, and without them, whose nearness says little of the layers between.
ENDS = ("input", "output")


def instance_layouts(distances, layers, regions, seed=0):
    """MDS of one seed's layers (`distances`, L x L; NaN where a layer's RDM
    is constant, which is then left out): with every layer ('all') and
    without the input and output ('inner'). Rows (layers, layer, x, y,
    undefined) per layer of each."""
    rows = []
    for kind in ("all", "inner"):
        kept = [i for i, region in enumerate(regions) if kind == "all" or region not in ENDS]
        defined = [i for i in kept if not np.isnan(distances[i, kept]).all()]
        xy = dict(zip(defined, mds_2d(distances[np.ix_(defined, defined)], seed=seed)))
        for i in kept:
            x, y = xy.get(i, (np.nan, np.nan))
            rows.append(dict(layers=kind, layer=layers[i], layer_index=i, region=regions[i],
                             x=x, y=y, undefined="" if i in xy else "its RDM is constant"))
    return rows


MIRROR_COLUMNS = ["variant", "epoch", "seed", "step", "encoder", "decoder", "mirror_distance",
                  "encoder_next", "decoder_previous"]


def mirrored(layers, regions):
    """The indices of the encoder layers and of the decoder layers that
    mirror each other, repeats (model.repeat) left out; none where the two
    differ in depth (a cae; a classifier has no decoder)."""
    encoders, decoders = ([i for i, (layer, r) in enumerate(zip(layers, regions))
                           if r == region and not repeat_of(layer)]
                          for region in ("encoder", "decoder"))
    return (encoders, decoders) if len(encoders) == len(decoders) else ([], [])


def mirror_distances(distances, layers, regions):
    """One seed's encoder layers paired with their mirrors in the decoder
    (mirrored), from the bottleneck outwards (the last encoder layer with
    the first decoder layer, step 1, and so on), each with the second-order
    distance between the two and from each to its neighbour towards the
    bottleneck (Durbha et al., Fig. 8: a V, mirrors farther apart the
    farther out)."""
    encoders, decoders = mirrored(layers, regions)
    return [dict(step=step, encoder=layers[e], decoder=layers[d],
                 mirror_distance=distances[e, d], encoder_next=distances[e, e + 1],
                 decoder_previous=distances[d, d - 1])
            for step, (e, d) in enumerate(zip(encoders[::-1], decoders), 1)]


def mds_2d(dissimilarity, seed=0):
    """2-D metric MDS of a square dissimilarity matrix (scikit-learn's SMACOF),
    from the classical (Torgerson) layout. Where the dissimilarities are too
    far from distances for one in 2-D (the doubly centred squared matrix has
    fewer than 2 clearly positive eigenvalues, as 1 - r between a few layers
    can), from the best of 4 random layouts instead: the classical start
    would be NaN. Fewer than 3 points are laid out as they are: none, one
    at 0, or two on the x axis at their distance."""
    D = np.asarray(dissimilarity, dtype=np.float64)
    n = len(D)
    if n < 3:
        x = np.array([-0.5, 0.5]) * D[0, 1] if n == 2 else np.zeros(n)
        return np.column_stack([x, np.zeros(n)])
    J = np.eye(n) - 1 / n
    eigenvalues = np.linalg.eigvalsh(-0.5 * J @ D**2 @ J)
    # positive beyond rounding: sklearn takes the square roots of the top two
    classical = eigenvalues[-2] > 1e-9 * np.abs(eigenvalues).max()
    mds = MDS(n_components=2, metric_mds=True, metric="precomputed",
              init="classical_mds" if classical else "random", n_init=1 if classical else 4,
              random_state=seed)
    return mds.fit_transform(D)


def variant_consistency(files, n_boot, ci, seed, log=log_line):
    """RC per checkpoint and layer, and MDS of layers x seeds, for one variant.

    files: activation files of one variant, every seed at every checkpoint.
    Seeds that diverged are left out; `seeds_excluded` counts them.
    Returns five tables (lists of dicts): consistency rows, MDS rows, per
    layer the cluster's spread against the distance to the next layer
    (cluster_distances), and per seed the MDS of its own layers
    (instance_layouts) and its mirrored layers' distances
    (mirror_distances). A layer x seed whose RDM is constant is left out of
    the MDS: its x and y are NaN and its `undefined` says why; the distances
    that would need it are NaN.
    """
    kept, diverged = without_diverged(files)
    if diverged:
        log(f"left out, diverged: {', '.join(f'{v} seed {s}' for v, s in diverged)}")
    runs = {}
    for path, attrs in kept.items():
        runs.setdefault(attrs["checkpoint"], []).append((int(attrs["seed"]), path, attrs))
    trained = {s for seeds in runs.values() for s, _, _ in seeds}
    if len(trained) < 2:
        variant = diverged[0][0] if diverged else next(iter(kept.values()))["variant"]
        raise ValueError(
            f"variant {variant!r}: {len(diverged)} of its seeds diverged "
            f"and {len(trained)} trained to the end; consistency needs at least 2. Lower "
            "training.lr or add seeds.")
    consistency, mds, clusters, layouts, mirrors = [], [], [], [], []
    for label, seeds in runs.items():
        seeds.sort(key=lambda s: s[0])
        variant, layers = seeds[0][2]["variant"], seeds[0][2]["layer_names"]
        regions = layer_regions(seeds[0][2])
        triangles, constants, reasons = [], [], []
        for index, layer in enumerate(layers):
            acts = [read_layer(path, layer) for _, path, _ in seeds]
            try:
                stats, rdms, constant = layer_consistency(acts, n_boot=n_boot, ci=ci, seed=seed)
            except ValueError as error:
                raise ValueError(f"variant {variant!r}, checkpoint {label!r}, layer {layer!r}: "
                                 f"{error}") from error
            triangles.append(upper_triangle(rdms))
            constants.append(constant)
            reasons += [constant_rdm_reason(acts[0].shape[1]) if c else "" for c in constant]
            consistency.append(dict(
                variant=variant, epoch=checkpoint_epoch(label), layer=layer, layer_index=index,
                region=regions[layer], n_seeds=len(seeds), seeds_excluded=len(diverged),
                **stats,
                trained_epochs_min=min(int(s[2]["epoch"]) for s in seeds),
                trained_epochs_max=max(int(s[2]["epoch"]) for s in seeds),
                constant_stimuli=max(constant_patterns(a) for a in acts),
                constant_rdms=int(constant.sum())))
            rc = ("undefined" if np.isnan(stats["rc"]) else
                  f"{stats['rc']:.3f} [{stats['rc_low']:.3f}, {stats['rc_high']:.3f}]")
            why = f" ({stats['undefined']})" if stats["undefined"] else ""
            log(f"{variant} {label} {layer}: RC {rc}{why}")
        # An RDM with no r has no place among distances: left out, not put at r = 0.
        left_out = torch.cat(constants)
        Z = standardise(torch.cat(triangles)[~left_out])
        dissimilarity = (1 - Z @ Z.T).clamp_min(0).fill_diagonal_(0)
        xy = np.full((len(left_out), 2), np.nan)
        xy[~left_out.numpy()] = mds_2d(dissimilarity.numpy(), seed=seed)
        full = np.full((len(left_out), len(left_out)), np.nan)
        full[np.ix_(~left_out.numpy(), ~left_out.numpy())] = dissimilarity.numpy()
        spread, to_next = cluster_distances(full, len(layers), len(seeds))
        constant_layers = left_out.view(len(layers), len(seeds)).any(1).tolist()
        for index, layer in enumerate(layers):
            missing = [layers[k] for k in (index, index + 1)
                       if k < len(layers) and constant_layers[k]]
            clusters.append(dict(
                variant=variant, epoch=checkpoint_epoch(label), layer=layer, layer_index=index,
                region=regions[layer], cluster_spread=spread[index], next_distance=to_next[index],
                undefined=f"a constant RDM in {', '.join(missing)}" if missing else ""))
        in_order = [regions[layer] for layer in layers]
        if not mirrored(layers, in_order)[0]:
            log(f"{variant} {label}: no mirrored layers (encoder and decoder differ in depth, or "
                "there is no decoder): mirrors.csv has none of its rows")
        for index, (s, _, _) in enumerate(seeds):
            distances = one_instance(full, len(layers), len(seeds), index)
            key = dict(variant=variant, epoch=checkpoint_epoch(label), seed=s)
            layouts += [{**key, **row} for row in instance_layouts(distances, layers, in_order, seed)]
            mirrors += [{**key, **row} for row in mirror_distances(distances, layers, in_order)]
        if left_out.any():
            log(f"{variant} {label}: MDS leaves out {int(left_out.sum())} layer x seed RDMs "
                "that are constant (see mds.csv: undefined)")
        items = [(i, layer, s) for i, layer in enumerate(layers) for s, _, _ in seeds]
        for (index, layer, s), (x, y), reason in zip(items, xy, reasons):
            mds.append(dict(variant=variant, epoch=checkpoint_epoch(label), layer=layer,
                            layer_index=index, seed=s, x=x, y=y, undefined=reason))
    return consistency, mds, clusters, layouts, mirrors


def run(activations, settings, out, threads=1):
    """The consistency analysis of one variant (its activation files; it reads
    no data file): its tables (variant_consistency) to the CSV paths `out`
    names."""
    check_activation_files(activations, one_variant=True)  # all of them, before any compute
    torch.set_num_threads(threads)
    tables = variant_consistency(activations, settings["bootstrap"], settings["ci"],
                                 settings["seed"])
    for name, rows in zip(("consistency", "mds", "clusters", "instance_mds", "mirrors"), tables):
        # a model without a decoder (a classifier) has no mirrors: a table of no rows
        write_table(pd.DataFrame(rows, columns=MIRROR_COLUMNS if name == "mirrors" else None),
                    out[name])
