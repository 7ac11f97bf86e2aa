"""Is a convolutional autoencoder's code a copy of its input? (Manakov et
al.: a complete CAE, as many code values as pixels, could learn to copy.)

A bottleneck of h x w positions, each s x s pixels of the image apart,
copies the input where each position's code is a linear map of the s x s
pixels of its own patch: of the input rearranged space-to-depth (torch's
pixel_unshuffle), whose C * s * s values per position are the most a
complete code holds there. Per seed, over every (image, position) point of
the first images of a split (test by default), SVCCA (99 % of the variance kept) and linear CKA
between the code and the patches, beside the model's error (MSE) on those
images: a copy scores 1 and an error near 0.

Both measures lean towards 1 where the points are few for the values per
point (independent noise of 500 points in 768 dimensions scores SVCCA
0.9): SVCCA is undefined below 10 points per value, and CKA is the
minibatch estimate with the unbiased HSIC (MinibatchCKA), over shuffled
batches of points.

Manakov et al. compute a DFT SVCCA of the code and the image instead
(translation-invariant spectra); this one asks the copy question of each
position directly, and needs no resampling of either side.
"""

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from hourglass.analyses.outliers import image_errors
from hourglass.analyses.probes import code_layer, codes
from hourglass.analyses.walks import first_images
from hourglass.checks import load_checkpoint
from hourglass.io import write_table
from hourglass.similarity import MinibatchCKA, svcca

CKA_BATCH = 1000  # points per minibatch of the CKA estimate
POINTS_PER_VALUE = 10


def code_and_patches(model, x):
    """The code of each image of `x` and its patches (space-to-depth),
    each as (images * positions) x values."""
    code = codes(model, x)
    if code.dim() != 4:
        raise ValueError(f"the code {code_layer(model)} is not a map of positions (its shape is "
                         f"{tuple(code.shape[1:])}): the copy analysis needs a convolutional "
                         "bottleneck (model.architecture: cae)")
    side = x.shape[-1] // code.shape[-1]
    if tuple(code.shape[-2:]) != (x.shape[-2] // side, x.shape[-1] // side) or x.shape[-1] % side:
        raise ValueError(f"the code's {code.shape[-2]}x{code.shape[-1]} positions do not tile "
                         f"the {x.shape[-2]}x{x.shape[-1]} images in equal square patches")
    patches = F.pixel_unshuffle(x, side)

    def points(t):
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).double().numpy()

    return points(code), points(patches)


def copy_row(model, x, seed, batch=CKA_BATCH):
    """SVCCA and minibatch linear CKA between the code and the patches at
    every (image, position) point of `x`, in an order shuffled with `seed`,
    and the error (MSE) on `x`."""
    code, patches = code_and_patches(model, x)
    order = np.random.default_rng(seed).permutation(len(code))
    code, patches = code[order], patches[order]
    row = dict(points=len(code), svcca=np.nan, linear_cka=np.nan,
               mse=float(image_errors(model, x).mean()), undefined="")
    values = max(code.shape[1], patches.shape[1])
    if len(code) < POINTS_PER_VALUE * values:
        row["undefined"] = (f"{len(code)} points for {values} values per point: SVCCA leans "
                            f"towards 1 under {POINTS_PER_VALUE} points per value; give "
                            "analyses.copy.images more")
    try:
        if not row["undefined"]:
            row["svcca"] = svcca(code, patches, names=("code", "patches"))
        cka = MinibatchCKA(names=("code", "patches"))
        # full batches only (the few points left over are left out), or all in one
        for start in range(0, max(len(code) - batch, 0) + 1, batch):
            cka.update(code[start:start + batch], patches[start:start + batch])
        row["linear_cka"] = cka.compute()
    except ValueError as error:  # a dead code: no variance to correlate
        row["undefined"] = str(error)
    return row


def run(checkpoints, data, settings, out, threads=1):
    """Table `copy`: per seed, with the grid settings, the code's SVCCA and
    linear CKA with the input's patches and the error on those images."""
    torch.set_num_threads(threads)
    x = first_images(data, settings["images"], "analyses.copy.images", settings["split"])
    rows = []
    for path in checkpoints:
        model, record = load_checkpoint(path)
        key = dict(variant=record["variant"], seed=record["seed"],
                   **{k: record["model"].get(k) for k in settings["grid"]})
        if model is None:
            rows.append(dict(**key, points=0, svcca=np.nan, linear_cka=np.nan, mse=np.nan,
                             undefined=f"diverged: {record['diverged']}"))
            continue
        rows.append(dict(**key, **copy_row(model, x, settings["seed"])))
    write_table(pd.DataFrame(rows), out["copy"])
