"""Manakov et al.'s qualitative and copy analyses on real models: walks
through code space (interpolation, iteration), the image files they write,
and the copy measures on a model that copies and one that does not."""

import numpy as np
import pytest
import torch
from torch import nn

from hourglass.analyses.copies import code_and_patches, copy_row
from hourglass.analyses.walks import interpolate, iterate, iteration_steps
from hourglass.io import concat_images, read_images, write_images
from hourglass.models import Autoencoder, build_model


def cae(**settings):
    torch.manual_seed(0)
    return build_model({"architecture": "cae", "levels": 2, "area": "S", "compression": 0.25,
                        "final_norm": True, **settings}, (1, 8, 8)).eval()


def images(n, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_interpolation_ends_at_the_reconstructions_of_the_pair():
    model, (a, b) = cae(), images(2)
    grid = interpolate(model, a, b, steps=3)
    assert grid.shape == (5, 1, 8, 8)
    with torch.no_grad():
        ends = model(torch.stack([a, b])).numpy()
        codes = model.layers(torch.stack([a, b]))["bottleneck"]
        middle = list(model.decode("bottleneck", codes.mean(0, keepdim=True)).values())[-1]
    assert np.array_equal(grid[0], a.numpy()) and np.array_equal(grid[4], b.numpy())
    np.testing.assert_allclose(grid[1], ends[0], atol=1e-4)  # float32, other batch shapes
    np.testing.assert_allclose(grid[3], ends[1], atol=1e-4)  # float32, other batch shapes
    np.testing.assert_allclose(grid[2], middle[0].numpy(), atol=1e-4)  # float32, other batch shapes


def test_iteration_feeds_each_reconstruction_back():
    model, x = cae(), images(2)
    assert iteration_steps(10, 4) == [0, 4, 8, 10]
    grid = iterate(model, x, iterations=10, every=4)
    assert grid.shape == (2, 4, 1, 8, 8)
    with torch.no_grad():
        y = x
        for _ in range(4):
            y = model(y)
    np.testing.assert_allclose(grid[:, 1], y.numpy(), atol=1e-4)  # float32, other batch shapes
    assert np.array_equal(grid[:, 0], x.numpy())


def test_a_decoder_cannot_start_where_a_later_layer_reads_an_earlier_one():
    vae = build_model({"architecture": "vae_fc", "widths": [16], "latent": 2,
                       "activation": "relu", "init": "glorot_uniform"}, (1, 8, 8))
    with pytest.raises(ValueError, match="layer logvar reads encoder1, not only layers from mean"):
        vae.decode("mean", torch.zeros(1, 2))
    # from before the heads, the code is the mean, as records without noise
    x = images(3)
    with torch.no_grad():
        layers = vae.layers(x)
        decoded = vae.decode("encoder1", layers["encoder1"])
    assert torch.equal(decoded["sampled"], layers["mean"])
    assert torch.equal(decoded["output"], layers["output"])


def test_image_files_keep_the_variants_order_and_say_which_seed_diverged(tmp_path):
    grid = np.linspace(-0.5, 1.5, 2 * 3 * 16).reshape(2, 3, 1, 4, 4)
    for variant in ("S", "M", "L"):  # not in the order of their names
        write_images(tmp_path / f"{variant}.h5", {0: grid, 1: None}, variant=variant,
                     grid={"area": variant}, columns=["a", "b", "c"],
                     diverged={1: "loss nan at epoch 3"})
    concat_images([tmp_path / f"{v}.h5" for v in ("S", "M", "L")], tmp_path / "all.h5")
    variants = read_images(tmp_path / "all.h5")
    assert [attrs["variant"] for attrs, _ in variants] == ["S", "M", "L"]
    attrs, grids = variants[1]
    assert attrs["grid"] == {"area": "M"} and attrs["columns"] == ["a", "b", "c"]
    assert attrs["diverged"] == {"1": "loss nan at epoch 3"} and grids[1] is None
    expected = np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)  # what a figure shows
    assert grids[0].dtype == np.uint8 and np.array_equal(grids[0], expected)


def test_a_code_that_copies_its_patches_scores_one_and_one_that_does_not_less():
    x = images(40)
    copier = Autoencoder([("code", "bottleneck", nn.PixelUnshuffle(4)),
                          ("output", "output", nn.PixelShuffle(4))])
    code, patches = code_and_patches(copier, x)
    assert code.shape == (40 * 2 * 2, 16) and np.array_equal(code, patches)
    # 160 points of 16 values: the 10 per value SVCCA needs
    row = copy_row(copier, x, seed=0, batch=50)
    assert row["points"] == 160 and row["mse"] == 0 and row["undefined"] == ""
    assert row["svcca"] == pytest.approx(1) and row["linear_cka"] == pytest.approx(1)
    # an untrained cae of 2 x 2 positions is no such copy of 8 x 8 images
    row = copy_row(cae(), x, seed=0, batch=50)
    assert row["svcca"] < 0.9 and row["mse"] > 0.01
    # too few points for their values: SVCCA undefined, CKA still estimated
    row = copy_row(copier, x[:30], seed=0)
    assert np.isnan(row["svcca"]) and row["linear_cka"] == pytest.approx(1)
    assert row["undefined"].startswith("120 points for 16 values per point: SVCCA leans")


def test_the_copy_analysis_refuses_a_flat_code():
    fc = build_model({"architecture": "fc", "widths": [16], "latent": 4, "bottleneck_layers": 1,
                      "activation": "relu", "latent_activation": "relu",
                      "init": "glorot_uniform"}, (1, 8, 8))
    with pytest.raises(ValueError, match="needs a convolutional bottleneck"):
        code_and_patches(fc, images(4))
