"""training.stack_seeds: every seed of a variant trained in one stack
(hourglass.stacked) against the same seeds trained one by one, and again."""

import csv
import math
import re

import pytest
import torch

from hourglass import stacked
from hourglass.files import describe_file, format_description
from hourglass.stacked import train_stacked
from hourglass.train import publish, train
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
    """A metrics row to compare, NaN equal to NaN (the digits of every float kept)."""
    return {column: str(value) for column, value in row.items() if column != "seconds"}


def compare_with_separate(digits_file, tmp_path, on_divergence="fail", **training):
    """Train the seeds stacked and one by one (the same settings); check each
    seed's metrics and checkpoint bytes are the same, and return each seed's
    metrics rows."""
    stacked = train_stacked(digits_file, settings(**training), SEEDS, tmp_path / "stacked",
                            on_divergence=on_divergence, log=quiet)
    rows = []
    for seed in SEEDS:
        alone = train(digits_file, settings(**training), seed, tmp_path / "alone" / f"seed{seed}",
                      on_divergence=on_divergence, log=quiet)
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
        rows.append(alone)
    assert not (tmp_path / "stacked" / ".resume").exists()
    return rows


def test_each_seed_trains_as_it_would_alone(digits_file, tmp_path):
    """Same initial weights, minibatch order, gradients and early stopping per
    seed: each seed's metrics and checkpoints (those after training ended hold
    the best weights) are those of the seed trained alone, bit for bit."""
    epochs = [len(rows) - 1 for rows in compare_with_separate(digits_file, tmp_path)]
    # the seeds stopped after different epochs: the stack lost a member on the way
    assert len(set(epochs)) > 1, epochs


def test_a_diverging_seed_leaves_the_stack_as_it_ends_alone(digits_file, tmp_path):
    """on_divergence exclude: the seed's checkpoints from then on are marked
    diverged, its metrics end with the non-finite epoch; the others go on."""
    rows = compare_with_separate(digits_file, tmp_path, on_divergence="exclude", lr=5e4,
                                 patience=None, max_epochs=4)
    finite = [all(math.isfinite(row["val_loss"]) for row in seed) for seed in rows]
    assert True in finite and False in finite, finite


@pytest.mark.parametrize("training", [{"max_epochs": 0}, {"epoch_steps": 5, "max_epochs": 3}])
def test_no_epochs_or_epochs_of_steps(digits_file, tmp_path, training):
    """Untrained checkpoints only; and epochs of 5 steps, each seed's passes
    over the data running on from epoch to epoch in its own order."""
    compare_with_separate(digits_file, tmp_path, **training)


def test_each_seed_draws_its_own_noise(digits_file, tmp_path):
    """A denoising objective's corruption, drawn per seed outside the stacked pass."""
    compare_with_separate(digits_file, tmp_path, max_epochs=3,
                          objective={"name": "denoising", "noise_std": 0.3})


CAE = dict(architecture="cae", levels=1, area="S", compression=0.25, final_norm=False,
           init="glorot_uniform")


@pytest.mark.parametrize("model", [MODEL, CAE], ids=["fc", "cae"])
@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                         reason="no CUDA device"))])
def test_on_each_device_a_rerun_is_the_same_and_seeds_train_as_alone(digits_file, tmp_path,
                                                                     device, model):
    """Where a grouped product or norm sums in another order than one seed's
    (cuBLAS; the cae's instance norms), the stack may differ from the seeds
    alone by rounding (the fc on CPU: not at all); a rerun on the same device
    is the same bytes. Two epochs at a modest rate, so that rounding cannot
    change when a seed stops."""
    run = {**settings(device=device, lr=0.003, max_epochs=2, patience=None), "model": model}
    train_stacked(digits_file, run, SEEDS, tmp_path / "first", log=quiet)
    train_stacked(digits_file, run, SEEDS, tmp_path / "again", log=quiet)
    same_files(tmp_path / "first", tmp_path / "again")
    for seed in SEEDS:
        alone = train(digits_file, run, seed, tmp_path / "alone" / f"seed{seed}", log=quiet)
        stacked_rows = rows_of(tmp_path / "first" / f"seed{seed}" / "metrics.csv")
        assert len(stacked_rows) == len(alone) == 3
        for ours, theirs in zip(stacked_rows, alone):
            for column in ("train_loss", "val_loss", "test_loss"):
                assert float(ours[column]) == pytest.approx(theirs[column], rel=1e-5), column


class Killed(Exception):
    pass


def same_files(first, again):
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 3 * 5  # per seed: four checkpoints and metrics.csv
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        if name.name != "metrics.csv":
            assert (first / name).read_bytes() == (again / name).read_bytes(), name
        else:  # its seconds differ
            assert [without_seconds(row) for row in rows_of(first / name)] == \
                [without_seconds(row) for row in rows_of(again / name)]


def test_a_rerun_and_a_resumed_run_write_the_same_bytes(digits_file, tmp_path):
    train_stacked(digits_file, settings(), SEEDS, tmp_path / "first", log=quiet)

    def dies_in_epoch_6(line):
        if line.startswith("seed 2: epoch 6:"):  # seed 0's epoch 6 booked, not saved
            raise Killed

    with pytest.raises(Killed):
        train_stacked(digits_file, settings(), SEEDS, tmp_path / "again", log=dies_in_epoch_6)
    state = tmp_path / "again" / ".resume" / "stacked.pt"
    saved = torch.load(state, weights_only=True)
    assert saved["active"] == [0, 2]  # seed 1 stopped after epoch 4: resumed off a smaller stack
    # what `hourglass inspect` says of it: each seed's progress
    shown = format_description(describe_file(state))
    assert shown.splitlines()[0] == f"{state}: stacked training progress"
    assert re.search(r"^epoch: +5$", shown, re.M), shown
    assert re.search(r"^training: +\[0, 2\]$", shown, re.M), shown
    assert re.search(r'^  seed 1: \{"best_epoch": \d, "done": true, "epoch": 4\}$', shown, re.M)
    lines = []
    train_stacked(digits_file, settings(), SEEDS, tmp_path / "again", log=lines.append)
    assert "resuming after epoch 5" in lines
    same_files(tmp_path / "first", tmp_path / "again")


def test_a_job_killed_while_publishing_publishes_again(digits_file, tmp_path, monkeypatch):
    train_stacked(digits_file, settings(), SEEDS, tmp_path / "first", log=quiet)
    published = []

    def publish_one(*args):
        if published:
            raise Killed
        published.append(publish(*args))

    monkeypatch.setattr(stacked, "publish", publish_one)
    with pytest.raises(Killed):
        train_stacked(digits_file, settings(), SEEDS, tmp_path / "again", log=quiet)
    monkeypatch.undo()
    assert (tmp_path / "again" / "seed0" / "metrics.csv").exists()
    train_stacked(digits_file, settings(), SEEDS, tmp_path / "again", log=quiet)
    same_files(tmp_path / "first", tmp_path / "again")


def test_progress_of_other_settings_is_not_resumed(digits_file, tmp_path):
    def dies(line):
        if "epoch 2:" in line:
            raise Killed

    with pytest.raises(Killed):
        train_stacked(digits_file, settings(), SEEDS, tmp_path, log=dies)
    lines = []
    train_stacked(digits_file, settings(lr=0.01), SEEDS, tmp_path, log=lines.append)
    assert any("holds progress made with other settings; starting over" in line
               for line in lines), lines


def test_switching_stack_seeds_drops_the_other_ways_progress(digits_file, tmp_path):
    """A killed run's progress of one way (a seed's .resume, the stack's) is of
    other settings to the other way: the other way's fresh start removes it."""
    def dies(line):
        if "epoch 2:" in line:
            raise Killed

    with pytest.raises(Killed):
        train(digits_file, settings(), 0, tmp_path / "seed0", log=dies)
    assert (tmp_path / "seed0" / ".resume").is_dir()
    with pytest.raises(Killed):
        train_stacked(digits_file, settings(), SEEDS, tmp_path, log=dies)
    assert not (tmp_path / "seed0" / ".resume").exists()
    assert (tmp_path / ".resume" / "stacked.pt").is_file()
    for seed in SEEDS:
        with pytest.raises(Killed):
            train(digits_file, settings(), seed, tmp_path / f"seed{seed}", log=dies)
        assert (tmp_path / ".resume").exists() == (seed < SEEDS[-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0", "seed1", "seed2"]


@pytest.mark.parametrize("change,problem", [
    ({"model": {"architecture": "vae_fc", "widths": [32, 16]}}, "a VAE draws its code"),
    ({"model": {"architecture": "linear"}}, "its layers share weights"),
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
