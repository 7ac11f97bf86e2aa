"""Each objective on hand-made batches, and what training makes of their terms."""

import csv
import math

import pytest
import torch

from hourglass.data import load_split
from hourglass.losses import Batch
from hourglass.objectives import OBJECTIVES, objective_loss
from hourglass.train import EVAL_NOISE, evaluate, load_checkpoint, noise_stream, train

# Two 1 x 1 x 2 images and what a model made of them.
X = torch.tensor([[[[0.0, 1.0]]], [[[1.0, 1.0]]]])
OUTPUT = torch.tensor([[[[0.5, 0.5]]], [[[1.0, 0.0]]]])


def batch(loss="mse", seed=0, x=X):
    return Batch(x, torch.tensor([3, 7]), step=0, loss=loss,
                 noise=torch.Generator().manual_seed(seed), images=len(x))


def terms(objective, layers, b):
    loss = objective_loss(objective)
    return {name: value.item() for name, value in loss.terms(layers, b).items()}


def test_reconstruction_mse_is_the_mean_squared_error_over_every_pixel():
    # squared errors 0.25, 0.25, 0, 1
    assert terms({"name": "reconstruction"}, {"output": OUTPUT}, batch()) == {
        "loss": 0.375, "recon": 0.375}
    assert objective_loss({"name": "reconstruction"}).inputs(batch()) is X


def test_reconstruction_bce_is_the_mean_binary_cross_entropy():
    got = terms({"name": "reconstruction"}, {"output": OUTPUT}, batch("bce"))
    # pixels (target, output): (0, .5), (1, .5), (1, 1), (1, 0); log clamped at -100 as torch does
    expected = (math.log(2) + math.log(2) + 0 + 100) / 4
    assert got["loss"] == got["recon"] == pytest.approx(expected, rel=1e-6)


def test_denoising_adds_seeded_gaussian_noise_clipped_to_the_unit_interval():
    loss = objective_loss({"name": "denoising", "noise_std": 0.3})
    x = torch.full((2000, 1, 1, 1), 0.5)
    noisy = loss.inputs(batch(x=x))
    expected = (0.5 + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(noisy, expected.clamp(0, 1))
    assert torch.equal(loss.inputs(batch(x=x)), noisy)            # the same seed, the same noise
    assert not torch.equal(loss.inputs(batch(x=x, seed=1)), noisy)
    heavy = objective_loss({"name": "denoising", "noise_std": 10.0}).inputs(batch(x=x))
    assert heavy.min() == 0 and heavy.max() == 1
    assert ((heavy == 0) | (heavy == 1)).float().mean() > 0.9


def test_denoising_scores_the_output_against_the_clean_images():
    b = batch()
    loss = objective_loss({"name": "denoising", "noise_std": 0.5})
    assert terms({"name": "denoising", "noise_std": 0.5}, {"output": X}, b)["loss"] == 0
    noisy = loss.inputs(b)
    assert not torch.equal(noisy, X)
    expected = ((noisy - X) ** 2).mean().item()
    assert terms({"name": "denoising", "noise_std": 0.5}, {"output": noisy}, b) == {
        "loss": expected, "recon": expected}


def test_an_unknown_objective_or_option_is_named():
    with pytest.raises(ValueError, match=r"training.objective.name 'vae' is not known; known: "
                                         r"reconstruction: .*; denoising: "):
        objective_loss({"name": "vae"})
    with pytest.raises(ValueError, match=r"'denoising' takes the options \['noise_std'\], got \[\]"):
        objective_loss({"name": "denoising"})
    with pytest.raises(ValueError, match=r"'reconstruction' takes the options \[\], got \['beta'\]"):
        objective_loss({"name": "reconstruction", "beta": 4})
    assert list(OBJECTIVES) == ["reconstruction", "denoising", "classifier", "beta_vae",
                                "beta_tc_vae", "annealed_vae", "dip_vae_ii"]


def settings(**training):
    return {
        "variant": "small",
        "model": dict(architecture="fc", widths=[16, 8], latent=3, bottleneck_layers=1,
                      activation="relu", latent_activation="relu", init="glorot_uniform"),
        "training": dict(loss="mse", lr=0.01, batch_size=64, max_epochs=2, patience=10) | training,
        "checkpoints": [0, 2],
    }


def metrics(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


DENOISING = {"name": "denoising", "noise_std": 0.3}


def test_every_term_is_a_column_per_split_and_evaluation_noise_is_fixed(digits_file, tmp_path):
    train(digits_file, settings(objective=DENOISING), 0, tmp_path, log=lambda _: None)
    rows = metrics(tmp_path)
    assert list(rows[0]) == ["variant", "seed", "epoch", "train_loss", "train_recon", "val_loss",
                             "val_recon", "test_loss", "test_recon", "seconds"]
    loss = objective_loss(DENOISING)
    for checkpoint, row in (("epoch0", rows[0]), ("epoch2", rows[2])):
        model, _ = load_checkpoint(tmp_path / "checkpoints" / f"{checkpoint}.pt")
        for split in ("val", "test"):
            # the noise of an evaluation starts over: evaluated again, the same numbers
            got = evaluate(model, loss, *load_split(digits_file, split), 0, "mse")
            assert f"{got['loss']:.8g}" == row[f"{split}_loss"]
    # the untrained model on the training split too; from epoch 1 on, the training
    # columns are the trained batches' (with the training noise)
    got = evaluate(load_checkpoint(tmp_path / "checkpoints" / "epoch0.pt")[0], loss,
                   *load_split(digits_file, "train"), 0, "mse")
    assert f"{got['loss']:.8g}" == rows[0]["train_loss"]


def test_training_noise_comes_from_the_runs_seed(digits_file, tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(digits_file, settings(objective=DENOISING), seed, tmp_path / name, log=lambda _: None)
        runs[name] = (tmp_path / name / "checkpoints" / "final.pt").read_bytes()
    assert runs["a"] == runs["b"] != runs["c"]
    # a stream apart from the order's (the seed itself) and from the evaluation's
    draws = [torch.randn(4, generator=g) for g in (
        noise_stream(0, 1), torch.Generator().manual_seed(0), noise_stream(EVAL_NOISE))]
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_weight_decay_reaches_adam(digits_file, tmp_path, monkeypatch):
    decays = []

    class Spy(torch.optim.Adam):
        def __init__(self, params, **options):
            super().__init__(params, **options)
            decays.append(self.param_groups[0]["weight_decay"])

    monkeypatch.setattr(torch.optim, "Adam", Spy)
    final = {}
    for name, training in (("unset", {}), ("zero", {"weight_decay": 0}),
                           ("decay", {"weight_decay": 0.1})):
        train(digits_file, settings(**training), 0, tmp_path / name, log=lambda _: None)
        final[name] = (tmp_path / name / "checkpoints" / "final.pt").read_bytes()
    assert decays == [0, 0, 0.1]
    assert final["unset"] == final["zero"] != final["decay"]


@pytest.mark.parametrize("override,message", [
    ("training: {objective: {name: denoising}}",
     "training.objective: 'noise_std' is a required property (denoising takes noise_std"),
    ("training: {objective: {name: reconstruction, noise_std: 0.3}}",
     "unknown key training.objective.noise_std; allowed here: name"),
    ("training: {objective: {name: denoising, noise_std: '0.3'}}",
     "training.objective.noise_std: '0.3' is not of type 'number'"),
    ("variants: {latent4: {training: {objective: {name: denoising, noise_std: 0}}}}",
     "variants.latent4.training.objective.noise_std: 0 is less than or equal to the minimum of 0"),
    ("training: {objective: {name: vae}}",
     "training.objective.name: 'vae' is not known; choose one of: reconstruction, denoising, "
     "classifier, beta_vae, beta_tc_vae, annealed_vae, dip_vae_ii"),
    ("training: {objective: {name: beta_vae, beta: 4}}",
     "variants.latent4.training.objective: beta_vae reads the mean, logvar, sampled, logits "
     "layers of variant 'latent4', whose model (fc) lacks them; give the variant a VAE model"),
    ("analyses: {collapse: {}}",
     "analyses.collapse: the collapse analysis reads the mean, logvar, sampled layers of "
     "variant 'latent8', whose model (fc) lacks them"),
    ("variants: {latent4: {model: {architecture: vae_conv},"
     " training: {objective: {name: beta_vae, beta: 4}}}}",
     "variants.latent4.model: vae_conv needs image sides divisible by 16 (64 x 64 in the "
     "paper), got 8x8; resize the images (data.resize)"),
    ("variants: {latent4: {model: {architecture: vae_conv}, data: {resize: 12},"
     " training: {objective: {name: beta_vae, beta: 4}}}}",
     "variants.latent4.model: vae_conv needs image sides divisible by 16 (64 x 64 in the "
     "paper), got 12x12"),
    ("training: {objective: {name: annealed_vae, gamma: 1000, c_max: 25}}",
     "training.objective: 'ramp_steps' is a required property (e.g. {name: annealed_vae"),
    ("training: {objective: {name: dip_vae_ii, lambda_od: 10, lambda_d: 10, beta: 1}}",
     "unknown key training.objective.beta; allowed here: name, lambda_od, lambda_d"),
    ("activations: {record_from: posterior}",
     "activations.record_from: 'posterior' is not known; choose one of: sampled, mean"),
    ("training: {weight_decay: .inf}", "training.weight_decay: inf is not of type 'number'"),
    ("training: {weight_decay: -1}", "training.weight_decay: -1 is less than the minimum of 0"),
])
def test_a_bad_objective_or_weight_decay_is_named_at_start(override, message):
    from test_config import problems

    assert message in problems(override)
