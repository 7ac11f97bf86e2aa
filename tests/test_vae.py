"""The VAE family: its models' heads, the objectives against values worked by
hand, a sampled code that the seed fixes, and a VAE trained and recorded."""

import csv
import math

import h5py
import numpy as np
import pytest
import torch

from hourglass.activations import record
from hourglass.models import ROLES, Reparameterise, build_model
from hourglass.losses import (Batch, capacity, dip_covariance_penalty, kl_per_dimension,
                              total_correlation)
from hourglass.objectives import objective_loss
from hourglass.train import train

VAE_FC = dict(architecture="vae_fc", widths=[16, 8], latent=3, activation="relu",
              init="glorot_uniform")


def test_vae_conv_is_disentanglement_libs_architecture():
    model = build_model(dict(architecture="vae_conv", latent=10, init="glorot_uniform"),
                        (3, 64, 64))
    layers = model.layers(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))
    shapes = {name: tuple(layer.shape[1:]) for name, layer in layers.items()}
    assert shapes == {
        "input": (3, 64, 64), "encoder1": (32, 32, 32), "encoder2": (32, 16, 16),
        "encoder3": (64, 8, 8), "encoder4": (64, 4, 4), "encoder5": (256,),
        "mean": (10,), "logvar": (10,), "sampled": (10,), "decoder1": (256,),
        "decoder2": (64, 4, 4), "decoder3": (64, 8, 8), "decoder4": (32, 16, 16),
        "decoder5": (32, 32, 32), "logits": (3, 64, 64), "output": (3, 64, 64)}
    assert model.layer_roles == ["input", *["encoder"] * 5, "mean", "logvar", "sampled",
                                 *["decoder"] * 5, "logits", "output"]
    assert {ROLES[r] for r in ("mean", "logvar", "sampled")} == {"bottleneck"}
    # the kernels of the paper: 4x4, 4x4, 2x2, 2x2 down; 4x4 up
    kernels = [m.kernel_size for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert kernels == [(4, 4), (4, 4), (2, 2), (2, 2), *[(4, 4)] * 4]
    assert torch.equal(torch.sigmoid(layers["logits"]), layers["output"])
    with pytest.raises(ValueError, match="vae_conv needs image sides divisible by 16.*8x8"):
        build_model(dict(architecture="vae_conv", latent=10, init=None), (1, 8, 8))


def test_both_heads_read_the_encoders_last_layer_and_the_decoder_the_sampled_code():
    model = build_model(VAE_FC, (1, 8, 8))
    x = torch.rand(4, 1, 8, 8)
    layers = model.layers(x, torch.Generator().manual_seed(0))
    assert torch.equal(layers["mean"], model.stages["mean"](layers["encoder2"]))
    assert torch.equal(layers["logvar"], model.stages["logvar"](layers["encoder2"]))
    assert torch.equal(layers["decoder1"], model.stages["decoder1"](layers["sampled"]))
    assert not torch.equal(layers["sampled"], layers["mean"])
    assert model.single_roles == ["input", "mean", "logvar", "sampled", "logits", "output"]


def test_the_sampled_code_is_the_seeds_draw_and_the_mean_without_noise():
    mean, logvar = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    sample = Reparameterise()

    def draw(seed):
        return sample(mean, logvar, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))
    e = torch.randn(1, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draw(0), mean + e * torch.tensor([1.0, 2.0]))
    assert torch.equal(sample(mean, logvar, None), mean)


def vae_batch(x, loss="bce", step=0, images=None):
    return Batch(x, torch.zeros(len(x)), step=step, loss=loss,
                 noise=torch.Generator().manual_seed(0), images=images or len(x))


def values(objective, layers, batch):
    return {k: v.item() for k, v in objective_loss(objective).terms(layers, batch).items()}


# One image of two pixels, a posterior of two dimensions: KL per dimension
# 0.5 (1 + 1 - 0 - 1) = 0.5 and 0.5 (0 + 4 - log 4 - 1)
X = torch.tensor([[[[0.0, 1.0]]]])
LAYERS = {"mean": torch.tensor([[1.0, 0.0]]), "logvar": torch.tensor([[0.0, math.log(4.0)]]),
          "logits": torch.zeros(1, 1, 1, 2), "output": torch.full((1, 1, 1, 2), 0.5)}
LAYERS["sampled"] = LAYERS["mean"]
KL = [0.5, 0.5 * (3 - math.log(4.0))]


def test_kl_of_known_gaussians_and_the_bernoulli_and_gaussian_reconstructions():
    assert kl_per_dimension(LAYERS["mean"], LAYERS["logvar"]).tolist() == pytest.approx(KL)
    # logits 0: each pixel costs log 2 whatever its value; summed over the 2 pixels
    got = values({"name": "beta_vae", "beta": 4}, LAYERS, vae_batch(X))
    assert got == pytest.approx({"loss": 2 * math.log(2) + 4 * sum(KL), "recon": 2 * math.log(2),
                                 "kl": sum(KL), "kl0": KL[0], "kl1": KL[1]})
    assert list(got) == ["loss", "recon", "kl", "kl0", "kl1"]
    # mse: a Gaussian decoder, the squared error summed over the pixels: 0.25 + 0.25
    got = values({"name": "beta_vae", "beta": 1}, LAYERS, vae_batch(X, loss="mse"))
    assert got["recon"] == pytest.approx(0.5) and got["loss"] == pytest.approx(0.5 + sum(KL))


def correlated_codes(rho, images=2000, seed=0):
    """Codes whose posteriors are N(mean, 1) with means of sd 3 correlated by
    `rho`: the aggregate posterior is Gaussian with correlation 0.9 rho, so
    its total correlation is -log(1 - (0.9 rho)^2) / 2."""
    g = torch.Generator().manual_seed(seed)
    a = 3 * torch.randn(images, 2, generator=g, dtype=torch.float64)
    mean = torch.stack([a[:, 0], rho * a[:, 0] + math.sqrt(1 - rho ** 2) * a[:, 1]], 1)
    logvar = torch.zeros_like(mean)
    return mean + torch.randn(images, 2, generator=g, dtype=torch.float64), mean, logvar


def test_the_total_correlation_estimator_on_independent_and_dependent_codes():
    # the whole split in one batch (N = M): independent codes give the
    # estimator's constant, (latent - 1) log M; dependence adds the TC
    independent = total_correlation(*correlated_codes(0.0), images=2000).item()
    dependent = total_correlation(*correlated_codes(0.9), images=2000).item()
    assert independent == pytest.approx(math.log(2000), abs=0.02)
    assert dependent - independent == pytest.approx(-0.5 * math.log(1 - 0.81 ** 2), abs=0.05)


def test_beta_tc_vae_is_the_vae_at_beta_1_and_weights_the_tc_above():
    z, mean, logvar = (t.float() for t in correlated_codes(0.9, images=64))
    x = torch.rand(64, 1, 1, 2, generator=torch.Generator().manual_seed(1))
    layers = {"mean": mean, "logvar": logvar, "sampled": z,
              "logits": torch.randn(64, 1, 1, 2, generator=torch.Generator().manual_seed(2))}
    batch = vae_batch(x, images=1000)
    vae = values({"name": "beta_vae", "beta": 1}, layers, batch)
    tc1 = values({"name": "beta_tc_vae", "beta": 1}, layers, batch)
    tc4 = values({"name": "beta_tc_vae", "beta": 4}, layers, batch)
    assert tc1["loss"] == vae["loss"]
    assert tc1["tc"] == pytest.approx(total_correlation(z, mean, logvar, 1000).item())
    assert tc4["loss"] == pytest.approx(vae["loss"] + 3 * tc1["tc"])
    assert tc4["loss"] != pytest.approx(values({"name": "beta_vae", "beta": 4}, layers, batch)["loss"])


def test_the_annealed_capacity_rises_linearly_then_holds():
    assert [capacity(s, 25.0, 100) for s in (0, 10, 50, 100, 500)] == [0, 2.5, 12.5, 25, 25]
    objective = {"name": "annealed_vae", "gamma": 1000, "c_max": 1.0, "ramp_steps": 10}
    got = values(objective, LAYERS, vae_batch(X, step=5))  # C = 0.5
    assert got["capacity"] == 0.5
    assert got["loss"] == pytest.approx(2 * math.log(2) + 1000 * abs(sum(KL) - 0.5))


def test_dip_vae_ii_pushes_a_known_covariance_to_the_identity():
    # means of covariance [[1, 0.5], [0.5, 1.5]] (over the batch, divided by
    # its size), posterior variances 1 and 3: the covariance [[2, 0.5], [0.5, 4.5]]
    mean = torch.tensor([[1.0, 2.0], [1.0, -1.0], [-1.0, 0.0], [-1.0, -1.0]])
    centred = mean - mean.mean(0)
    assert torch.allclose(centred.T @ centred / 4, torch.tensor([[1.0, 0.5], [0.5, 1.5]]))
    logvar = torch.log(torch.tensor([[1.0, 3.0]])).expand(4, 2)
    penalty = dip_covariance_penalty(mean, logvar, lambda_od=10.0, lambda_d=2.0)
    assert penalty.item() == pytest.approx(10 * 2 * 0.5 ** 2 + 2 * ((2 - 1) ** 2 + (4.5 - 1) ** 2))
    layers = {"mean": mean, "logvar": logvar, "sampled": mean,
              "logits": torch.zeros(4, 1, 1, 2)}
    got = values({"name": "dip_vae_ii", "lambda_od": 10, "lambda_d": 2}, layers,
                 vae_batch(torch.zeros(4, 1, 1, 2)))
    assert got["covariance_penalty"] == pytest.approx(penalty.item())
    assert got["loss"] == pytest.approx(got["recon"] + got["kl"] + penalty.item())


def vae_settings(objective, checkpoints=(0, 2)):
    return {"variant": "vae", "model": VAE_FC, "checkpoints": list(checkpoints),
            "training": dict(loss="bce", lr=0.01, batch_size=64, max_epochs=2, patience=10,
                             objective=objective)}


def test_a_vae_trains_with_every_term_a_column_and_records_its_sampled_code_repeatably(
        digits_file, tmp_path):
    objective = {"name": "beta_tc_vae", "beta": 4}
    train(digits_file, vae_settings(objective), 0, tmp_path / "a", log=lambda _: None)
    train(digits_file, vae_settings(objective), 0, tmp_path / "b", log=lambda _: None)
    with open(tmp_path / "a" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    terms = ["loss", "recon", "kl", "tc", "kl0", "kl1", "kl2"]
    assert list(rows[0]) == ["variant", "seed", "epoch",
                             *(f"{split}_{t}" for split in ("train", "val", "test") for t in terms),
                             "seconds"]
    for row in rows:
        kl = sum(float(row[f"val_kl{i}"]) for i in range(3))
        assert float(row["val_kl"]) == pytest.approx(kl, rel=1e-6)
    # the sampled code is drawn from the run's seeded stream: the same run, the same bytes
    final = [(tmp_path / run / "checkpoints" / "final.pt").read_bytes() for run in "ab"]
    assert final[0] == final[1]

    def recorded(run, record_from):
        out = tmp_path / f"{run}-{record_from}.h5"
        record(tmp_path / run / "checkpoints" / "final.pt", digits_file, out,
               record_from=record_from)
        with h5py.File(out) as f:
            assert f.attrs["record_from"] == record_from
            return {name: f["layers"][name][()] for name in ("mean", "sampled", "decoder1")}

    a, b = recorded("a", "sampled"), recorded("b", "sampled")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["sampled"], a["mean"])
    mean = recorded("a", "mean")
    assert np.array_equal(mean["sampled"], mean["mean"])
    assert np.array_equal(mean["mean"], a["mean"])
    assert not np.array_equal(mean["decoder1"], a["decoder1"])
    # another variant of the same seed, trained alike to the same weights,
    # draws its own code: only the weights could make two variants alike
    train(digits_file, {**vae_settings(objective), "variant": "vae2"}, 0, tmp_path / "c",
          log=lambda _: None)
    c = recorded("c", "sampled")
    assert np.array_equal(c["mean"], a["mean"])
    assert not np.array_equal(c["sampled"], a["sampled"])


def test_vae_conv_trains_on_digits_resized_to_64_pixels_a_side(tmp_path):
    from hourglass.data import prepare

    data = tmp_path / "digits64.h5"
    prepare("digits", "unused", False, 0.1, 100, 20, 0, data, resize=64)
    settings = {"variant": "conv", "checkpoints": [0],
                "model": dict(architecture="vae_conv", latent=4, init="glorot_uniform"),
                "training": dict(loss="bce", lr=1e-4, batch_size=32, max_epochs=1, patience=1,
                                 objective={"name": "annealed_vae", "gamma": 10, "c_max": 5.0,
                                            "ramp_steps": 8})}
    rows = train(data, settings, 0, tmp_path / "run", log=lambda _: None)
    # 100 training images, 4 steps of up to 32: the validation after them is
    # scored at step 4 of the 8-step ramp, C = 2.5
    assert [row["val_capacity"] for row in rows] == [0.0, 2.5]
    assert all(math.isfinite(value) for row in rows for value in row.values())
    out = tmp_path / "final.h5"
    record(tmp_path / "run" / "checkpoints" / "final.pt", data, out)
    with h5py.File(out) as f:
        assert f["layers"]["logits"].shape == (20, 1, 64, 64)
        assert f["layers"]["sampled"].shape == (20, 4)
