"""The model registry's contract (every architecture builds, gives every layer
a role, runs), the consistency paper's architectures, the latent-structure
study's fc with tanh, and the linear autoencoder and PCA held against each
other."""

import numpy as np
import pytest
import torch
import yaml
from scipy.linalg import subspace_angles

from conftest import REPO
from hourglass.config import model_keys
from hourglass.models import MODELS, ROLES, build_model

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
FC = dict(architecture="fc", widths=[512, 256, 128, 64], latent=16, bottleneck_layers=2,
          activation="relu", latent_activation="relu", init="glorot_uniform")
CONV = dict(architecture="conv", channels=[32, 64, 128], latent=10, bottleneck_layers=1,
            init="glorot_normal")


def defaults(architecture, **settings):
    """The settings of `architecture` as a config that names only it gets them:
    the defaults of its branch of the schema (a key without one, such as
    repeat, is left out)."""
    branch = next(b["then"]["properties"] for b in SCHEMA["$defs"]["model"]["allOf"]
                  if b["if"]["properties"]["architecture"]["const"] == architecture)
    return {"architecture": architecture,
            **{k: v["default"] for k, v in branch.items() if "default" in v}, **settings}


@pytest.mark.parametrize("architecture", list(MODELS))
def test_every_model_builds_gives_each_layer_a_role_and_runs(architecture):
    settings = defaults(architecture)
    optional = {"repeat", "classes"}  # no defaults: an autoencoder without repeats
    assert sorted(settings) == sorted(set(model_keys(SCHEMA, architecture)) - optional)
    if "latent" in settings:
        settings["latent"] = 3
    shape = {"conv": (3, 8, 8), "vae_conv": (3, 16, 16), "cae": (3, 16, 16)}.get(architecture,
                                                                                 (1, 8, 8))
    x = torch.rand(5, *shape)
    model = build_model(settings, shape)
    if MODELS[architecture].fit:
        MODELS[architecture].fit(model, x)
    assert len(model.layer_roles) == len(model.layer_names)
    assert set(model.layer_roles) <= set(ROLES)
    assert model.layer_roles[0] == "input" and model.layer_roles[-1] == "output"
    regions = [ROLES[role] for role in model.layer_roles]
    layers = model.layers(x, torch.Generator().manual_seed(0))
    assert list(layers) == model.layer_names
    assert layers[model.layer_names[-1]].shape == x.shape
    code = layers[model.layer_names[regions.index("bottleneck")]]
    if "latent" in settings:
        assert code.shape == (5, 3)


def test_a_stage_of_an_unknown_role_is_refused():
    from hourglass.models import Autoencoder

    with pytest.raises(ValueError, match="unknown layer role.* middle; known: input, encoder"):
        Autoencoder([("code", "middle", torch.nn.Flatten())])


def test_fc_autoencoder_of_the_consistency_paper():
    model = build_model(FC, (1, 28, 28))
    assert model.layer_names == [
        "input", "encoder1", "encoder2", "encoder3", "encoder4", "bottleneck1", "bottleneck2",
        "decoder1", "decoder2", "decoder3", "decoder4", "output"]
    assert model.layer_roles == ["input", *["encoder"] * 4, *["bottleneck"] * 2,
                                 *["decoder"] * 4, "output"]
    layers = model.layers(torch.rand(5, 1, 28, 28))
    widths = [784, 512, 256, 128, 64, 16, 16, 64, 128, 256, 512, 784]
    assert [layers[n][0].numel() for n in model.layer_names] == widths
    assert layers["output"].shape == (5, 1, 28, 28)
    assert layers["output"].min() >= 0 and layers["output"].max() <= 1  # sigmoid
    assert (layers["bottleneck1"] >= 0).all()  # ReLU


def test_fc_of_the_latent_structure_study_tanh_with_a_tanh_code():
    """784-128-32-2, tanh everywhere but the sigmoid output (Lancione)."""
    settings = dict(FC, widths=[128, 32], latent=2, bottleneck_layers=1, activation="tanh",
                    latent_activation="tanh")
    model = build_model(settings, (1, 28, 28))
    layers = model.layers(torch.rand(50, 1, 28, 28))
    assert [layers[n][0].numel() for n in model.layer_names] == [784, 128, 32, 2, 32, 128, 784]
    for name in ("encoder1", "bottleneck1", "decoder2"):
        assert layers[name].abs().max() < 1 and (layers[name] < 0).any(), name  # tanh
    assert 0 <= layers["output"].min() and layers["output"].max() <= 1


def test_fc_linear_code():
    model = build_model(dict(FC, widths=[16], latent=4, latent_activation="linear"), (1, 8, 8))
    code = model.layers(torch.rand(50, 1, 8, 8))["bottleneck1"]
    assert (code < 0).any() and (model.layers(torch.rand(5, 1, 8, 8))["encoder1"] >= 0).all()
    assert isinstance(model.stages["bottleneck1"][-1], torch.nn.Identity)


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
    with pytest.raises(ValueError, match="unknown model 'mlp'; known: fc, conv, linear, pca"):
        build_model({**FC, "architecture": "mlp"}, (1, 8, 8))


def test_the_tied_linear_autoencoders_decoder_is_its_encoder_transposed():
    model = build_model(dict(architecture="linear", latent=3, init="glorot_uniform"), (1, 4, 5))
    encoder, decoder = model.stages["code"][1], model.stages["output"]
    assert decoder.weight is encoder.weight  # one parameter: the optimiser keeps them tied
    assert len(list(model.parameters())) == 3  # W, the code's bias, the output's bias
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.rand(8, 1, 4, 5)
    torch.nn.functional.mse_loss(model(x), x).backward()
    optimizer.step()
    code = model.layers(x)["code"]
    expected = (code @ encoder.weight + decoder.bias).reshape(x.shape)  # no activation
    assert torch.allclose(model(x), expected)
    assert model.layer_roles == ["input", "bottleneck", "output"]


def gaussian_images(n, seed=0):
    """n images of 2x3 pixels, Gaussian with well separated variances along
    random directions (3, 2, 1, 0.3, 0.2, 0.1 in SD) about a non-zero mean."""
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    x = torch.randn(n, 6, generator=g) * torch.tensor([3, 2, 1, 0.3, 0.2, 0.1]) @ rotation.T
    return (x + 0.5).reshape(n, 1, 2, 3)


def fitted_pca(x, latent):
    model = build_model(dict(architecture="pca", latent=latent), tuple(x.shape[1:]))
    MODELS["pca"].fit(model, x)
    return model


def test_pca_error_is_the_sum_of_the_discarded_eigenvalues():
    x = gaussian_images(50).double()
    model = fitted_pca(x.float(), 2)
    assert model.layer_names == ["input", "code", "reconstruction"]
    assert model.layer_roles == ["input", "bottleneck", "output"]
    flat = x.flatten(1).numpy()
    # the training covariance with 1/n (PCA's maximum-likelihood normalisation)
    eigenvalues = np.linalg.eigvalsh(np.cov(flat, rowvar=False, bias=True))[::-1]
    reconstruction = model(x.float()).double().flatten(1).numpy()
    error = ((flat - reconstruction) ** 2).sum(1).mean()
    assert error == pytest.approx(eigenvalues[2:].sum(), rel=1e-4)
    assert model.layers(x.float())["code"].var(0, unbiased=False).numpy() == pytest.approx(
        eigenvalues[:2], rel=1e-4)  # the code's variances are the kept eigenvalues


def test_pca_refuses_more_components_than_the_data_span():
    with pytest.raises(ValueError, match="7 components asked \\(model.latent\\).*lower model.latent"):
        fitted_pca(gaussian_images(50), 7)


def test_the_tied_linear_autoencoder_spans_the_pca_subspace():
    """Baldi & Hornik: trained to its optimum, the tied linear AE's code spans
    the leading principal subspace (not the components themselves)."""
    x = gaussian_images(200)
    torch.manual_seed(0)
    model = build_model(dict(architecture="linear", latent=2, init="glorot_uniform"), (1, 2, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(400):
        loss = torch.nn.functional.mse_loss(model(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weight = model.stages["code"][1].weight.detach().numpy()
    components = fitted_pca(x, 2).stages["code"].components.numpy()
    assert np.degrees(subspace_angles(weight.T, components.T)).max() < 0.1


def test_pca_is_fitted_not_trained(digits_file, tmp_path):
    """train() of a pca variant: every checkpoint holds the projection of the
    training split (0 epochs), and metrics.csv one row with the columns of a
    trained model's, each term of the objective for the fitted model."""
    import pandas as pd

    from hourglass.data import load_split
    from hourglass.train import load_checkpoint, train

    settings = {"variant": "pca", "model": dict(architecture="pca", latent=5),
                "training": dict(loss="mse", lr=0.01, batch_size=64, max_epochs=3, patience=2),
                "checkpoints": [0, 2]}
    train(digits_file, settings, 0, tmp_path, log=lambda line: None)
    x_train, _ = load_split(digits_file, "train")
    expected = fitted_pca(x_train, 5).state_dict()
    for name in ("epoch0", "epoch2", "final"):
        model, state = load_checkpoint(tmp_path / "checkpoints" / f"{name}.pt")
        assert state["epoch"] == 0
        assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics) == ["variant", "seed", "epoch", "train_loss", "train_recon", "val_loss",
                             "val_recon", "test_loss", "test_recon", "seconds"]
    assert list(metrics["epoch"]) == [0]
    for split in ("train", "val", "test"):
        x, _ = load_split(digits_file, split)
        error = torch.nn.functional.mse_loss(model(x), x).item()
        assert metrics[f"{split}_loss"].iloc[0] == pytest.approx(error, rel=1e-6)
        assert metrics[f"{split}_recon"].iloc[0] == metrics[f"{split}_loss"].iloc[0]
    assert not (tmp_path / ".resume").exists()


def test_pca_metrics_follow_the_objective(digits_file, tmp_path):
    """Under denoising, the fitted PCA's losses are of its reconstructions of
    noisy images: the objective's, as a trained model's would be."""
    import pandas as pd

    from hourglass.data import load_split
    from hourglass.objectives import objective_loss
    from hourglass.train import evaluate, load_checkpoint, train

    denoising = {"name": "denoising", "noise_std": 0.3}
    settings = {"variant": "pca", "model": dict(architecture="pca", latent=5),
                "training": dict(loss="mse", lr=0.01, batch_size=64, max_epochs=3, patience=2,
                                 objective=denoising),
                "checkpoints": []}
    train(digits_file, settings, 0, tmp_path, log=lambda line: None)
    model, _ = load_checkpoint(tmp_path / "checkpoints" / "final.pt")
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    x, y = load_split(digits_file, "val")
    got = evaluate(model, objective_loss(denoising), x, y, 0, "mse")
    assert metrics["val_loss"].iloc[0] == pytest.approx(got["loss"], rel=1e-6)
    assert metrics["val_loss"].iloc[0] > torch.nn.functional.mse_loss(model(x), x).item()
