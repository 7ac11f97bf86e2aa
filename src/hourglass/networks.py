"""Networks the workflow does not train, to invert (hourglass.inversion):
torchvision's ResNets, untrained (seeded init) or with ImageNet weights, and
plain MLPs for the width experiment. Each is an hourglass.models.Autoencoder,
a chain of named stages, so that every analysis of layers reads it as it
reads the project's autoencoders; and the images to invert them on.
"""

import math
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from torch import nn
from torchvision import models as tvm
from torchvision.transforms.v2 import functional as TF

from hourglass.models import ACTIVATIONS, Autoencoder

RESNETS = {"resnet18": (tvm.resnet18, tvm.ResNet18_Weights),
           "resnet50": (tvm.resnet50, tvm.ResNet50_Weights),
           "resnet152": (tvm.resnet152, tvm.ResNet152_Weights)}
# conv1 before and after batch norm, its ReLU and the max pool, then the four
# stages of residual blocks (Badger's "Conv2" … "Conv5"); no pooling or head
RESNET_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
WEIGHTS = ("untrained", "imagenet")


def resnet(name, weights, seed):
    """ResNet `name` as a chain of RESNET_STAGES: `weights` 'untrained'
    (torchvision's init, drawn from `seed`) or 'imagenet' (its IMAGENET1K_V1
    weights, downloaded on first use into torch's cache)."""
    build, known = RESNETS[name]
    if weights == "untrained":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build(weights=None)
    else:
        chosen = known.IMAGENET1K_V1
        try:
            net = build(weights=chosen)
        except (URLError, OSError) as e:
            cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(chosen.url).name
            raise RuntimeError(
                f"{name} with ImageNet weights needs {Path(chosen.url).name}, which is not in "
                f"torch's cache ({cache}) and could not be downloaded ({e}). Run once online, "
                f"or fetch {chosen.url} into {cache.parent}; or invert it untrained "
                "(weights: [untrained])") from e
    # torchvision's ReLU works in place: as a stage of its own it would
    # overwrite bn1's activations, which the chain keeps as a layer
    net.relu = nn.ReLU()
    # eval: batch norm from its running statistics, so each image is its own
    return Autoencoder([(stage, "encoder", getattr(net, stage))
                        for stage in RESNET_STAGES]).eval()


def mlp(widths, activation, input_shape, seed):
    """Dense layers of `widths` (torch's default init, drawn from `seed`),
    each followed by `activation`, on flattened images of `input_shape`:
    layers dense1, dense2, …"""
    stages, prev = [], math.prod(input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, width in enumerate(widths, 1):
            first = [nn.Flatten()] if i == 1 else []
            stages.append((f"dense{i}", "encoder", nn.Sequential(
                *first, nn.Linear(prev, width), ACTIVATIONS[activation]())))
            prev = width
    return Autoencoder(stages).eval()


def sample_images():
    """scikit-learn's two sample photographs (china.jpg, flower.jpg; 427 x
    640, shipped inside scikit-learn) as uint8 C x H x W, with their names."""
    from sklearn.datasets import load_sample_images

    images = load_sample_images()
    names = [Path(f).stem for f in images.filenames]
    return [np.moveaxis(x, -1, 0) for x in images.images], names


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def folder_images(path):
    """Every image file of folder `path` (by name, RGB), as uint8 C x H x W, with their names."""
    from PIL import Image

    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"analyses.inversion.images.path {path} holds no image file "
                         f"({', '.join(IMAGE_SUFFIXES)}); put the images to invert there")
    return [np.moveaxis(np.asarray(Image.open(p).convert("RGB")), -1, 0) for p in files], \
        [p.stem for p in files]


def fitted(images, side):
    """uint8 images (each C x H x W, any size) as float N x C x side x side in
    [0, 1]: the shorter side resized to `side` (antialiased), then the centre
    cropped."""
    out = [TF.center_crop(TF.resize(torch.from_numpy(np.ascontiguousarray(x)), [side],
                                    antialias=True), [side, side]) for x in images]
    return torch.stack(out).float() / 255
