"""Linear probes (Manakov et al.): how much of the labels a linear model
reads off each seed's bottleneck code, against the raw pixels as the
baseline, on images the autoencoder trained on (seen: the variant's training
split) and on images it never saw (unseen: its test split). Given images of
their own (`data`, e.g. STL-10's labelled split for models trained on its
unlabelled one), the probes read that setting's test split, unseen only.

Per probe seed the images are split 60/20/20 (stratified); a logistic
regression (scikit-learn's SGDClassifier with the log loss, on standardised
features) trains on the 60 %, stops early on the 20 % validation share, and
is scored on the last 20 %: macro-F1 over the classes (`target: classes`),
or the AUROC of each ground-truth factor of the data file, one probe per
binary factor (`target: factors`: CelebA's 40 attributes).
"""

import numpy as np
import pandas as pd
import torch

from hourglass.checks import load_checkpoint
from hourglass.data import load_split
from hourglass.io import open_h5, read_json_attr, write_table

BATCH = 256
SPLIT_SHARES = 5  # 60/20/20: a value with fewer images than 1/0.2 misses a share
COLUMNS = ["variant", "seed", "features", "images", "probe_seed", "target", "metric", "value",
           "undefined"]


def code_layer(model):
    """The name of the model's last layer whose role is bottleneck: the code."""
    codes = [n for n, r in zip(model.layer_names, model.layer_roles) if r == "bottleneck"]
    if not codes:
        raise ValueError(f"the model's layers ({', '.join(model.layer_names)}) have no "
                         "bottleneck: nothing to probe")
    return codes[-1]


def codes(model, x):
    """The code (the bottleneck layer, code_layer) of each image of `x`, in batches."""
    layer = code_layer(model)
    with torch.no_grad():
        return torch.cat([model.layers(xb)[layer] for xb in x.split(BATCH)])


def encode(model, x):
    """The flattened code of each image of `x`."""
    return codes(model, x).flatten(1).numpy()


def probe_scores(features, targets, probe_seed, metric):
    """The test score of a logistic-regression probe of `features` for each
    column of `targets` (a name each), after a seeded stratified 60/20/20
    split with early stopping on the 20 % validation share: {name: score}."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = {}
    for name, y in targets.items():
        values, counts = np.unique(y, return_counts=True)
        if len(values) < 2:
            scores[name] = (np.nan, "one value only: nothing to tell apart")
            continue
        if counts.min() < SPLIT_SHARES:
            # each 20 % share (test; validation) must hold every value
            scores[name] = (np.nan, f"value {values[counts.argmin()]} has {counts.min()} of the "
                            f"{len(y)} images, fewer than the {SPLIT_SHARES} a stratified "
                            "60/20/20 split needs; give analyses.probes.images more")
            continue
        fit, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y,
                                     random_state=probe_seed)
        # validation_fraction 0.25 of the 80 %: the 20 % the probe stops early on
        probe = make_pipeline(StandardScaler(), SGDClassifier(
            loss="log_loss", early_stopping=True, validation_fraction=0.25, n_iter_no_change=5,
            max_iter=100, random_state=probe_seed))
        probe.fit(features[fit], y[fit])
        if metric == "auroc":
            scores[name] = (roc_auc_score(y[test], probe.predict_proba(features[test])[:, 1]), "")
        else:
            scores[name] = (f1_score(y[test], probe.predict(features[test]), average="macro"), "")
    return scores


def targets_of(data, split, indices, target):
    """{name: labels} of the images `indices` of a split: the classes, or each factor."""
    if target == "classes":
        return {"classes": load_split(data, split)[1].numpy()[indices]}
    with open_h5(data, "dataset") as f:
        if "factors" not in f[split]:
            raise ValueError(f"analyses.probes.target is factors, but {data} holds none (its "
                             "dataset has no ground-truth factors); use target: classes")
        names, factors = read_json_attr(f, "factor_names"), f[split]["factors"][()][indices]
    return {name: factors[:, k] for k, name in enumerate(names)}


def run(checkpoints, data, settings, out, threads=1):
    """Table `probes`: per model seed, features (code, pixels), images (seen,
    unseen), probe seed and target, the probe's test score; the pixels'
    rows (seed NaN) once per variant, with the grid settings in front."""
    torch.set_num_threads(threads)
    metric = "auroc" if settings["target"] == "factors" else "macro_f1"
    images = {}
    # images of another data setting: none seen in training, its test split probed
    splits = (("unseen", "test"),) if settings.get("data") else (("seen", "train"),
                                                                 ("unseen", "test"))
    for name, split in splits:
        x = load_split(data, split)[0]
        keep = np.arange(min(len(x), settings["images"]))
        images[name] = (x[keep], targets_of(data, split, keep, settings["target"]))
    models = [load_checkpoint(path) for path in checkpoints]
    grid = {k: models[0][1]["model"].get(k) for k in settings["grid"]}
    variant = models[0][1]["variant"]
    rows = []

    def add(seed, features, which, x, why=""):
        for probe_seed in settings["seeds"]:
            scores = (probe_scores(x, images[which][1], probe_seed, metric) if not why else
                      {name: (np.nan, why) for name in images[which][1]})
            rows.extend(dict(variant=variant, seed=seed, **grid, features=features, images=which,
                             probe_seed=probe_seed, target=name, metric=metric, value=value,
                             undefined=reason) for name, (value, reason) in scores.items())

    for which, (x, _) in images.items():
        add(np.nan, "pixels", which, x.flatten(1).numpy())
        for model, state in models:
            if model is None:
                add(state["seed"], "code", which, None, f"diverged: {state['diverged']}")
            else:
                add(state["seed"], "code", which, encode(model, x))
    table = pd.DataFrame(rows, columns=["variant", "seed", *grid, *COLUMNS[2:]])
    write_table(table, out["probes"])
