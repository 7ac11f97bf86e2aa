"""Latent space structure (Lancione 2025): how well a layer's code keeps the
probe images' classes apart, and how much its layout differs across seeds.

The silhouette (Rousseeuw 1987, scikit-learn's, Euclidean) scores class
separation; the raw probe images (the paper's s_orig) and an exact PCA of
the training images are its baselines. Procrustes distance and linear CKA
between two seeds' codes of the same images measure how differently the
seeds lay the classes out, so that "layouts vary much more than
silhouettes" can be checked from numbers instead of scatter plots.

Undefined is not zero: a silhouette that scikit-learn cannot compute, or
would report as a plausible 0 for codes that tell no images apart, is NaN
and its `undefined` column says why.
"""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import silhouette_samples

from hourglass.activations import checkpoint_epoch, epoch_order, read_layer, without_diverged
from hourglass.checks import check_activation_files
from hourglass.data import load_split
from hourglass.io import open_h5, read_json_attr, write_table
from hourglass.progress import log_line
from hourglass.similarity import linear_cka, procrustes_distance


def flat(X):
    """`X` as an images x features float64 array (any layer shape flattened)."""
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(len(X), -1)


def silhouette_undefined(codes, labels):
    """Why the silhouette of `codes` (images x features) under `labels` is
    undefined, for people ('' when it is defined)."""
    n, k = len(labels), len(np.unique(labels))
    if k < 2:
        return f"{k} class(es) among the labels: a silhouette needs at least two"
    if n <= k:  # scikit-learn's condition: 2 <= classes <= images - 1
        return f"{n} images for {k} classes: a silhouette needs more images than classes"
    finite = np.isfinite(codes)
    if not finite.all():
        nan = int(np.isnan(codes).sum())
        return (f"codes hold {nan} NaN and {int((~finite).sum()) - nan} infinite values "
                "(a diverged run?)")
    if (codes == codes[:1]).all():
        # scikit-learn would return 0 here: no image is nearer its own class than another
        return "every image has the same code (a dead layer): nothing to separate"
    return ""


def silhouette(codes, labels):
    """Mean silhouette, per-image silhouettes and why undefined ('' if defined).

    codes: images x units (any layer shape, flattened); labels: the images'
    integer classes. Euclidean distances, scikit-learn's silhouette_samples;
    the mean is their mean, which is what silhouette_score returns. Range [-1, 1]; an
    image alone in its class scores 0 (Rousseeuw's convention).

    Undefined (mean and every per-image value NaN, with the reason): fewer
    than two classes, no more images than classes, NaN or inf in the codes,
    or every image's code identical.
    """
    codes, labels = flat(codes), np.asarray(labels)
    if len(codes) != len(labels):
        raise ValueError(f"{len(codes)} codes but {len(labels)} labels: give one label per "
                         "probe image, in the codes' order")
    reason = silhouette_undefined(codes, labels)
    if reason:
        return float("nan"), np.full(len(codes), np.nan), reason
    samples = silhouette_samples(codes, labels, metric="euclidean")
    return float(np.mean(samples)), samples, ""


def pca_codes(train, probe, components):
    """`probe` projected on the top `components` principal directions of `train`.

    train, probe: images x features (any image shape, flattened), the same
    features. Exact PCA: the SVD of the centred training images; probe
    images are centred by the training mean. Each direction's sign is fixed
    so that its largest loading is positive (as scikit-learn's svd_flip
    does), so the codes do not flip between LAPACK builds.
    Raises ValueError unless 1 <= components <= min(training images, features).
    """
    train, probe = flat(train), flat(probe)
    n, p = train.shape
    if not 1 <= components <= min(n, p):
        raise ValueError(f"PCA with {components} components: it needs 1 to min(training images, "
                         f"features) = min({n}, {p}) = {min(n, p)}; lower the number of components")
    if probe.shape[1] != p:
        raise ValueError(f"probe images have {probe.shape[1]} features but training images {p}: "
                         "both must come from the same data setting")
    mean = train.mean(axis=0)
    _, _, Vt = np.linalg.svd(train - mean, full_matrices=False)
    V = Vt[:components].T
    V *= np.sign(V[np.abs(V).argmax(axis=0), range(components)])
    return (probe - mean) @ V


def layout_differences(codes_by_seed):
    """Procrustes distance (angular, range [0, pi/2], 0 for the same layout up
    to rotation, reflection, shift and scale) and linear CKA (range [0, 1], 1
    for the same) between every pair of seeds' codes of the same images.

    codes_by_seed: {seed: images x units}. One row per pair, seed_a < seed_b,
    in ascending order. A pair is undefined (NaN, `undefined` says why) where
    either code is constant across images or holds NaN/inf.
    """
    counts = {seed: len(codes) for seed, codes in codes_by_seed.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"the seeds' codes hold different numbers of images ({counts}); "
                         "they must be codes of the same probe images")
    rows = []
    for a, b in itertools.combinations(sorted(codes_by_seed), 2):
        names = (f"seed {a}", f"seed {b}")
        X, Y = codes_by_seed[a], codes_by_seed[b]
        try:
            row = dict(procrustes_distance=procrustes_distance(X, Y, names=names),
                       linear_cka=linear_cka(X, Y, names=names), undefined="")
        except ValueError as error:  # same images checked above: the codes themselves are unusable
            row = dict(procrustes_distance=np.nan, linear_cka=np.nan, undefined=str(error))
        rows.append(dict(seed_a=a, seed_b=b, **row))
    return pd.DataFrame(rows, columns=["seed_a", "seed_b", "procrustes_distance", "linear_cka",
                                       "undefined"])


def spread(values, name):
    """Mean, sd (ddof=1), min and max of the defined (non-NaN) `values`, the
    count of NaN ones left out (n_undefined), and why any statistic is NaN."""
    values = pd.Series(values, dtype=float)
    defined = values.dropna()
    reason = ""
    if len(defined) < 2:
        reason = (f"{len(defined)} of {len(values)} {name} defined: "
                  + ("no sd" if len(defined) == 1 else "no statistics"))
    return dict(mean=defined.mean(), sd=defined.std(ddof=1), min=defined.min(),
                max=defined.max(), n_undefined=int(values.isna().sum())), reason


def epoch_spread(silhouettes, layouts):
    """Per epoch, the spread across seeds of the silhouette and of the
    layouts' distances (see `latent_tables`)."""
    rows = []
    for epoch in epoch_order(silhouettes["epoch"]):
        scores = silhouettes.loc[silhouettes["epoch"] == epoch, "silhouette"]
        pairs = layouts[layouts["epoch"] == epoch]
        stats, reason = spread(scores, "seeds' silhouettes")
        procrustes, procrustes_reason = spread(pairs["procrustes_distance"], "seed pairs")
        cka, _ = spread(pairs["linear_cka"], "seed pairs")  # NaN exactly where procrustes is
        reasons = [r for r in (reason, procrustes_reason and f"layouts: {procrustes_reason}") if r]
        rows.append(dict(epoch=epoch, n_seeds=len(scores), **stats,
                         procrustes_mean=procrustes["mean"], procrustes_sd=procrustes["sd"],
                         cka_mean=cka["mean"], cka_sd=cka["sd"],
                         n_pairs_undefined=procrustes["n_undefined"], undefined="; ".join(reasons)))
    return pd.DataFrame(rows)


def latent_tables(codes, labels, inputs, train_inputs, components=2):
    """The latent analysis of one variant's layer, as tables.

    codes: {(seed, epoch): images x units} with epochs as strings ('0',
    'final'); labels: the probe images' classes; inputs: the probe images
    and train_inputs the training images (any image shape, flattened).

      silhouettes  seed, epoch, silhouette, undefined: one row per code
      samples      seed, epoch, image, label, silhouette: one row per code
                   and probe image (NaN where the code's silhouette is)
      baselines    baseline ('input': the raw probe images; 'pca': their
                   exact PCA with `components`, fitted on train_inputs),
                   silhouette, undefined
      layouts      epoch, seed_a, seed_b, procrustes_distance, linear_cka,
                   undefined: `layout_differences` at each epoch
      spread       epoch, n_seeds, mean, sd, min, max, n_undefined of the
                   seeds' silhouettes (undefined ones left out, counted in
                   n_undefined), procrustes_mean, procrustes_sd, cka_mean,
                   cka_sd over the defined seed pairs, n_pairs_undefined,
                   and undefined: why a statistic is NaN (fewer than 2
                   defined values leave no sd, none leave nothing)

    Rows run by seed ascending and epochs in training order (numbers, then 'final').
    """
    labels = np.asarray(labels)
    epochs = epoch_order(epoch for _, epoch in codes)
    keys = sorted(codes, key=lambda key: (key[0], epochs.index(key[1])))
    scores, samples = [], []
    for seed, epoch in keys:
        score, per_image, reason = silhouette(codes[(seed, epoch)], labels)
        scores.append(dict(seed=seed, epoch=epoch, silhouette=score, undefined=reason))
        samples.append(pd.DataFrame(dict(seed=seed, epoch=epoch, image=np.arange(len(labels)),
                                         label=labels, silhouette=per_image)))
    silhouettes = pd.DataFrame(scores)
    layouts = pd.concat(
        [layout_differences({s: codes[(s, e)] for s, e in keys if e == epoch}).assign(epoch=epoch)
         for epoch in epochs], ignore_index=True)
    layouts = layouts[["epoch", *layouts.columns.drop("epoch")]]
    return dict(silhouettes=silhouettes, samples=pd.concat(samples, ignore_index=True),
                baselines=baseline_silhouettes(labels, inputs, train_inputs, components),
                layouts=layouts, spread=epoch_spread(silhouettes, layouts))


def baseline_silhouettes(labels, inputs, train_inputs, components):
    """The silhouette of the raw probe images and of their exact PCA codes."""
    rows = []
    for name, X in (("input", inputs), ("pca", pca_codes(train_inputs, inputs, components))):
        score, _, reason = silhouette(X, labels)
        rows.append(dict(baseline=name, silhouette=score, undefined=reason))
    return pd.DataFrame(rows)


def code_layer(attrs, layer):
    """The layer the analysis reads: `layer`, or when None the last layer whose
    role is bottleneck (the code, whatever the model calls it)."""
    if layer is not None:
        return layer
    codes = [n for n, r in zip(attrs["layer_names"], attrs["layer_roles"]) if r == "bottleneck"]
    if not codes:
        raise ValueError(f"variant {attrs['variant']!r} has no layer whose role is bottleneck (its "
                         f"layers: {', '.join(attrs['layer_names'])}); name one in "
                         "analyses.latent.layer")
    return codes[-1]


def run(activations, data, settings, out, threads=1):
    """The latent analysis of one variant: `latent_tables` of its code layer
    over every seed and checkpoint, each table with the variant and layer in
    front, plus `codes`: every seed's final code of each probe image."""
    check_activation_files(activations, one_variant=True)  # all of them, before any compute
    kept, diverged = without_diverged(activations)
    if diverged:
        log_line(f"left out, diverged: {', '.join(f'seed {s}' for _, s in diverged)}")
    first = next(iter(kept.values()))
    variant, layer = first["variant"], code_layer(first, settings["layer"])
    codes = {(int(a["seed"]), checkpoint_epoch(a["checkpoint"])): read_layer(path, layer)
             for path, a in kept.items()}
    probe, labels = load_split(data, "probe")
    train, _ = load_split(data, "train")
    with open_h5(data, "dataset") as f:
        names = read_json_attr(f, "classes")
    tables = latent_tables(codes, labels.numpy(), probe.numpy(), train.numpy(),
                           settings["components"])
    tables["codes"] = final_codes(codes, labels.numpy())
    tables["baselines"]["data"] = Path(data).stem
    for name, table in tables.items():
        if "label" in table:
            table["class"] = [names[label] for label in table["label"]]
        table.insert(0, "layer", layer)
        table.insert(0, "variant", variant)
        write_table(table, out[name])


def final_codes(codes, labels):
    """seed, image, label and unit1..unitK: each seed's code at the final checkpoint."""
    rows = []
    for (seed, epoch), Z in sorted(codes.items()):
        if epoch == "final":
            units = {f"unit{i + 1}": column for i, column in enumerate(flat(Z).T)}
            rows.append(pd.DataFrame(dict(seed=seed, image=np.arange(len(labels)), label=labels,
                                          **units)))
    return pd.concat(rows, ignore_index=True)
