"""Is a convolutional autoencoder's code a copy of its input? (Manakov et
al.: a complete CAE, as many code values as pixels, could learn to copy.)

A bottleneck of h x w positions, each s x s pixels of the image apart,
copies the input where each position's code is a linear map of the s x s
pixels of its own patch: of the input rearranged space-to-depth
(torch's pixel_unshuffle), whose C * s * s values per position are the
most a complete code holds there. Per seed, over (image, position) points
drawn from the first test images, SVCCA (99 % of the variance kept) and
linear CKA between the code and the patches, beside the model's test
error on those images: a copy scores SVCCA 1 and a test error near 0.

Manakov et al. compute a DFT SVCCA of the code and the image instead
(translation-invariant spectra); this one asks the copy question of each
position directly, and needs no resampling of either side.
"""

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from hourglass.analyses.probes import code_layer
from hourglass.analyses.walks import test_images
from hourglass.checks import load_checkpoint
from hourglass.io import write_table
from hourglass.similarity import linear_cka, svcca

BATCH = 256


def code_and_patches(model, x):
    """The code of each image of `x` and its patches (space-to-depth),
    each as (images * positions) x values."""
    layer = code_layer(model)
    with torch.no_grad():
        code = torch.cat([model.layers(xb)[layer] for xb in x.split(BATCH)])
    if code.dim() != 4:
        raise ValueError(f"the code {layer} is not a map of positions (its shape is "
                         f"{tuple(code.shape[1:])}): the copy analysis needs a convolutional "
                         "bottleneck (model.architecture: cae)")
    side = x.shape[-1] // code.shape[-1]
    patches = F.pixel_unshuffle(x, side)

    def points(t):
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).double().numpy()

    return points(code), points(patches)


def copy_row(model, x, points, seed):
    """SVCCA and linear CKA between the code and the patches at `points`
    (image, position) pairs drawn with `seed`, and the test error on `x`."""
    code, patches = code_and_patches(model, x)
    pick = np.random.default_rng(seed).choice(len(code), min(points, len(code)), replace=False)
    with torch.no_grad():
        mse = float(torch.cat([(model(xb) - xb).pow(2).flatten(1).mean(1)
                                 for xb in x.split(BATCH)]).mean())
    row = dict(points=len(pick), svcca=np.nan, linear_cka=np.nan, test_mse=mse, undefined="")
    try:
        for name, measure in (("svcca", svcca), ("linear_cka", linear_cka)):
            row[name] = measure(code[pick], patches[pick], names=("code", "patches"))
    except ValueError as error:  # a dead code: no variance to correlate
        row["undefined"] = str(error)
    return row


def run(checkpoints, data, settings, out, threads=1):
    """Table `copy`: per seed, with the grid settings, the code's SVCCA and
    linear CKA with the input's patches and the test error."""
    torch.set_num_threads(threads)
    x = test_images(data, settings["images"], "analyses.copy.images")
    rows = []
    for path in checkpoints:
        model, record = load_checkpoint(path)
        key = dict(variant=record["variant"], seed=record["seed"],
                   **{k: record["model"].get(k) for k in settings["grid"]})
        if model is None:
            rows.append(dict(**key, points=0, svcca=np.nan, linear_cka=np.nan, test_mse=np.nan,
                             undefined=f"diverged: {record['diverged']}"))
            continue
        rows.append(dict(**key, **copy_row(model, x, settings["points"], settings["seed"])))
    write_table(pd.DataFrame(rows), out["copy"])
