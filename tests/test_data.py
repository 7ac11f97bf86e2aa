"""Dataset loaders, on tiny files placed where torchvision (or Debian) puts them."""

import gzip
import json
import pickle
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torchvision

from conftest import REPO, debian_packages
from hourglass.data import DATASETS, DatasetMissing, image_shape, load_split, prepare

N_TRAIN, N_TEST = 40, 20  # 4 and 2 images per class


def images(n, shape, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def labels(n):
    return np.arange(n, dtype=np.uint8) % 10


def idx_bytes(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx_files(folder, compress):
    """The four MNIST-format files, as torchvision's raw/ folder (plain) or Debian (.gz) has them."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": images(N_TRAIN, (28, 28), 0),
              "train-labels-idx1-ubyte": labels(N_TRAIN),
              "t10k-images-idx3-ubyte": images(N_TEST, (28, 28), 1),
              "t10k-labels-idx1-ubyte": labels(N_TEST)}
    for name, array in arrays.items():
        if compress:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(idx_bytes(array))
        else:
            (folder / name).write_bytes(idx_bytes(array))
    return arrays


def prepare_tiny(name, root, out):
    prepare(name, root=root, download=False, val_fraction=0.25, train_size=None,
            probe_size=10, split_seed=0, out=out)


def check_file(out, train_images, test_images, channels_first_shape):
    x_test, y_test = load_split(out, "test")
    assert x_test.shape == (N_TEST, *channels_first_shape)
    assert np.allclose(x_test.numpy(), test_images / 255.0, atol=1e-7)
    x_train, y_train = load_split(out, "train")
    x_val, _ = load_split(out, "val")
    assert len(x_train) == 30 and len(x_val) == 10
    assert np.bincount(y_train.numpy()).tolist() == [3] * 10  # stratified
    _, y_probe = load_split(out, "probe")
    assert sorted(y_probe.tolist()) == list(range(10))  # one probe image per class


@pytest.mark.parametrize("name,folder", [("fashion_mnist", "FashionMNIST"), ("mnist", "MNIST")])
def test_mnist_like_from_torchvision_layout(tmp_path, name, folder):
    arrays = write_idx_files(tmp_path / "root" / folder / "raw", compress=False)
    prepare_tiny(name, tmp_path / "root", tmp_path / "out.h5")
    check_file(tmp_path / "out.h5", arrays["train-images-idx3-ubyte"],
               arrays["t10k-images-idx3-ubyte"][:, None], (1, 28, 28))


def test_fashion_mnist_from_debian_layout(tmp_path):
    arrays = write_idx_files(tmp_path / "fashion-mnist", compress=True)
    prepare_tiny("fashion_mnist", tmp_path / "fashion-mnist", tmp_path / "out.h5")
    check_file(tmp_path / "out.h5", arrays["train-images-idx3-ubyte"],
               arrays["t10k-images-idx3-ubyte"][:, None], (1, 28, 28))
    with h5py.File(tmp_path / "out.h5") as f:
        assert "Ankle boot" in f.attrs["classes"]


def test_cifar10_from_torchvision_layout(tmp_path, monkeypatch):
    folder = tmp_path / "root" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = images(N_TRAIN, (3, 32, 32), 0)
    test = images(N_TEST, (3, 32, 32), 1)
    batches = {f"data_batch_{i}": (train[(i - 1) * 8:i * 8], labels(N_TRAIN)[(i - 1) * 8:i * 8])
               for i in range(1, 6)}
    batches["test_batch"] = (test, labels(N_TEST))
    for name, (x, y) in batches.items():
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x.reshape(len(x), -1), "labels": y.tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    # Tiny files cannot match the md5 sums of the real archive: skip only that check.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    prepare_tiny("cifar10", tmp_path / "root", tmp_path / "out.h5")
    check_file(tmp_path / "out.h5", train, test, (3, 32, 32))


@pytest.mark.parametrize("name,hint", [
    ("fashion_mnist", "apt-get install dataset-fashion-mnist"),
    ("mnist", "MNIST/raw"),
    ("cifar10", "cifar-10-batches-py"),
])
def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, name, hint):
    with pytest.raises(DatasetMissing) as error:
        prepare_tiny(name, tmp_path / "empty", tmp_path / "out.h5")
    message = str(error.value)
    assert name in message and str(tmp_path / "empty") in message and hint in message
    assert not (tmp_path / "out.h5").exists()


def test_digits_file(digits_file):
    x_train, y_train = load_split(digits_file, "train")
    x_probe, y_probe = load_split(digits_file, "probe")
    x_test, _ = load_split(digits_file, "test")
    assert x_train.shape[1:] == (1, 8, 8)
    assert 0 <= x_train.min() and x_train.max() == 1
    assert len(x_test) == 360 and len(x_probe) == 100
    assert np.bincount(y_probe.numpy()).min() >= 9  # class-stratified
    with h5py.File(digits_file) as f:
        index = f["probe/test_index"][()]
    assert np.array_equal(x_probe.numpy(), x_test.numpy()[index])


def test_same_settings_give_the_same_probe(digits_file, tmp_path):
    prepare("digits", "unused", False, 0.1, None, 100, 0, tmp_path / "again.h5")
    for split in ("train", "val", "probe"):
        assert np.array_equal(load_split(digits_file, split)[0], load_split(tmp_path / "again.h5", split)[0])


def test_a_validation_split_without_every_class_is_refused(tmp_path):
    # 0.005 of digits' 1,437 training images is 7, fewer than its 10 classes.
    with pytest.raises(ValueError, match=r"data.val_fraction 0.005 holds out 7 of 1437 .* raise it "
                                         r"to at least 0.007"):
        prepare("digits", "unused", False, 0.005, None, 100, 0, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_probe_larger_than_the_test_set_is_refused(tmp_path):
    with pytest.raises(ValueError, match="data.probe_size is 5000 but only 360"):
        prepare("digits", "unused", False, 0.1, None, 5000, 0, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="known: digits, fashion_mnist, mnist, cifar10"):
        prepare("imagenet", "unused", False, 0.1, None, 10, 0, tmp_path / "out.h5")


def test_kept_classes_are_the_only_ones_in_every_split_and_all_test_images_are_probes(
        digits_file, tmp_path):
    out = tmp_path / "one_seven.h5"
    prepare("digits", "unused", False, 0.1, None, None, 0, out, classes=[1, 7])
    for split in ("train", "val", "test", "probe"):
        assert set(load_split(out, split)[1].tolist()) == {0, 1}  # relabelled in their order
    with h5py.File(out) as f:
        assert json.loads(f.attrs["classes"]) == ["1", "7"]
        assert json.loads(f.attrs["class_ids"]) == [1, 7]
    # the same test images as the file of every class (same split_seed), and all are probes
    x_all, y_all = load_split(digits_file, "test")
    kept = np.isin(y_all.numpy(), [1, 7])
    x_test, y_test = load_split(out, "test")
    assert np.array_equal(x_test.numpy(), x_all.numpy()[kept])
    assert np.array_equal(y_test.numpy(), (y_all.numpy()[kept] == 7).astype(int))
    assert np.array_equal(load_split(out, "probe")[0], x_test)


def test_probe_size_draws_a_stratified_subset_of_the_kept_classes(tmp_path):
    out = tmp_path / "three.h5"
    prepare("digits", "unused", False, 0.1, None, 30, 0, out, classes=[0, 9, 4])
    _, y_probe = load_split(out, "probe")
    assert np.bincount(y_probe.numpy()).tolist() == [10, 10, 10]
    # 73 passes the start-up check (at most 73), but seed 0's split holds 72
    with pytest.raises(ValueError, match=r"data.probe_size is 73 but only 72 test images of "
                                         r"'digits' classes \[1, 7\] are available"):
        prepare("digits", "unused", False, 0.1, None, 73, 0, tmp_path / "no.h5", classes=[1, 7])
    assert not (tmp_path / "no.h5").exists()


def test_a_class_the_dataset_lacks_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"data.classes is \[1, 10\]: it must list at least two "
                                         r"different classes of 'digits', each one of 0 to 9"):
        prepare("digits", "unused", False, 0.1, None, None, 0, tmp_path / "out.h5", classes=[1, 10])
    assert not (tmp_path / "out.h5").exists()


def test_the_registry_declares_what_the_digits_loader_gives():
    """Classes and test images per class are checked at start-up without
    loading: the declaration must hold for every split_seed's split."""
    entry = DATASETS["digits"]
    for split_seed in range(10):
        source = entry.load("unused", False, split_seed)
        assert tuple(source.classes) == entry.classes
        assert (np.bincount(source.test_y) <= entry.test_counts).all()
        assert len(source.test_y) <= sum(entry.test_counts)


def test_the_registry_names_torchvisions_classes():
    assert DATASETS["mnist"].classes == tuple(torchvision.datasets.MNIST.classes)
    assert DATASETS["fashion_mnist"].classes == tuple(torchvision.datasets.FashionMNIST.classes)


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_the_registry_declares_what_debians_fashion_mnist_holds():
    if not DEBIAN_FASHION.exists():
        debian_packages("dataset-fashion-mnist")
    entry = DATASETS["fashion_mnist"]
    source = entry.load(DEBIAN_FASHION, False, 0)
    assert tuple(source.classes) == entry.classes
    assert tuple(np.bincount(source.test_y)) == entry.test_counts


def test_first_images_are_cut_in_published_order_before_classes_are_kept(tmp_path):
    """The latent paper's subset: the chosen classes among the first images."""
    from hourglass.data import DATASETS

    src = DATASETS["digits"].load("unused", False, 0)
    out = tmp_path / "first.h5"
    prepare("digits", "unused", False, 0.1, None, None, 0, out, classes=[1, 7],
            first={"train": 500, "test": 100})
    head = np.isin(src.test_y[:100], [1, 7])
    x_test, y_test = load_split(out, "test")
    assert np.array_equal(x_test.numpy() * 16, src.test_x[:100][head])
    assert np.array_equal(y_test.numpy(), (src.test_y[:100][head] == 7).astype(int))
    fit, val = load_split(out, "train")[1], load_split(out, "val")[1]
    assert len(fit) + len(val) == np.isin(src.train_y[:500], [1, 7]).sum()
    with pytest.raises(ValueError, match="data.first.test is 400 but 'digits' has 360 test"):
        prepare("digits", "unused", False, 0.1, None, None, 0, tmp_path / "no.h5",
                first={"train": 500, "test": 400})
    assert not (tmp_path / "no.h5").exists()


def test_resized_images_are_torchvisions_resize_of_the_same_splits(digits_file, tmp_path):
    from torchvision.transforms.v2 import functional as TF

    out = tmp_path / "digits64.h5"
    prepare("digits", "unused", False, 0.1, None, 100, 0, out, resize=64)
    with h5py.File(digits_file) as small, h5py.File(out) as big:
        assert json.loads(big.attrs["image_shape"]) == [1, 64, 64]
        assert json.loads(big.attrs["settings"])["resize"] == 64
        assert np.array_equal(big["probe/test_index"][()], small["probe/test_index"][()])
        for split in ("train", "val", "test", "probe"):
            assert np.array_equal(big[split]["y"][()], small[split]["y"][()])
            x = torch.from_numpy(small[split]["x"][()])
            assert np.array_equal(big[split]["x"][()],
                                  TF.resize(x, [64, 64], antialias=True).numpy())


def test_padded_images_hold_the_same_images_framed_in_black(digits_file, tmp_path):
    out = tmp_path / "digits12.h5"
    prepare("digits", "unused", False, 0.1, None, 100, 0, out, pad=2)
    with h5py.File(digits_file) as small, h5py.File(out) as big:
        assert json.loads(big.attrs["image_shape"]) == [1, 12, 12]
        assert json.loads(big.attrs["settings"])["pad"] == 2
        for split in ("train", "val", "test", "probe"):
            x = big[split]["x"][()]
            assert np.array_equal(x[:, :, 2:-2, 2:-2], small[split]["x"][()])
            x[:, :, 2:-2, 2:-2] = 0
            assert not x.any()
    assert image_shape({"dataset": "digits", "pad": 2}) == (1, 12, 12)


def test_a_setting_without_resize_keeps_its_data_file_name():
    # the tiny study's data file as named before resize was a setting: adding
    # the setting renames (and so re-prepares, re-trains) no existing study's data
    import yaml

    from hourglass.config import DATA_LOCATION, data_key, data_settings, load_schema

    config = yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text())
    schema = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    setting = {k: v for k, v in data_settings(config, schema)["data"].items()
               if k not in DATA_LOCATION}
    assert data_key(setting) == "digits-823f04a6"


def dsprites_npz(root, scales=2, orientations=2, positions=3):
    """A small file in dSprites' published layout (imgs, latents_classes and
    latents_values over colour, shape, scale, orientation, pos_x, pos_y, and
    a pickled metadata entry), its images random and its factors a grid."""
    grid = (1, 3, scales, orientations, positions, positions)
    n = int(np.prod(grid))
    latents = np.stack(np.unravel_index(np.arange(n), grid), axis=1).astype(np.int64)
    imgs = np.random.default_rng(0).integers(0, 2, size=(n, 64, 64), dtype=np.uint8)
    metadata = np.array({"title": "dSprites"}, dtype=object)
    np.savez(root / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz", imgs=imgs,
             latents_classes=latents, latents_values=latents.astype(float), metadata=metadata)
    return imgs, latents


def test_dsprites_from_the_published_file_keeps_its_factors(tmp_path):
    imgs, latents = dsprites_npz(tmp_path)
    out = tmp_path / "dsprites.h5"
    prepare("dsprites", tmp_path, False, 0.1, None, 6, 0, out)
    with h5py.File(out) as f:
        assert json.loads(f.attrs["factor_names"]) == ["shape", "scale", "orientation", "pos_x",
                                                       "pos_y"]
        assert json.loads(f.attrs["classes"]) == ["square", "ellipse", "heart"]
        total = 0
        for split in ("train", "val", "test"):
            factors, x, y = (f[split][k][()] for k in ("factors", "x", "y"))
            total += len(x)
            # each image is the published one of its factors, labelled by its shape
            index = [np.flatnonzero((latents[:, 1:] == row).all(1))[0] for row in factors]
            assert np.array_equal(x[:, 0], imgs[index]) and np.array_equal(y, factors[:, 0])
        assert total == len(imgs) and len(f["probe/factors"]) == 6
    x, _ = load_split(out, "probe")
    assert set(np.unique(x.numpy())) <= {0.0, 1.0}


def test_dsprites_missing_or_damaged_says_what_and_how_to_get_it(tmp_path):
    from hourglass.data import DatasetDamaged

    with pytest.raises(DatasetMissing, match="dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz is "
                                             "missing.*data.download: true.*google-deepmind"):
        prepare("dsprites", tmp_path, False, 0.1, None, 3, 0, tmp_path / "out.h5")
    dsprites_npz(tmp_path)
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetDamaged, match="cannot be read as dSprites.*Delete it"):
        prepare("dsprites", tmp_path, False, 0.1, None, 3, 0, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_the_generated_shapes_cover_dsprites_factor_space_each_sprite_whole(tmp_path):
    from hourglass.data import SPRITE_SHIFTS, sprite_shapes

    sprites = sprite_shapes()
    assert np.array_equal(sprites, sprite_shapes())  # deterministic
    assert sprites.shape == (3, 6, 40, 64, 64)
    # larger scales cover more pixels; rotation keeps the area (up to the grid)
    area = sprites.sum(axis=(3, 4))
    assert (np.diff(area[:, :, 0], axis=1) > 0).all()
    assert (area.max(2) / area.min(2) < 1.25).all()
    out = tmp_path / "shapes.h5"
    prepare("shapes", "unused", False, 0.1, 300, 30, 0, out)
    with h5py.File(out) as f:
        assert len(f["test/x"]) == 73728  # a tenth of 737,280
        for split in ("train", "probe"):
            factors, x = f[split]["factors"][()], f[split]["x"][()]
            for (shape, scale, orientation, px, py), image in zip(factors, x[:, 0]):
                sprite = sprites[shape, scale, orientation].astype(np.uint8)
                shifted = np.roll(np.roll(sprite, SPRITE_SHIFTS[py], 0), SPRITE_SHIFTS[px], 1)
                assert np.array_equal(image, shifted)
                assert image.sum() == sprite.sum()  # whole: nothing rolled over an edge
        assert np.bincount(f["train/y"][()]).tolist() == [100, 100, 100]


def test_test_size_keeps_a_stratified_subset_of_the_test_images(digits_file, tmp_path):
    out = tmp_path / "small_test.h5"
    prepare("digits", "unused", False, 0.1, None, 50, 0, out, test_size=100)
    x_test, y_test = load_split(out, "test")
    assert len(x_test) == 100 and np.bincount(y_test.numpy()).min() >= 9
    # the training splits are those of the whole test set's file; the probe is drawn from the kept
    assert np.array_equal(load_split(out, "train")[0], load_split(digits_file, "train")[0])
    with h5py.File(out) as f:
        assert np.array_equal(f["probe/x"][()], f["test/x"][()][f["probe/test_index"][()]])
    with pytest.raises(ValueError, match="data.test_size is 400 but only 360 test images"):
        prepare("digits", "unused", False, 0.1, None, 50, 0, tmp_path / "no.h5", test_size=400)


def test_stl10_from_its_binary_layout(tmp_path, monkeypatch):
    """STL-10's published binaries (stl10_binary/: column-major 96 x 96 x 3
    images, 1-based labels), read as the labelled dataset and as the
    unlabeled one, whose last HELD_OUT images are its test split."""
    import hourglass.data

    folder = tmp_path / "root" / "stl10_binary"
    folder.mkdir(parents=True)
    train, test, unlabeled = (images(n, (3, 96, 96), seed) for n, seed in
                              ((N_TRAIN, 0), (N_TEST, 1), (30, 2)))
    for name, x in (("train", train), ("test", test), ("unlabeled", unlabeled)):
        (folder / f"{name}_X.bin").write_bytes(x.transpose(0, 1, 3, 2).tobytes())
    for name, n in (("train", N_TRAIN), ("test", N_TEST)):
        (folder / f"{name}_y.bin").write_bytes((labels(n) + 1).tobytes())
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    monkeypatch.setattr(torchvision.datasets.STL10, "_check_integrity", lambda self: True)
    prepare_tiny("stl10", tmp_path / "root", tmp_path / "out.h5")
    check_file(tmp_path / "out.h5", train, test, (3, 96, 96))
    monkeypatch.setattr(hourglass.data, "HELD_OUT", 8)
    prepare("stl10_unlabeled", root=tmp_path / "root", download=False, val_fraction=0.2,
            train_size=None, probe_size=4, split_seed=0, out=tmp_path / "unlabeled.h5")
    x_test, y_test = load_split(tmp_path / "unlabeled.h5", "test")
    assert np.allclose(x_test.numpy(), unlabeled[-8:] / 255.0, atol=1e-7)
    assert not y_test.any() and len(load_split(tmp_path / "unlabeled.h5", "train")[0]) == 18


def write_celeba(root, n=12):
    """CelebA's published layout (celeba/: img_align_celeba/*.jpg of 178 x 218
    and the list files, attributes in {-1, 1}) with `n` random faces; returns
    the images as decoded and the attributes in {0, 1}."""
    from PIL import Image

    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    attributes = np.random.default_rng(3).integers(0, 2, size=(n, 40))
    attribute_names = [f"attr{k}" for k in range(40)]
    decoded = []
    for name, x in zip(names, images(n, (3, 218, 178), 4)):
        Image.fromarray(x.transpose(1, 2, 0)).save(folder / "img_align_celeba" / name, quality=95)
        with Image.open(folder / "img_align_celeba" / name) as saved:
            decoded.append(torch.from_numpy(np.asarray(saved).transpose(2, 0, 1).copy()))
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n" + " ".join(attribute_names) + " \n"
        + "".join(f"{name} " + " ".join(str(2 * a - 1) for a in row) + "\n"
                  for name, row in zip(names, attributes)))
    (folder / "list_eval_partition.txt").write_text("".join(f"{name} 0\n" for name in names))
    (folder / "identity_CelebA.txt").write_text("".join(f"{name} 1\n" for name in names))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n"
        + "".join(f"{name} 0 0 178 218\n" for name in names))
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
        "rightmouth_x rightmouth_y\n" + "".join(f"{name} " + " 1" * 10 + "\n" for name in names))
    return decoded, attributes, attribute_names


def test_celeba_from_its_published_layout_cropped_as_manakov(tmp_path, monkeypatch):
    import hourglass.data
    from torchvision.transforms.v2 import functional as TF

    decoded, attributes, names = write_celeba(tmp_path / "root")
    monkeypatch.setattr(torchvision.datasets.CelebA, "_check_integrity", lambda self: True)
    monkeypatch.setattr(hourglass.data, "HELD_OUT", 4)
    out = tmp_path / "out.h5"
    prepare("celeba", root=tmp_path / "root", download=False, val_fraction=0.25, train_size=None,
            probe_size=2, split_seed=0, out=out)
    x_test, _ = load_split(out, "test")
    # the last 4 files, padded 7 px left and right (reflected), 13 cropped
    # off the top and bottom, halved
    for x, face in zip(x_test, decoded[-4:]):
        padded = np.pad(face.numpy(), ((0, 0), (0, 0), (7, 7)), mode="reflect")
        square = torch.from_numpy(padded[:, 13:-13])
        assert square.shape == (3, 192, 192)
        expected = TF.resize(square, [96, 96], interpolation=TF.InterpolationMode.BICUBIC,
                             antialias=True)
        assert np.array_equal((x * 255).round().byte().numpy(), expected.numpy())
    with h5py.File(out) as f:
        assert json.loads(f.attrs["factor_names"]) == names
        assert np.array_equal(f["test/factors"][()], attributes[-4:])
        assert len(f["train/x"]) + len(f["val/x"]) == 8


@pytest.mark.parametrize("name,hint", [("celeba", "img_align_celeba.zip"),
                                       ("stl10", "stl10_binary.tar.gz"),
                                       ("stl10_unlabeled", "stl10_binary")])
def test_a_missing_face_or_stl10_dataset_says_how_to_get_it(tmp_path, name, hint):
    with pytest.raises(DatasetMissing, match=f"dataset '{name}' was not found in .*{hint}"):
        prepare_tiny(name, tmp_path / "empty", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
