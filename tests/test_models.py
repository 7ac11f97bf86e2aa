import pytest
import torch

from hourglass.activations import layer_region
from hourglass.models import build_model

FC = dict(architecture="fc", widths=[512, 256, 128, 64], latent=16, bottleneck_layers=2,
          init="glorot_uniform")
CONV = dict(architecture="conv", channels=[32, 64, 128], latent=10, bottleneck_layers=1,
            init="glorot_normal")


def test_fc_autoencoder_of_the_consistency_paper():
    model = build_model(FC, (1, 28, 28))
    assert model.layer_names == [
        "input", "encoder1", "encoder2", "encoder3", "encoder4", "bottleneck1", "bottleneck2",
        "decoder1", "decoder2", "decoder3", "decoder4", "output"]
    layers = model.layers(torch.rand(5, 1, 28, 28))
    widths = [784, 512, 256, 128, 64, 16, 16, 64, 128, 256, 512, 784]
    assert [layers[n][0].numel() for n in model.layer_names] == widths
    assert layers["output"].shape == (5, 1, 28, 28)
    assert layers["output"].min() >= 0 and layers["output"].max() <= 1  # sigmoid
    assert (layers["bottleneck1"] >= 0).all()  # ReLU


def test_conv_autoencoder_for_cifar_shaped_input():
    model = build_model(CONV, (3, 32, 32))
    shapes = {n: tuple(a.shape[1:]) for n, a in model.layers(torch.rand(2, 3, 32, 32)).items()}
    assert shapes == {
        "input": (3, 32, 32), "encoder1": (32, 16, 16), "encoder2": (64, 8, 8),
        "encoder3": (128, 8, 8), "bottleneck1": (10,), "decoder1": (128, 8, 8),
        "decoder2": (64, 16, 16), "decoder3": (32, 32, 32), "output": (3, 32, 32)}


def test_conv_needs_sides_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        build_model(CONV, (3, 30, 30))


def test_glorot_initialisation_and_seeding():
    torch.manual_seed(0)
    a = build_model(FC, (1, 28, 28))
    torch.manual_seed(0)
    b = build_model(FC, (1, 28, 28))
    first = a.stages["encoder1"][1]
    bound = (6 / (784 + 512)) ** 0.5  # Glorot & Bengio's uniform limit
    assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.9 * bound
    assert (first.bias == 0).all()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'mlp'; known: fc, conv"):
        build_model({**FC, "architecture": "mlp"}, (1, 8, 8))


def test_layer_regions():
    assert [layer_region(n) for n in ("input", "encoder3", "bottleneck12", "decoder1", "output")] \
        == ["input", "encoder", "bottleneck", "decoder", "output"]
