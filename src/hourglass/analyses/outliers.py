"""Reconstruction-based outlier detection (Manakov et al.): each seed's final
checkpoint (the weights of the lowest validation loss) reconstructs the variant's test images (inliers) and the test images
of an out-of-distribution data setting (outliers); each image's mean squared
error, clipped at 1 as theirs, is its outlier score, and the area under the
ROC curve (scikit-learn) says how well the scores tell the outliers from the
inliers: 0.5 is chance, 1 every outlier scored above every inlier.

A seed that diverged has no model: its row is NaN, and `undefined` says so.
"""

import numpy as np
import pandas as pd
import torch

from hourglass.checks import load_checkpoint
from hourglass.data import load_split
from hourglass.io import write_table

BATCH = 256
CLIP = 1.0  # Manakov et al. clip every image's error at 1


def image_errors(model, x):
    """Each image's mean squared reconstruction error, in float64."""
    with torch.no_grad():
        return torch.cat([(model(xb) - xb).square().flatten(1).mean(1).double()
                          for xb in x.split(BATCH)]).numpy()


def detection_row(errors_in, errors_out):
    """The outliers entries of one model's errors on the inliers and outliers."""
    from sklearn.metrics import roc_auc_score

    scores = np.minimum(np.concatenate([errors_in, errors_out]), CLIP)
    truth = np.r_[np.zeros(len(errors_in)), np.ones(len(errors_out))]
    return dict(inlier_error=errors_in.mean(), outlier_error=errors_out.mean(),
                auroc=roc_auc_score(truth, scores), clipped=float((scores == CLIP).mean()),
                undefined="")


def run(checkpoints, data, ood, settings, out, threads=1):
    """Table `outliers`: per seed (`checkpoints`: each seed's final one) the
    mean error on the test images of `data` and of `ood`, the AUROC and the
    share of scores clipped, with the model settings of the grid in front."""
    torch.set_num_threads(threads)
    inliers, outliers = load_split(data, "test")[0], load_split(ood, "test")[0]
    if inliers.shape[1:] != outliers.shape[1:]:
        raise ValueError(f"the out-of-distribution images of {ood} are {list(outliers.shape[1:])}"
                         f", the variant's of {data} {list(inliers.shape[1:])}: give "
                         "analyses.outliers.ood a pad or resize that makes them alike")
    rows = []
    for path in checkpoints:
        model, state = load_checkpoint(path)
        key = dict(variant=state["variant"], seed=state["seed"],
                   **{k: state["model"].get(k) for k in settings["grid"]},
                   inliers=len(inliers), outliers=len(outliers))
        if model is None:
            rows.append(dict(**key, inlier_error=np.nan, outlier_error=np.nan, auroc=np.nan,
                             clipped=np.nan, undefined=f"diverged: {state['diverged']}"))
            continue
        rows.append(dict(**key, **detection_row(image_errors(model, inliers),
                                                image_errors(model, outliers))))
    write_table(pd.DataFrame(rows), out["outliers"])
