"""training.stack_seeds: every seed of a variant trained in one stack
(hourglass.stacked) against the same seeds trained one by one, and again."""

import csv

import pytest

from hourglass.stacked import train_stacked
from hourglass.train import train
from conftest import config_problems

SEEDS = [0, 1, 2]
MODEL = dict(architecture="fc", widths=[256, 16], latent=4, bottleneck_layers=1,
             activation="relu", latent_activation="relu", init="glorot_uniform")
# A high rate and no patience to speak of: the seeds stop early, after
# different epochs, which the stack must follow seed by seed.
TRAINING = dict(loss="mse", lr=0.03, batch_size=64, max_epochs=8, patience=1,
                stack_seeds=True)


def settings(**training):
    return {"variant": "v", "model": MODEL, "training": {**TRAINING, **training},
            "checkpoints": [0, 2, 20]}


def quiet(line):
    pass


def rows_of(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def without_seconds(row):
    return {column: value for column, value in row.items() if column != "seconds"}


def compare_with_separate(digits_file, tmp_path, **training):
    """Train the seeds stacked and one by one (the same settings); check each
    seed's metrics and checkpoint bytes are the same, and return the epochs
    each trained."""
    stacked = train_stacked(digits_file, settings(**training), SEEDS, tmp_path / "stacked",
                            log=quiet)
    epochs = []
    for seed in SEEDS:
        alone = train(digits_file, settings(**training), seed, tmp_path / "alone" / f"seed{seed}",
                      log=quiet)
        assert [without_seconds(row) for row in stacked[seed]] == \
            [without_seconds(row) for row in alone]
        for name in ("epoch0", "epoch2", "epoch20", "final"):
            path = f"seed{seed}/checkpoints/{name}.pt"
            assert (tmp_path / "stacked" / path).read_bytes() == \
                (tmp_path / "alone" / path).read_bytes(), path
        assert [without_seconds(row) for row in rows_of(
            tmp_path / "stacked" / f"seed{seed}" / "metrics.csv")] == \
            [without_seconds(row) for row in rows_of(
                tmp_path / "alone" / f"seed{seed}" / "metrics.csv")]
        epochs.append(len(alone) - 1)
    assert not (tmp_path / "stacked" / ".resume").exists()
    return epochs


def test_each_seed_trains_as_it_would_alone(digits_file, tmp_path):
    """Same initial weights, minibatch order, gradients and early stopping per
    seed: each seed's metrics and checkpoints (those after training ended hold
    the best weights) are those of the seed trained alone, bit for bit."""
    epochs = compare_with_separate(digits_file, tmp_path)
    # the seeds stopped after different epochs: the stack lost a member on the way
    assert len(set(epochs)) > 1, epochs


def test_each_seed_draws_its_own_noise(digits_file, tmp_path):
    """A denoising objective's corruption, drawn per seed outside the stacked pass."""
    compare_with_separate(digits_file, tmp_path, max_epochs=3,
                          objective={"name": "denoising", "noise_std": 0.3})


def test_a_rerun_and_a_resumed_run_write_the_same_bytes(digits_file, tmp_path):
    train_stacked(digits_file, settings(), SEEDS, tmp_path / "first", log=quiet)

    class Killed(Exception):
        pass

    def dies_in_epoch_3(line):
        if line.startswith("seed 1: epoch 3:"):  # seed 0's epoch 3 booked, not saved
            raise Killed

    with pytest.raises(Killed):
        train_stacked(digits_file, settings(), SEEDS, tmp_path / "again", log=dies_in_epoch_3)
    assert (tmp_path / "again" / ".resume" / "stacked.pt").exists()
    lines = []
    train_stacked(digits_file, settings(), SEEDS, tmp_path / "again", log=lines.append)
    assert "resuming after epoch 2" in lines
    files = sorted(p.relative_to(tmp_path / "first")
                   for p in (tmp_path / "first").rglob("*") if p.is_file())
    assert len(files) == 3 * 5  # per seed: four checkpoints and metrics.csv
    for name in files:
        if name.name != "metrics.csv":
            assert (tmp_path / "first" / name).read_bytes() == \
                (tmp_path / "again" / name).read_bytes(), name
        else:  # its seconds differ
            assert [without_seconds(row) for row in rows_of(tmp_path / "first" / name)] == \
                [without_seconds(row) for row in rows_of(tmp_path / "again" / name)]


def test_progress_of_other_settings_is_not_resumed(digits_file, tmp_path):
    class Killed(Exception):
        pass

    def dies(line):
        if "epoch 2:" in line:
            raise Killed

    with pytest.raises(Killed):
        train_stacked(digits_file, settings(), SEEDS, tmp_path, log=dies)
    lines = []
    train_stacked(digits_file, settings(lr=0.01), SEEDS, tmp_path, log=lines.append)
    assert any("holds progress made with other settings; starting over" in line
               for line in lines), lines


@pytest.mark.parametrize("change,problem", [
    ({"model": {"architecture": "vae_fc", "widths": [32, 16]}}, "a VAE draws its code"),
    ({"training": {"precision": "fp16"}}, "fp16's gradient scaler"),
])
def test_what_cannot_be_stacked_is_refused_at_the_start(change, problem):
    variant = {key: {**value, **({"stack_seeds": True} if key == "training" else {})}
               for key, value in {"training": {}, **change}.items()}
    message = config_problems("tiny.yaml", {"variants": {"latent4": variant}})
    assert "variants.latent4.training.stack_seeds: its seeds cannot be trained stacked" in message
    assert problem in message


def test_the_stack_itself_refuses_what_it_cannot_train(digits_file, tmp_path):
    vae = {**settings(), "model": {**MODEL, "architecture": "vae_fc"}}
    with pytest.raises(ValueError, match="cannot train its seeds stacked: a VAE"):
        train_stacked(digits_file, vae, SEEDS, tmp_path, log=quiet)
