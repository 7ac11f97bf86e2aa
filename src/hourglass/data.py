"""Dataset registry, loaders, splits and the fixed probe set.

Every data setting becomes one HDF5 file with the groups train, val, test
and probe, each holding `x` (uint8 images, stimuli x channels x height x
width) and `y` (class labels). Pixels are stored as the source's integers
and scaled to [0, 1] on reading with the file's `scale` attribute, which
keeps the files small and the scaling exact. A setting that keeps some
`classes` keeps only their images, in every split, labelled 0..k-1 in the
order the setting lists them; the file's `classes` attribute names them and
`class_ids` gives their labels in the dataset.
"""

import gzip
import math
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np

from hourglass.io import atomic_path, open_h5, write_attrs

@dataclass
class Source:
    """A dataset as its source gives it: integer pixels and labels."""

    train_x: np.ndarray  # uint8, N x C x H x W
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    scale: float  # multiplies the integers into [0, 1]
    classes: list
    # {"train": (images file, labels file), "test": ...} where files hold them, for messages
    files: dict = field(default_factory=dict)
    # the ground-truth factors of each image (dSprites: shape, scale, ...), where known:
    # their names, and per split an integer array (images x factors) of each one's index
    factor_names: tuple = ()
    train_factors: np.ndarray | None = None
    test_factors: np.ndarray | None = None


def train_test_split(*arrays, **options):
    """scikit-learn's, imported on first use: Snakemake imports this module
    (DATASETS) each time it starts, and scikit-learn takes seconds to import."""
    from sklearn.model_selection import train_test_split as split

    return split(*arrays, **options)


class DatasetMissing(FileNotFoundError):
    pass


class DatasetDamaged(ValueError):
    """A dataset's source file that exists but cannot be read (truncated, corrupt)."""


def _digits(root, download, split_seed):
    """scikit-learn's 8x8 digits (shipped inside the package): 1797 images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.uint8)[:, None]  # values 0..16
    idx_train, idx_test = train_test_split(
        np.arange(len(x)), test_size=0.2, stratify=digits.target, random_state=split_seed
    )
    return Source(
        x[idx_train], digits.target[idx_train], x[idx_test], digits.target[idx_test],
        scale=1 / 16, classes=[str(c) for c in range(10)],
    )


def _read_idx(path, how_to_get=""):
    """Read an IDX file (the MNIST format; gzipped if its name ends in .gz) into
    a NumPy array; a truncated or corrupt file raises DatasetDamaged naming it."""
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as error:  # gzip: a cut-off stream or not gzip at all
        raise DatasetDamaged(f"dataset file {path} cannot be read ({error}): it is truncated or "
                             f"damaged. Delete it and get it again. {how_to_get}") from error
    ndim = raw[3] if len(raw) >= 4 else 0
    header = 4 + 4 * ndim
    if len(raw) < 4 or raw[:3] != b"\0\0\x08" or len(raw) < header:
        raise DatasetDamaged(f"dataset file {path} is not an IDX file of unsigned bytes (its "
                             f"header is damaged or cut off). Delete it and get it again. "
                             f"{how_to_get}")
    shape = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    if len(raw) - header != np.prod(shape):
        raise DatasetDamaged(
            f"dataset file {path} is truncated or damaged: its header promises {shape.tolist()} "
            f"= {np.prod(shape)} bytes of data, it holds {len(raw) - header}. Delete it and "
            f"get it again. {how_to_get}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_idx_gz(path):
    return _read_idx(path)


def _torchvision(name, cls_name, how_to_get):
    def load(root, download, split_seed):
        import torchvision.datasets

        cls = getattr(torchvision.datasets, cls_name)
        # torchvision reads cut-off IDX files into a reshape error naming no
        # file: check the MNIST-like raw files first.
        raw = Path(root) / cls_name / "raw"
        for path in sorted(raw.glob("*-ubyte")) if raw.is_dir() else []:
            _read_idx(path, f"To get it: {how_to_get}")
        try:
            train = cls(root, train=True, download=download)
            test = cls(root, train=False, download=download)
        except RuntimeError as error:
            raise DatasetMissing(
                f"dataset {name!r} was not found in {Path(root).resolve()}, or is damaged "
                f"there ({error}). To get it: {how_to_get}"
            ) from error
        except (EOFError, OSError, ValueError, pickle.UnpicklingError) as error:
            raise DatasetDamaged(
                f"dataset {name!r} in {Path(root).resolve()} cannot be read "
                f"({type(error).__name__}: {error}): a file is truncated or damaged. Delete "
                f"it and get it again. To get it: {how_to_get}") from error

        def images(ds):
            x = np.asarray(ds.data, dtype=np.uint8)
            return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)

        return Source(
            images(train), np.asarray(train.targets), images(test), np.asarray(test.targets),
            scale=1 / 255, classes=list(train.classes),
            files={"train": _torchvision_files(train), "test": _torchvision_files(test)},
        )

    return load


def _torchvision_files(ds):
    """The files a torchvision dataset read its images and its labels from."""
    if hasattr(ds, "raw_folder"):  # MNIST-like: an IDX file of images, one of labels
        prefix = "train" if ds.train else "t10k"
        return (Path(ds.raw_folder) / f"{prefix}-images-idx3-ubyte",
                Path(ds.raw_folder) / f"{prefix}-labels-idx1-ubyte")
    batches = ds.train_list if ds.train else ds.test_list  # CIFAR: batches holding both
    both = f"{', '.join(name for name, _ in batches)} in {Path(ds.root) / ds.base_folder}"
    return both, both


_fashion_torchvision = _torchvision(
    "fashion_mnist", "FashionMNIST",
    "set data.download: true when online, or `apt-get install dataset-fashion-mnist` "
    "and set data.root: /usr/share/datasets/fashion-mnist",
)


DEBIAN_HINT = "(`apt-get install --reinstall dataset-fashion-mnist` restores Debian's copy.)"


def _fashion_mnist(root, download, split_seed):
    """Fashion-MNIST from torchvision's layout, or from one folder of gzipped
    IDX files as Debian's dataset-fashion-mnist package installs them."""
    root = Path(root)
    if (root / "train-images-idx3-ubyte.gz").exists():
        x, y, files = {}, {}, {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            files[split] = (root / f"{prefix}-images-idx3-ubyte.gz",
                            root / f"{prefix}-labels-idx1-ubyte.gz")
            x[split] = _read_idx(files[split][0], DEBIAN_HINT)[:, None]
            y[split] = _read_idx(files[split][1], DEBIAN_HINT).astype(np.int64)
        import torchvision.datasets

        return Source(x["train"], y["train"], x["test"], y["test"], scale=1 / 255,
                      classes=list(torchvision.datasets.FashionMNIST.classes), files=files)
    return _fashion_torchvision(root, download, split_seed)


# The factors of dSprites (Matthey et al. 2017), in the published file's order
# (its constant colour left out), and the number of values of each.
SPRITE_FACTORS = {"shape": 3, "scale": 6, "orientation": 40, "pos_x": 32, "pos_y": 32}
SPRITE_SHAPES = ("square", "ellipse", "heart")
SPRITE_SIDE = 64
DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_URL = ("https://github.com/google-deepmind/dsprites-dataset/raw/master/"
                + DSPRITES_FILE)
# The share of the images held out as the test split (from which the probe
# images are drawn): the paper trains on all of them, a split keeps the test
# images unseen.
SPRITE_TEST_SHARE = 0.1


def _sprite_source(images, factors, split_seed, files=None):
    """A Source of sprite images (N x 64 x 64 of 0/1) and their factor
    indices (N x 5), labelled by shape, a seeded SPRITE_TEST_SHARE of each
    shape held out for testing."""
    shape = factors[:, 0]
    idx_train, idx_test = train_test_split(np.arange(len(images)), test_size=SPRITE_TEST_SHARE,
                                           stratify=shape, random_state=split_seed)
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    return Source(images[idx_train, None], shape[idx_train], images[idx_test, None],
                  shape[idx_test], scale=1.0, classes=list(SPRITE_SHAPES), files=files or {},
                  factor_names=tuple(SPRITE_FACTORS), train_factors=factors[idx_train],
                  test_factors=factors[idx_test])


def _dsprites(root, download, split_seed):
    """dSprites as published (DeepMind's .npz: `imgs`, 737,280 binary 64 x 64
    images, and `latents_classes`, each image's factor indices), from
    data.root, downloaded there with data.download."""
    path = Path(root) / DSPRITES_FILE
    how_to_get = (f"set data.download: true when online, or download {DSPRITES_URL} into "
                  f"{Path(root).resolve()}/")
    if not path.exists():
        if not download:
            raise DatasetMissing(f"dataset 'dsprites': {path.resolve()} is missing. To get it: "
                                 f"{how_to_get}")
        from torchvision.datasets.utils import download_url

        download_url(DSPRITES_URL, str(root), DSPRITES_FILE)
    try:
        with np.load(path) as npz:  # no pickles: the file's metadata is not read
            images, latents = npz["imgs"], npz["latents_classes"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetDamaged(f"dataset file {path} cannot be read as dSprites ({error}). Delete "
                             f"it and get it again: {how_to_get}") from error
    if images.shape[1:] != (SPRITE_SIDE, SPRITE_SIDE) or latents.shape != (len(images), 6):
        raise DatasetDamaged(f"dataset file {path} holds images {images.shape} and factors "
                             f"{latents.shape}, not dSprites' N x 64 x 64 and N x 6. Delete it "
                             f"and get it again: {how_to_get}")
    files = {split: (f"{path} (imgs)", f"{path} (latents_classes)") for split in ("train", "test")}
    return _sprite_source(images.astype(np.uint8), latents[:, 1:].astype(np.int64), split_seed,
                          files)


def sprite_shapes():
    """The 3 x 6 x 40 centred sprites of the generated stand-in for dSprites
    (boolean, 64 x 64): a square, an ellipse and a heart, each at 6 scales
    (0.5 to 1) and 40 orientations over a full turn, drawn from their
    implicit equations on the pixel grid."""
    c = (np.arange(SPRITE_SIDE) - (SPRITE_SIDE - 1) / 2) / (SPRITE_SIDE / 2)  # -1 .. 1
    v, u = np.meshgrid(c, c, indexing="ij")
    sprites = np.zeros((3, 6, 40, SPRITE_SIDE, SPRITE_SIDE), bool)
    for k, scale in enumerate(np.linspace(0.5, 1, 6)):
        for o, angle in enumerate(np.linspace(0, 2 * np.pi, 40, endpoint=False)):
            cos, sin = np.cos(angle), np.sin(angle)
            x = (cos * u + sin * v) / (0.4 * scale)
            y = (-sin * u + cos * v) / (0.4 * scale)
            sprites[0, k, o] = np.maximum(abs(x), abs(y)) <= 0.8
            sprites[1, k, o] = x ** 2 + (2 * y) ** 2 <= 1
            hx, hy = 1.1 * x, 0.25 - 1.1 * y
            sprites[2, k, o] = (hx ** 2 + hy ** 2 - 1) ** 3 - hx ** 2 * hy ** 3 <= 0
    return sprites


# The generated sprites' 32 positions on each axis: shifts of the centred
# sprite by -16 .. 15 pixels, within which every sprite stays whole.
SPRITE_SHIFTS = np.arange(-16, 16)


def _shapes(root, download, split_seed):
    """An offline stand-in for dSprites, generated, not the published bytes:
    the same factors (3 shapes x 6 scales x 40 orientations x 32 x 32
    positions, 737,280 binary 64 x 64 images, in dSprites' order, pos_y
    fastest) from sprite_shapes(), deterministic."""
    sprites = sprite_shapes()
    n = math.prod(SPRITE_FACTORS.values())
    images = np.empty((n, SPRITE_SIDE, SPRITE_SIDE), np.uint8)
    per_sprite = len(SPRITE_SHIFTS) ** 2
    for i, sprite in enumerate(sprites.reshape(-1, SPRITE_SIDE, SPRITE_SIDE).astype(np.uint8)):
        rows = np.stack([np.roll(sprite, dy, axis=0) for dy in SPRITE_SHIFTS])  # pos_y
        block = np.stack([np.roll(rows, dx, axis=2) for dx in SPRITE_SHIFTS])  # pos_x, pos_y
        images[i * per_sprite:(i + 1) * per_sprite] = block.reshape(-1, SPRITE_SIDE, SPRITE_SIDE)
    factors = np.stack(np.unravel_index(np.arange(n), tuple(SPRITE_FACTORS.values())), axis=1)
    return _sprite_source(images, factors.astype(np.int64), split_seed)


# Manakov et al.'s test images: the last 2,000 of CelebA's files and of
# STL-10's unlabeled split; the rest is the training pool ("the first 10,000"
# of their study is data.first.train).
HELD_OUT = 2000


def _torchvision_dataset(name, cls_name, how_to_get, **options):
    """torchvision's dataset `cls_name` from data.root (downloaded there with
    data.download), or DatasetMissing naming what is missing and how to get it."""
    def load(root, download):
        import torchvision.datasets

        try:
            return getattr(torchvision.datasets, cls_name)(root, download=download, **options)
        except RuntimeError as error:
            raise DatasetMissing(f"dataset {name!r} was not found in {Path(root).resolve()}, or "
                                 f"is damaged there ({error}). To get it: {how_to_get}") from error
    return load


def _held_out(name, x, factors=None, factor_names=(), files=None):
    """A one-class Source of images `x` whose last HELD_OUT are the test split."""
    if len(x) <= HELD_OUT:
        raise DatasetDamaged(f"dataset {name!r} holds {len(x)} images, not more than the "
                             f"{HELD_OUT} its test split takes: its files are incomplete. Delete "
                             "them and get them again.")
    labels = np.zeros(len(x), np.int64)
    return Source(x[:-HELD_OUT], labels[:-HELD_OUT], x[-HELD_OUT:], labels[-HELD_OUT:],
                  scale=1 / 255, classes=[name], files=files or {}, factor_names=factor_names,
                  train_factors=None if factors is None else factors[:-HELD_OUT],
                  test_factors=None if factors is None else factors[-HELD_OUT:])


CELEBA_HOW = ("set data.download: true when online (torchvision fetches it from Google Drive, "
              "which often refuses: then download img_align_celeba.zip and the list_*.txt and "
              "identity_CelebA.txt files from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
              "into <data.root>/celeba/ and unzip the images there)")


def celeba_face(image):
    """Manakov et al.'s 96 x 96 face of an aligned 178 x 218 CelebA image (a
    uint8 tensor, C x H x W): padded by 7 pixels left and right (reflected),
    13 cropped off the top and bottom (192 x 192), halved (bicubic)."""
    from torchvision.transforms.v2 import functional as TF

    square = TF.crop(TF.pad(image, [7, 0], padding_mode="reflect"), 13, 0, 192, 192)
    return TF.resize(square, [96, 96], interpolation=TF.InterpolationMode.BICUBIC,
                     antialias=True)


def _celeba(root, download, split_seed):
    """CelebA's aligned faces (Liu et al. 2015) through torchvision, in file
    order, as Manakov et al. crop them (celeba_face); one class, the 40
    binary attributes as factors; the last HELD_OUT files are the test split."""
    import torch
    from PIL import Image  # torchvision's own decoders are deprecated

    ds = _torchvision_dataset("celeba", "CelebA", CELEBA_HOW, split="all",
                              target_type="attr")(root, download)
    folder = Path(ds.root) / ds.base_folder / "img_align_celeba"

    def face(name):
        with Image.open(folder / name) as image:
            pixels = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
        return celeba_face(torch.from_numpy(np.ascontiguousarray(pixels))).numpy()

    x = np.stack([face(name) for name in ds.filename])
    names = tuple(name for name in ds.attr_names if name)  # a trailing space gives an empty one
    files = (str(folder), str(Path(ds.root) / ds.base_folder / "list_attr_celeba.txt"))
    return _held_out("celeba", x, ds.attr.numpy().astype(np.int64), names,
                     {"train": files, "test": files})


STL10_HOW = ("set data.download: true when online, or unpack stl10_binary.tar.gz "
             "(https://cs.stanford.edu/~acoates/stl10/) into <data.root>/ (giving stl10_binary/)")


def _stl10_unlabeled(root, download, split_seed):
    """STL-10's 100,000 unlabeled 96 x 96 images (Coates et al. 2011) through
    torchvision: one class, the last HELD_OUT the test split, as Manakov et al."""
    ds = _torchvision_dataset("stl10_unlabeled", "STL10", STL10_HOW, split="unlabeled")(
        root, download)
    binary = str(Path(ds.root) / ds.base_folder / "unlabeled_X.bin")
    return _held_out("stl10_unlabeled", np.asarray(ds.data, np.uint8),
                     files={split: (binary, binary) for split in ("train", "test")})


def _stl10(root, download, split_seed):
    """STL-10's labelled images through torchvision: its 5,000 training and
    8,000 test images of 10 classes (linear probes read these)."""
    load = {split: _torchvision_dataset("stl10", "STL10", STL10_HOW, split=split)
            for split in ("train", "test")}
    train, test = (load[split](root, download) for split in ("train", "test"))
    folder = Path(train.root) / train.base_folder
    return Source(np.asarray(train.data, np.uint8), np.asarray(train.labels, np.int64),
                  np.asarray(test.data, np.uint8), np.asarray(test.labels, np.int64),
                  scale=1 / 255, classes=list(train.classes),
                  files={split: (str(folder / f"{split}_X.bin"), str(folder / f"{split}_y.bin"))
                         for split in ("train", "test")})


@dataclass(frozen=True)
class Dataset:
    """A dataset a config can name: its loader, and what the config is checked
    against when the workflow starts, without loading it."""

    load: Callable  # (root, download, split_seed) -> Source
    classes: tuple  # the name of each label, in label order
    # the test images of each class; where the test split is drawn (by
    # split_seed), the most it can hold
    test_counts: tuple
    image_shape: tuple  # C x H x W
    prepare_mb: int = 2000  # memory preparing its data file takes at most


DIGIT_NAMES = tuple(str(c) for c in range(10))
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot")
STL10_NAMES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
               "truck")

DATASETS = {
    # 20% of each class's images, rounded either way by the stratified split
    "digits": Dataset(_digits, DIGIT_NAMES, (36, 37, 36, 37, 37, 37, 37, 36, 35, 36), (1, 8, 8)),
    "fashion_mnist": Dataset(_fashion_mnist, FASHION_NAMES, (1000,) * 10, (1, 28, 28)),
    "mnist": Dataset(_torchvision(
        "mnist", "MNIST", "set data.download: true when online, or place the raw "
        "IDX files in <data.root>/MNIST/raw/"),
        ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
         "7 - seven", "8 - eight", "9 - nine"),
        (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009), (1, 28, 28)),
    "cifar10": Dataset(_torchvision(
        "cifar10", "CIFAR10", "set data.download: true when online, or unpack "
        "cifar-10-python.tar.gz into <data.root>/ (giving cifar-10-batches-py/)"),
        CIFAR10_NAMES, (1000,) * 10, (3, 32, 32)),
    # labelled by shape; the test split is SPRITE_TEST_SHARE of each shape's 245,760 images
    # 737,280 images of 4 KiB held with their splits' copies: 6.2 GB measured (shapes)
    "dsprites": Dataset(_dsprites, SPRITE_SHAPES, (24576,) * 3, (1, 64, 64), prepare_mb=8000),
    "shapes": Dataset(_shapes, SPRITE_SHAPES, (24576,) * 3, (1, 64, 64), prepare_mb=8000),
    # 202,599 faces of 27 KiB at 96 x 96, with their splits' copies
    "celeba": Dataset(_celeba, ("celeba",), (HELD_OUT,), (3, 96, 96), prepare_mb=16000),
    "stl10_unlabeled": Dataset(_stl10_unlabeled, ("stl10_unlabeled",), (HELD_OUT,),
                               (3, 96, 96), prepare_mb=8000),
    "stl10": Dataset(_stl10, STL10_NAMES, (800,) * 10, (3, 96, 96)),
}

# With `classes` kept, every test image of theirs is a probe; of all classes, this many.
DEFAULT_PROBE_SIZE = 1000


def image_shape(setting):
    """C x H x W of the images a data setting's file holds: the dataset's,
    padded by `pad` pixels a side, or resized to `resize` pixels a side."""
    channels, height, width = DATASETS[setting["dataset"]].image_shape
    pad, size = setting.get("pad") or 0, setting.get("resize")
    if size is not None:
        return channels, size, size
    return channels, height + 2 * pad, width + 2 * pad


def padded(x, pad):
    """uint8 images (N x C x H x W) with `pad` black pixels added on every side."""
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def binarised(x, scale, threshold):
    """uint8 images whose pixels are 0 below `threshold` (in the [0, 1] range
    the `scale` maps them to) and the top of that range from it on."""
    top = round(1 / scale)
    return np.where(x.astype(np.float64) * scale >= threshold, top, 0).astype(x.dtype)


def resized(x, size):
    """uint8 images (N x C x H x W) resized to size x size by torchvision's
    antialiased bilinear resize, rounded back to uint8."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    out = [TF.resize(torch.from_numpy(chunk), [size, size], antialias=True).numpy()
           for chunk in np.array_split(x, max(1, len(x) // 4096))]
    return np.concatenate(out)


def probe_size_of(setting):
    """The probe images a data setting asks for: its `probe_size`, or by default
    every test image of the classes it keeps, or DEFAULT_PROBE_SIZE of all."""
    if setting.get("probe_size") is not None:
        return setting["probe_size"]
    if setting.get("classes") is None:
        return DEFAULT_PROBE_SIZE
    return None  # all: known once the dataset is loaded


def setting_problems(setting, where):
    """What is wrong with a data setting (`where`: its key in the config, e.g.
    variants.a.data) that the registry can tell without loading the dataset:
    classes the dataset lacks, more probe images than its test images."""
    dataset = DATASETS[setting["dataset"]]
    names = dataset.classes
    classes = setting.get("classes")
    absent = [c for c in classes or [] if c >= len(names)]
    if absent:
        listed = ", ".join(f"{i} ({name})" for i, name in enumerate(names))
        return [f"{where}.classes: {', '.join(map(str, absent))} "
                f"{'is not a class' if len(absent) == 1 else 'are not classes'} of "
                f"{setting['dataset']!r}; its classes are {listed}"]
    kept = range(len(names)) if classes is None else classes
    available = sum(dataset.test_counts[c] for c in kept)
    if setting.get("test_size") is not None:
        available = min(available, setting["test_size"])
    probe_size = probe_size_of(setting)
    if probe_size is not None and probe_size > available:
        asked = (f"{probe_size} probe images asked for" if setting.get("probe_size") is not None
                 else f"null asks for {probe_size} probe images (no classes given)")
        held = (f"{setting['dataset']!r} has" if classes is None
                else f"classes {list(classes)} of {setting['dataset']!r} have")
        return [f"{where}.probe_size: {asked}, but {held} at most {available} test images; set "
                f"{where}.probe_size to at most {available}" + (
                    " (null: all of them)" if classes is not None else "")]
    return []


def keep_classes(name, src, classes):
    """`src` with only the images of `classes`, relabelled 0..k-1 in their order."""
    absent = [c for c in classes if not 0 <= c < len(src.classes)]
    if absent or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"data.classes is {list(classes)}: it must list at least two different "
                         f"classes of {name!r}, each one of 0 to {len(src.classes) - 1}")
    relabel = np.full(len(src.classes), -1)
    relabel[list(classes)] = np.arange(len(classes))

    train, test = relabel[src.train_y] >= 0, relabel[src.test_y] >= 0
    return replace(src, train_x=src.train_x[train], train_y=relabel[src.train_y[train]],
                   test_x=src.test_x[test], test_y=relabel[src.test_y[test]],
                   classes=[src.classes[c] for c in classes],
                   train_factors=_rows(src.train_factors, train),
                   test_factors=_rows(src.test_factors, test))


def _rows(factors, index):
    """The rows `index` of a split's factors (None where it has none)."""
    return None if factors is None else factors[index]


def stratified_subset(labels, size, seed, what, items="items"):
    """Indices of a class-stratified, seeded subset of `size` items, sorted."""
    n = len(labels)
    if size > n:
        raise ValueError(f"{what} is {size} but only {n} {items} are available; set {what} "
                         f"to at most {n} in the config")
    if size == n:
        return np.arange(n)
    keep, _ = train_test_split(np.arange(n), train_size=size, stratify=labels, random_state=seed)
    return np.sort(keep)


def check_source(name, src):
    """DatasetDamaged unless each split has one label per image, each of a
    class of the dataset: a labels file that does not belong to its images
    would otherwise be cut to fit, silently, or fail later on an index."""
    fix = "Delete the dataset's files and get them again."
    for split in ("train", "test"):
        x, y = getattr(src, f"{split}_x"), getattr(src, f"{split}_y")
        images, labels = src.files.get(split, (f"its {split} split",) * 2)
        if len(x) != len(y):
            held = (f"{labels} holds {len(y)} labels but {images} holds {len(x)} images"
                    if labels != images else f"{images} holds {len(x)} images and {len(y)} labels")
            raise DatasetDamaged(f"dataset {name!r}: {held}, not one label each. {fix}")
        outside = np.flatnonzero((y < 0) | (y >= len(src.classes)))
        if len(outside):
            raise DatasetDamaged(
                f"dataset {name!r}: {labels} holds {len(outside)} of {len(y)} labels outside its "
                f"{len(src.classes)} classes (0 to {len(src.classes) - 1}), the first "
                f"{y[outside[0]]} at position {outside[0]}. {fix}")


def first_images(name, src, first):
    """`src` cut to its first `first['train']` training and `first['test']` test
    images, in the dataset's published order."""
    for split in ("train", "test"):
        held = len(getattr(src, f"{split}_y"))
        if first[split] > held:
            raise ValueError(f"data.first.{split} is {first[split]} but {name!r} has {held} "
                             f"{split} images; set it to at most {held}")
    train, test = slice(first["train"]), slice(first["test"])
    return replace(src, train_x=src.train_x[train], train_y=src.train_y[train],
                   test_x=src.test_x[test], test_y=src.test_y[test],
                   train_factors=_rows(src.train_factors, train),
                   test_factors=_rows(src.test_factors, test))


def prepare(name, root, download, val_fraction, train_size, probe_size, split_seed, out,
            classes=None, first=None, resize=None, test_size=None, pad=None, binarise=None):
    """Load dataset `name`, check it, keep its first images (`first`: {train,
    test} counts, or None for all) and its `classes` (all if None), keep a
    class-stratified `test_size` of its test images (None: all), split it,
    choose the probe set (probe_size None: see probe_size_of), pad the images
    by `pad` black pixels a side, resize them to `resize` pixels a side and
    binarise them at the threshold `binarise` (None: none of these), and
    write `out`."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    src = DATASETS[name].load(root, download, split_seed)
    check_source(name, src)
    if first is not None:
        src = first_images(name, src, first)
    class_ids = list(range(len(src.classes)))
    if classes is not None:
        src, class_ids = keep_classes(name, src, classes), list(classes)
    if test_size is not None:
        kept = stratified_subset(src.test_y, test_size, split_seed, "data.test_size",
                                 f"test images of {name!r}")
        src = replace(src, test_x=src.test_x[kept], test_y=src.test_y[kept],
                      test_factors=_rows(src.test_factors, kept))
    n_val = int(round(val_fraction * len(src.train_y)))
    n_classes = len(np.unique(src.train_y))
    if n_val < n_classes:
        raise ValueError(f"data.val_fraction {val_fraction} holds out {n_val} of {len(src.train_y)} "
                         f"training images of {name!r}, fewer than its {n_classes} classes: raise it "
                         f"to at least {n_classes / len(src.train_y):.2g}, one image of each class")
    idx_fit, idx_val = train_test_split(
        np.arange(len(src.train_y)), test_size=n_val, stratify=src.train_y, random_state=split_seed
    )
    idx_val = np.sort(idx_val)
    if train_size is not None:
        idx_fit = idx_fit[stratified_subset(src.train_y[idx_fit], train_size, split_seed, "data.train_size",
                                             "training images (after the validation split)")]
    idx_fit = np.sort(idx_fit)
    setting = dict(classes=classes, probe_size=probe_size)
    idx_probe = stratified_subset(src.test_y, probe_size_of(setting) or len(src.test_y),
                                  split_seed, "data.probe_size", f"test images of {name!r}"
                                  + ("" if classes is None else f" classes {list(classes)}"))
    splits = {
        "train": (src.train_x[idx_fit], src.train_y[idx_fit]),
        "val": (src.train_x[idx_val], src.train_y[idx_val]),
        "test": (src.test_x, src.test_y),
        "probe": (src.test_x[idx_probe], src.test_y[idx_probe]),
    }
    factors = {"train": _rows(src.train_factors, idx_fit), "val": _rows(src.train_factors, idx_val),
               "test": src.test_factors, "probe": _rows(src.test_factors, idx_probe)}
    if pad is not None:
        splits = {split: (padded(x, pad), y) for split, (x, y) in splits.items()}
    if resize is not None:
        splits = {split: (resized(x, resize), y) for split, (x, y) in splits.items()}
    if binarise is not None:
        splits = {split: (binarised(x, src.scale, binarise), y) for split, (x, y) in splits.items()}
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for split, (x, y) in splits.items():
            group = f.create_group(split)
            group.create_dataset("x", data=x, chunks=(min(len(x), 1024), *x.shape[1:]),
                                 compression="gzip", shuffle=True)
            group.create_dataset("y", data=y.astype(np.int64))
            if factors[split] is not None:
                group.create_dataset("factors", data=factors[split])
        f["probe/test_index"] = idx_probe
        write_attrs(f, dataset=name, scale=src.scale, classes=src.classes, class_ids=class_ids,
                    factor_names=list(src.factor_names),
                    image_shape=list(splits["train"][0].shape[1:]),
                    settings=dict(classes=classes, first=first, val_fraction=val_fraction,
                                  train_size=train_size, probe_size=probe_size,
                                  split_seed=split_seed, resize=resize, test_size=test_size,
                                  pad=pad, binarise=binarise))


def load_split(path, split):
    """Images of one split as float32 in [0, 1] (N x C x H x W) and their labels."""
    import torch

    from hourglass.checks import check_dataset

    with open_h5(path, "dataset") as f:
        check_dataset(path, f)
        x = torch.from_numpy(f[split]["x"][()]).float() * float(f.attrs["scale"])
        y = torch.from_numpy(f[split]["y"][()])
    return x, y
