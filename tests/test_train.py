import csv

import h5py
import numpy as np
import pytest
import torch

from hourglass.activations import describe, read_layer, record
from hourglass.data import load_split
from hourglass.train import load_checkpoint, pick_device, train


def settings(**training):
    return {
        "variant": "small",
        "model": dict(architecture="fc", widths=[16, 8], latent=3, bottleneck_layers=1,
                      activation="relu", latent_activation="relu", init="glorot_uniform"),
        "training": dict(loss="mse", lr=0.01, batch_size=64, max_epochs=3, patience=10) | training,
        "checkpoints": [0, 2, 8],
    }


def run(digits_file, out, seed=0, log=lambda line: None, **training):
    train(digits_file, settings(**training), seed, out, log=log)
    return {p.name: p.read_bytes() for p in sorted((out / "checkpoints").iterdir())}


def test_same_seed_gives_byte_identical_checkpoints(digits_file, tmp_path):
    a = run(digits_file, tmp_path / "a")
    b = run(digits_file, tmp_path / "b")
    assert sorted(a) == ["epoch0.pt", "epoch2.pt", "epoch8.pt", "final.pt"]
    assert a == b
    c = run(digits_file, tmp_path / "c", seed=1)
    assert all(a[name] != c[name] for name in a)


def test_cuda_training_is_deterministic_or_falls_back_to_cpu_with_a_warning(
        digits_file, tmp_path):
    lines = []
    a = run(digits_file, tmp_path / "a", device="cuda", log=lines.append)
    b = run(digits_file, tmp_path / "b", device="cuda")
    assert a == b
    if torch.cuda.is_available():
        assert "training on cuda" in lines[0]
    else:
        assert lines[0].startswith("warning: training.device is 'cuda' but this job sees no CUDA")
        assert lines[1] == "training on cpu"
        assert a == run(digits_file, tmp_path / "cpu", device="cpu")
    with pytest.raises(ValueError, match="training.device 'tpu' is not known"):
        pick_device("tpu", log=print)


def test_metrics_and_checkpoint_epochs(digits_file, tmp_path):
    run(digits_file, tmp_path)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    # each term of the objective (reconstruction: loss and recon) per split
    assert list(rows[0]) == ["variant", "seed", "epoch", "train_loss", "train_recon", "val_loss",
                             "val_recon", "test_loss", "test_recon", "seconds"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    val = [float(r["val_loss"]) for r in rows]
    assert val[-1] < val[0]
    epochs = {p.stem: load_checkpoint(p)[1]["epoch"] for p in (tmp_path / "checkpoints").iterdir()}
    best = int(np.argmin(val))
    # epoch 8 lies beyond max_epochs: it holds the final (best validation) weights
    assert epochs == {"epoch0": 0, "epoch2": 2, "epoch8": best, "final": best}


def test_early_stopping_keeps_the_best_weights(digits_file, tmp_path):
    # a learning rate this large stops improving at once; patience 1 stops after one bad epoch
    run(digits_file, tmp_path, lr=1.0, max_epochs=20, patience=1)
    with open(tmp_path / "metrics.csv") as f:
        val = [float(r["val_loss"]) for r in csv.DictReader(f)]
    assert len(val) < 21
    assert load_checkpoint(tmp_path / "checkpoints" / "final.pt")[1]["epoch"] == int(np.argmin(val))


def test_activations_file(digits_file, tmp_path):
    run(digits_file, tmp_path)
    out = tmp_path / "activations" / "final.h5"
    record(tmp_path / "checkpoints" / "final.pt", digits_file, out)
    attrs = describe(out)
    model, state = load_checkpoint(tmp_path / "checkpoints" / "final.pt")
    assert attrs["layer_names"] == model.layer_names == [
        "input", "encoder1", "encoder2", "bottleneck1", "decoder1", "decoder2", "output"]
    assert attrs["checkpoint"] == "final" and attrs["seed"] == 0 and attrs["variant"] == "small"
    assert attrs["epoch"] == state["epoch"] and attrs["model"] == state["model"]
    assert attrs["shapes"]["output"] == [1, 8, 8] and attrs["shapes"]["bottleneck1"] == [3]
    assert attrs["hourglass_version"]
    x, _ = load_split(digits_file, "probe")
    with h5py.File(out) as f:
        output = f["layers/output"]
        assert output.dtype == np.float32 and output.compression == "gzip" and output.chunks
    with torch.no_grad():
        expected = model(x).reshape(len(x), -1).numpy()
    assert np.array_equal(read_layer(out, "output"), expected.astype(np.float64))
    assert np.array_equal(read_layer(out, "input"), x.reshape(len(x), -1).numpy().astype(np.float64))
    with pytest.raises(ValueError, match="no layer 'encoder9'"):
        read_layer(out, "encoder9")


def test_divergence_stops_with_an_error_naming_the_run(digits_file, tmp_path):
    with pytest.raises(FloatingPointError, match=r"variant 'small' seed 0 diverged at epoch 1 .*"
                       r"last finite validation loss [0-9.]+ at epoch 0\. Lower training\.lr"):
        run(digits_file, tmp_path, lr=1e10)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.csv").exists()


def test_a_diverged_seed_can_be_recorded_instead(digits_file, tmp_path):
    train(digits_file, settings(lr=1e10), 0, tmp_path, on_divergence="exclude", log=lambda _: None)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert np.isfinite(float(rows[0]["val_loss"])) and not np.isfinite(float(rows[1]["val_loss"]))
    model, state = load_checkpoint(tmp_path / "checkpoints" / "epoch0.pt")
    assert model is not None and state["diverged"] == ""
    for name in ("epoch2", "epoch8", "final"):
        model, state = load_checkpoint(tmp_path / "checkpoints" / f"{name}.pt")
        assert model is None and state["state_dict"] == {} and state["epoch"] == 1
        assert "seed 0 diverged at epoch 1" in state["diverged"]
    record(tmp_path / "checkpoints" / "final.pt", digits_file, tmp_path / "final.h5")
    attrs = describe(tmp_path / "final.h5")
    assert attrs["layer_names"] == [] and "diverged at epoch 1" in attrs["diverged"]
    with h5py.File(tmp_path / "final.h5") as f:
        assert len(f["layers"]) == 0


def test_an_epoch_of_steps_draws_on_through_passes_each_in_a_new_order():
    from hourglass.train import epoch_batches

    order, queue, epochs = torch.Generator().manual_seed(0), torch.empty(0, dtype=torch.long), []
    for _ in range(5):  # 5 epochs of 3 batches of 4: 60 indices, 6 passes over 10 images
        batches, queue = epoch_batches(10, 4, 3, order, queue)
        assert [len(b) for b in batches] == [4, 4, 4]
        epochs.append(torch.cat(batches))
    drawn = torch.cat(epochs)
    for k in range(6):
        assert sorted(drawn[10 * k:10 * (k + 1)].tolist()) == list(range(10))
    assert len(queue) == 0 and not torch.equal(drawn[:10], drawn[10:20])
    # without epoch_steps, one pass whose last batch is short, as always
    batches, queue = epoch_batches(10, 4, None, torch.Generator().manual_seed(0), queue)
    assert torch.equal(torch.cat(batches), torch.randperm(10, generator=torch.Generator()
                                                          .manual_seed(0)))
    assert [len(b) for b in batches] == [4, 4, 2]


def test_training_in_steps_averages_the_images_it_trained_on(digits_file, tmp_path):
    run(digits_file, tmp_path, epoch_steps=5, max_epochs=2)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert load_checkpoint(tmp_path / "checkpoints" / "epoch2.pt")[1]["epoch"] == 2
    # 5 steps of 64 images, a fifth of the training digits: their mean loss is
    # near the untrained one (a sum over them divided by the whole split
    # would be about a fifth of it)
    ratio = float(rows[1]["train_loss"]) / float(rows[0]["train_loss"])
    assert 0.6 < ratio < 1.05
