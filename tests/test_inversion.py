"""Input representations and depth (Badger): the inversion engine on layers
whose inverse is known, its schedules, batching and determinism; the
networks it inverts and the photographs; the findings' checks on hand-made
tables; and the study end to end (tests/inversion_tiny.yaml)."""

from urllib.error import URLError

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import config_problems, snakemake
from hourglass.findings import (deep_layers_not_unique, deeper_networks_worse,
                                early_layers_copy, pooling_loses_the_input, width_inverts)
from hourglass.inversion import Settings, invert, recorded_steps, schedule
from hourglass.io import read_images
from hourglass.models import Autoencoder
from hourglass.networks import (RESNET_STAGES, fitted, folder_images, mlp, resnet,
                                sample_images)

EXACT = dict(blur=False, dtype="float64", iterations=3000, eps_start=0.05, eps_end=1e-5,
             record_every=500)


def linear_layer(weight):
    """A chain of one bias-free linear layer of `weight`, in float64."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False).double()
    layer.weight.data = weight
    return Autoencoder([("linear", "encoder", layer)])


def well_conditioned(d, seed=0):
    """A d x d matrix with singular values from 1 to 2 and its orthogonal factor."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return q * torch.linspace(1, 2, d, dtype=torch.float64), q


def test_an_invertible_layer_is_inverted_exactly_in_float64():
    weight, _ = well_conditioned(20)
    targets = torch.rand(3, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = invert(linear_layer(weight), ["linear"], targets, Settings(**EXACT))
    start, end = result.m_i[0, :, 0], result.m_i[0, :, -1]
    assert (start > 1).all() and (end < 1e-4).all()
    assert (result.m_g[0, :, -1] < 1e-4).all()
    np.testing.assert_allclose(result.generated[0], targets.numpy(), atol=1e-4)


def test_a_layer_that_drops_a_direction_matches_the_activation_but_not_the_input():
    weight, q = well_conditioned(20)
    null = q[:, -1]  # weight maps this direction to 0 once its last column goes
    weight = weight - torch.outer(weight @ null, null)
    # targets far along the lost direction: no descent can see how far
    targets = 0.7 + 1.0 * null.repeat(2, 1)
    result = invert(linear_layer(weight), ["linear"], targets, Settings(**EXACT))
    assert (result.m_g[0, :, -1] < 1e-4).all()  # the activation is matched...
    lost = (torch.from_numpy(result.generated[0]) - targets) @ null
    # ...but the start's component along the lost direction never moves
    assert (result.m_i[0, :, -1] > 0.8).all()
    np.testing.assert_allclose(result.m_i[0, :, -1], lost.abs().numpy(), rtol=1e-3)


def test_the_step_and_blur_schedules_are_linear_and_the_records_end_at_the_last_step():
    np.testing.assert_allclose(schedule(0.1, 0.01, 4), [0.1, 0.07, 0.04, 0.01])
    assert recorded_steps(Settings(iterations=10, record_every=4)) == [0, 4, 8, 10]
    assert recorded_steps(Settings(iterations=8, record_every=4)) == [0, 4, 8]
    with pytest.raises(ValueError, match="odd"):
        Settings(kernel_size=4)


def test_the_blur_smooths_the_candidate_and_clamping_bounds_it():
    # the identity layer: the descent pulls towards the target, the blur smooths it
    model = Autoencoder([("same", "encoder", nn.Identity())])
    target = torch.zeros(1, 1, 9, 9)
    target[0, 0, 4, 4] = 1.0  # a single bright pixel: the blur spreads it
    sharp = invert(model, ["same"], target, Settings(iterations=50, blur=False, eps_start=0.5,
                                                     eps_end=0.01, record_every=50))
    blurred = invert(model, ["same"], target, Settings(iterations=50, eps_start=0.5,
                                                       eps_end=0.01, record_every=50))
    assert blurred.m_i[0, 0, -1] > 2 * sharp.m_i[0, 0, -1]
    assert blurred.generated[0, 0, 0, 4, 4] < sharp.generated[0, 0, 0, 4, 4]
    clamped = invert(model, ["same"], target + 2, Settings(iterations=20, clamp=True,
                                                           record_every=20))
    assert clamped.generated.min() >= 0 and clamped.generated.max() <= 1


def small_convnet():
    torch.manual_seed(0)
    return Autoencoder([
        ("conv", "encoder", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())),
        ("pool", "encoder", nn.MaxPool2d(2)),
        ("dense", "encoder", nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 10), nn.Tanh())),
    ])


def test_a_batch_of_layers_and_images_gives_what_one_at_a_time_runs_give():
    model, x = small_convnet(), torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    settings = Settings(iterations=40, record_every=10, dtype="float64", normalise=True,
                        eps_start=0.05, eps_end=0.01)
    layers = ["pool", "conv", "dense"]  # in any order
    batch = invert(model, layers, x, settings)
    for k, layer in enumerate(layers):
        for j in range(len(x)):
            alone = invert(model, [layer], x[j:j + 1], settings, keys=[j])
            np.testing.assert_allclose(batch.m_g[k, j], alone.m_g[0, 0], rtol=1e-10)
            np.testing.assert_allclose(batch.m_i[k, j], alone.m_i[0, 0], rtol=1e-10)
            np.testing.assert_allclose(batch.generated[k, j], alone.generated[0, 0], atol=1e-12)
            # the reference is the image's, whatever else is in the batch
            np.testing.assert_allclose(batch.m_r[k, j], alone.m_r[0, 0], rtol=1e-12)


def test_the_same_seed_gives_the_same_inversion_and_another_seed_another():
    model, x = small_convnet(), torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    settings = Settings(iterations=15, record_every=5)
    first, again = (invert(model, ["conv", "dense"], x, settings) for _ in range(2))
    np.testing.assert_array_equal(first.generated, again.generated)
    np.testing.assert_array_equal(first.m_g, again.m_g)
    other = invert(model, ["conv", "dense"], x, Settings(iterations=15, record_every=5, seed=1))
    assert not np.array_equal(first.generated, other.generated)


def test_an_unknown_layer_is_named_with_the_models_layers():
    with pytest.raises(ValueError, match="no layer layer9 in the model; its layers: input, conv"):
        invert(small_convnet(), ["layer9"], torch.rand(1, 3, 8, 8), Settings(iterations=1))


def test_resnets_are_chains_of_their_stages_seeded_and_in_eval_mode():
    model = resnet("resnet18", "untrained", seed=0)
    assert model.layer_names == ["input", *RESNET_STAGES] and not model.training
    x = torch.rand(2, 3, 64, 64)
    layers = model.layers(x)
    assert layers["conv1"].shape == (2, 64, 32, 32) and layers["maxpool"].shape == (2, 64, 16, 16)
    assert layers["layer4"].shape == (2, 512, 2, 2)
    again = resnet("resnet18", "untrained", seed=0).layers(x)["layer4"]
    other = resnet("resnet18", "untrained", seed=1).layers(x)["layer4"]
    assert torch.equal(layers["layer4"], again) and not torch.equal(layers["layer4"], other)


def test_imagenet_weights_offline_name_the_file_and_where_it_goes(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match=r"resnet50-0676ba61\.pth.*Run once online"):
        resnet("resnet50", "imagenet", seed=0)


def test_an_mlp_has_a_layer_per_width_of_flattened_images():
    model = mlp([30, 20], "relu", (3, 4, 4), seed=0)
    assert model.layer_names == ["input", "dense1", "dense2"]
    assert model.layers(torch.rand(5, 3, 4, 4))["dense2"].shape == (5, 20)


def test_photographs_are_resized_and_centre_cropped(tmp_path):
    images, names = sample_images()
    assert names == ["china", "flower"] and images[0].shape == (3, 427, 640)
    x = fitted(images, 29)
    assert x.shape == (2, 3, 29, 29) and 0 <= x.min() and x.max() <= 1
    for k, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        Image.new("RGB", (40, 20), colour).save(tmp_path / f"{k}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    images, names = folder_images(tmp_path)
    assert names == ["0", "1"] and images[1].shape == (3, 20, 40)
    assert fitted(images, 10)[1, 2].min() == 1  # blue
    with pytest.raises(ValueError, match="holds no image file"):
        folder_images(tmp_path / "..")


def table(network, state, layers, m_i, m_g=None, m_r=1.0, start=10.0, architecture="resnet18",
          activation="", values=100, input_values=50):
    """inversion.csv rows of one network and state: per layer its final m_i
    (and m_g), m_i `start` at iteration 0, one image."""
    rows = []
    for k, layer in enumerate(layers):
        for iteration, mi, mg in ((0, start, 5.0), (10, m_i[k], 0.1 if m_g is None else m_g[k])):
            rows.append(dict(network=network, architecture=architecture, activation=activation,
                             seed=0, state=state, layer=layer, layer_index=k + 1, region="encoder",
                             values=values, input_values=input_values, image="a",
                             iteration=iteration, m_g=mg, m_r=m_r, m_i=mi))
    return pd.DataFrame(rows)


def test_the_checks_read_the_final_input_distance_against_the_start():
    stages = ["conv1", "maxpool", "layer4"]
    good = table("resnet18", "untrained", stages, [1.0, 5.0, 8.0])
    measured, held = early_layers_copy(good)
    assert held is True and "conv1: m_i 1 of 10 (0.10)" in measured
    assert early_layers_copy(table("r", "untrained", stages, [3.0, 5.0, 8.0]))[1] is False
    assert deep_layers_not_unique(good)[1] is True
    # matched no better than a noised copy: optimisation, not non-uniqueness
    assert deep_layers_not_unique(table("r", "untrained", stages, [1, 5, 8],
                                        m_g=[0.1, 0.1, 2.0]))[1] is False
    assert pooling_loses_the_input(good, network="resnet18")[1] is True
    assert pooling_loses_the_input(good, network="resnet50")[1] is None
    deeper = pd.concat([good, table("resnet50", "untrained", stages, [1, 5, 9]),
                        table("resnet152", "untrained", stages, [1, 5, 9.5])])
    assert deeper_networks_worse(deeper)[1] is True
    measured, held = deeper_networks_worse(deeper, networks=["resnet50", "resnet18"])
    assert held is False and "resnet50 9 (0.90) → resnet18 8 (0.80)" in measured
    measured, held = deeper_networks_worse(good)
    assert held is None and "no network resnet50, resnet152" in measured


def test_width_inverts_holds_where_wide_layers_invert_and_narrow_ones_do_not():
    def layer(name, values, m_i):
        return table(name, "untrained", ["dense1"], [m_i], architecture="mlp",
                     activation="relu", values=values, input_values=100)

    mlps = pd.concat([layer("narrow", 150, 6.0), layer("wide", 200, 1.0)])
    measured, held = width_inverts(mlps)
    assert held is True and "wide (200/100 = 2.00x): m_i 0.10" in measured
    assert width_inverts(pd.concat([layer("narrow", 150, 1.0), layer("wide", 200, 1.0)]))[1] \
        is False
    assert width_inverts(mlps, activation="linear")[1] is None


def test_the_inversion_study_end_to_end(workflow_copy):
    root = workflow_copy("inversion")
    snakemake(root, "--configfile", "inversion_tiny.yaml")
    study = root / "results" / "inversion_tiny"
    rows = pd.read_csv(study / "inversion" / "inversion.csv")
    assert set(rows["network"]) == {"fc", "resnet18", "mlp_narrow", "mlp_wide"}
    fc = rows[rows["network"] == "fc"]
    assert set(fc["state"]) == {"untrained", "trained"} and set(fc["seed"]) == {0}
    assert set(fc["iteration"]) == {0, 10, 20, 30} and set(fc["image"]) == {"probe 0", "probe 1"}
    assert set(rows.loc[rows["network"] == "mlp_wide", "iteration"]) == set(range(0, 301, 10))
    resnet_layers = rows.loc[rows["network"] == "resnet18", "layer"]
    assert list(dict.fromkeys(resnet_layers)) == list(RESNET_STAGES)
    assert rows[["m_g", "m_r", "m_i"]].notna().all().all()
    # the noised copy's distance is the image's and the layer's, whatever the step
    assert (rows.groupby(["network", "state", "layer", "image"])["m_r"].nunique() == 1).all()
    grids = {attrs["variant"]: (attrs, grids) for attrs, grids in
             read_images(study / "inversion" / "generated.h5")}
    attrs, images = grids["fc"]
    assert attrs["columns"] == ["target", "untrained", "trained"]
    assert images[0].shape == (len(attrs["rows"]), 3, 1, 8, 8)
    assert grids["resnet18"][1][0].shape == (8, 2, 3, 32, 32)
    findings = pd.read_csv(study / "findings.csv")
    assert len(findings) == 4 and set(findings["held"]) <= {"yes", "no", "undefined"}
    width = findings[findings["check"] == "width_inverts"].iloc[0]
    assert width["held"] == "yes", width["measured"]  # 600 of 192 values invert, 96 do not
    for figure in ("inversion_images", "inversion_distances", "inversion_trajectories",
                   "inversion_depth", "inversion_width"):
        assert (study / "figures" / f"{figure}.png").stat().st_size > 5000
    assert "Nothing to be done" in snakemake(root, "-n", "--configfile",
                                              "inversion_tiny.yaml").stdout


def problems(config):
    """check_config's message for the tiny inversion study changed by `config`."""
    return config_problems("inversion_tiny.yaml", config)


def test_the_config_names_what_the_inversion_lacks():
    assert "add 0 to checkpoints" in problems({"checkpoints": [2]})
    networks = {"networks": {}}
    assert "a study trains at least one variant" in problems(
        {"variants": {}, "analyses": {"inversion": networks}})
    assert "not among the study's seeds" in problems(
        {"analyses": {"inversion": {"seeds": [5]}}})
    assert "no folder" in problems({"analyses": {"inversion": {
        "photos": {"source": "folder", "path": "nowhere"},
        "networks": {"r": {"architecture": "resnet18", "weights": ["untrained"], "side": 32}}}}})
    # an MLP takes widths and an activation, a ResNet weights, and neither the other's
    mixed = problems({"analyses": {"inversion": {"networks": {
        "r": {"architecture": "resnet18", "side": 32, "weights": ["untrained"],
              "widths": [10]}}}}})
    assert "networks.r: widths is not a setting of a resnet18" in mixed
    named = problems({"analyses": {"inversion": {
        "layers": ["encoder1", "encoder9"], "kernel_size": 4, "networks": {
            "fc": {"architecture": "resnet18", "side": 32, "weights": ["untrained"],
                   "layers": ["conv2"]},
            "m": {"architecture": "mlp", "side": 8, "widths": [3], "activation": "relu",
                  "layers": ["dense2"]}}}}})
    assert "networks: fc names a variant too" in named
    assert "kernel_size: 4 has no centre pixel" in named
    assert "no layer conv2 in a resnet18; its layers are conv1, bn1" in named
    assert "no layer dense2 in a mlp; its layers are dense1" in named
    assert "variant 'fc' has no layer encoder9; its layers are encoder1" in named


def test_a_study_of_library_networks_alone_trains_nothing_and_ends(workflow_copy):
    root = workflow_copy("networks_only")
    (root / "networks.yaml").write_text(
        "study: networks_only\nvariants: {}\nanalyses:\n  inversion:\n"
        "    iterations: 10\n    record_every: 5\n    photos: {count: 1}\n"
        "    networks:\n      wide: {architecture: mlp, widths: [400], activation: relu, side: 8}\n"
        "findings:\n  - {claim: wide layers invert, check: width_inverts}\nfigures: {dpi: 60}\n")
    result = snakemake(root, "--configfile", "networks.yaml")
    ran = result.stdout + result.stderr
    study = root / "results" / "networks_only"
    assert "rule inversion" in ran and "rule train" not in ran
    assert not (study / "data").exists()
    rows = pd.read_csv(study / "inversion" / "inversion.csv")
    assert set(rows["network"]) == {"wide"} and set(rows["image"]) == {"china"}
    assert (study / "figures" / "inversion_width.png").exists()
    assert not (study / "figures" / "training.png").exists()
    assert pd.read_csv(study / "findings.csv")["held"].iloc[0] in ("yes", "no")
