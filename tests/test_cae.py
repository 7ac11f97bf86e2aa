"""The convolutional autoencoder of Manakov et al. (`cae`): its bottleneck
arithmetic, its layers and parameters, its residual blocks."""

import pytest
import torch

from hourglass.models import Residual, build_model, cae_bottleneck

# The bottleneck channels of their 96 x 96 x 3 grid (5 levels): area S, M, L
# (3 x 3, 6 x 6, 12 x 12) by compression 1/64, 1/16, 1/4, 1.
PAPER_CHANNELS = {"S": [48, 192, 768, 3072], "M": [12, 48, 192, 768], "L": [3, 12, 48, 192]}
COMPRESSIONS = [1 / 64, 1 / 16, 1 / 4, 1]


def cae(**settings):
    return dict(architecture="cae", levels=3, area="M", compression=0.25, final_norm=True) | settings


@pytest.mark.parametrize("area", "SML")
def test_the_papers_bottleneck_grid(area):
    side = {"S": 3, "M": 6, "L": 12}[area]
    for compression, channels in zip(COMPRESSIONS, PAPER_CHANNELS[area]):
        settings = cae(levels=5, area=area, compression=compression)
        assert cae_bottleneck(settings, (3, 96, 96)) == (channels, side, side)


def test_offline_areas_on_padded_fashion_mnist():
    # 32 x 32 x 1 with 3 levels: 4 x 4, 8 x 8, 16 x 16; a quarter of 1,024 values
    assert [cae_bottleneck(cae(area=a), (1, 32, 32)) for a in "SML"] == [
        (16, 4, 4), (4, 8, 8), (1, 16, 16)]


def test_every_level_is_a_recorded_layer_of_the_right_shape():
    model = build_model(cae(levels=3, area="M", compression=1), (1, 32, 32))
    assert model.layer_names == ["input", "encoder1", "encoder2", "bottleneck", "decoder1",
                                 "decoder2", "decoder3", "output"]
    assert model.layer_roles == ["input", "encoder", "encoder", "bottleneck", "decoder",
                                 "decoder", "decoder", "output"]
    shapes = {name: tuple(x.shape[1:]) for name, x in model.layers(torch.rand(2, 1, 32, 32)).items()}
    # channels 1 -> 4 -> 16 -> 16 (all 1,024 values over 8 x 8); the deepest level keeps its size
    assert shapes == {"input": (1, 32, 32), "encoder1": (4, 16, 16), "encoder2": (16, 8, 8),
                      "bottleneck": (16, 8, 8), "decoder1": (16, 8, 8), "decoder2": (4, 16, 16),
                      "decoder3": (1, 32, 32), "output": (1, 32, 32)}


def test_parameter_count_derived_by_hand():
    # 2 levels, 3 x 8 x 8, area S, compression 1: widths 3, 12 and 48 channels
    # over 2 x 2. A normalised 3x3 convolution a -> b has 9ab + b weights and
    # biases and 2b affine norm parameters; a residual block at w two of them.
    def norm_conv(a, b):
        return 9 * a * b + 3 * b

    def residuals(w):
        return 2 * 2 * norm_conv(w, w)

    encoder = norm_conv(3, 3) + residuals(3) + norm_conv(3, 12) + residuals(12) + norm_conv(12, 48)
    decoder = norm_conv(48, 12) + residuals(12) + norm_conv(12, 3) + residuals(3) + norm_conv(3, 3)
    assert encoder + decoder == 22797
    model = build_model(cae(levels=2, area="S", compression=1), (3, 8, 8))
    assert sum(p.numel() for p in model.parameters()) == 22797
    unnormalised = build_model(cae(levels=2, area="S", compression=1, final_norm=False), (3, 8, 8))
    assert sum(p.numel() for p in unnormalised.parameters()) == 22797 - 2 * 3


def test_a_residual_block_adds_its_input():
    block = Residual(4)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        f = block.f(x)
        assert torch.equal(block(x), x + f)
        for p in block.f.parameters():
            p.zero_()
    assert torch.equal(block(x), x)  # f is ReLU(0) = 0: the skip alone


@pytest.mark.parametrize("settings, shape, message", [
    (dict(area="L", levels=2), (1, 32, 32), "area L removes the stride of 2 of its 2 levels"),
    (dict(levels=3, area="S"), (1, 28, 28), "must be divisible by 8, got 28x28; pad or resize"),
    (dict(levels=3, area="S"), (1, 8, 8), "leaving 1x1: instance normalisation needs at "
     "least 2x2"),
    (dict(area="L", compression=1 / 16), (1, 32, 32),
     "is 0.25 channels, not a whole number of at least 1; choose a compression that is a "
     "multiple of 0.25"),
])
def test_a_bottleneck_the_images_do_not_allow_is_refused(settings, shape, message):
    with pytest.raises(ValueError, match=message):
        build_model(cae(**settings), shape)


def test_a_bottleneck_the_images_do_not_allow_is_named_at_start_up(tmp_path):
    from conftest import REPO
    from hourglass.config import ConfigError, check_files

    study = tmp_path / "cae.yaml"
    study.write_text("""study: cae_bad
data: {dataset: digits, probe_size: 100}
seeds: [0, 1]
model: {architecture: cae, levels: 2, area: S, compression: 0.25}
variants:
  framed: {data: {pad: 4}}
  lossy: {data: {pad: 4}, model: {compression: 0.01}}
  deep: {model: {area: L}}
""")
    with pytest.raises(ConfigError) as error:
        check_files([study], REPO / "workflow" / "schemas" / "config.schema.yaml")
    problems = str(error.value).splitlines()[1:-1]
    assert problems == [
        "  - variants.lossy.model: cae compression 0.01 of 256 input values over a 4x4 "
        "bottleneck is 0.16 channels, not a whole number of at least 1; choose a compression "
        "that is a multiple of 0.0625",
        "  - variants.deep.model: cae area L removes the stride of 2 of its 2 levels: give "
        "model.levels more than 2"]
