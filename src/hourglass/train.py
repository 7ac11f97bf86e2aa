"""Deterministic training of one variant under one seed.

The seed fixes the initial weights and the order of the minibatches, so the
same settings and seed give byte-identical checkpoints on the same hardware
and library versions (CPU). On CUDA, deterministic algorithms and cuBLAS's
fixed workspace make a rerun on the same GPU model repeat itself; CPU and GPU
numbers differ in the last bits.
"""

import copy
import csv
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from hourglass import __version__
from hourglass.data import load_split
from hourglass.io import atomic_path
from hourglass.models import build_model

LOSSES = {"mse": F.mse_loss, "bce": F.binary_cross_entropy}
EVAL_BATCH = 1024


def pick_device(requested, log=print):
    """The torch device to train on: CUDA when asked for and present, else CPU.

    A job that asks for CUDA but sees no GPU (a scheduler that gave it none,
    a driver missing) still trains, on CPU, and says so in its log.
    """
    if requested == "cuda":
        if torch.cuda.is_available():
            # cuBLAS is only deterministic with a fixed workspace, set before
            # its first call (use_deterministic_algorithms raises otherwise).
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            return torch.device("cuda")
        log("warning: training.device is 'cuda' but this job sees no CUDA device "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
            "training on CPU")
    elif requested != "cpu":
        raise ValueError(f"training.device {requested!r} is not known; choose cpu or cuda")
    return torch.device("cpu")


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def save_checkpoint(path, model, settings, input_shape, seed, epoch):
    state = {
        # on CPU, so that a checkpoint written on a GPU loads anywhere
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "model": settings["model"],
        "variant": settings["variant"],
        "input_shape": list(input_shape),
        "seed": seed,
        "epoch": epoch,
        "hourglass_version": __version__,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def mean_loss(model, loss_fn, x):
    """Mean loss of `model` over all of `x`, without gradients."""
    model.eval()
    with torch.no_grad():
        total = sum(loss_fn(model(b), b, reduction="sum").item() for b in x.split(EVAL_BATCH))
    return total / x.numel()


def train(data, settings, seed, out_dir, threads=1, log=print):
    """Train `settings["model"]` with `settings["training"]` under `seed`.

    Trains on `settings["training"]["device"]` ("cpu", the default, or
    "cuda"; see pick_device). Writes checkpoints/epoch{e}.pt for each e in `settings["checkpoints"]`
    (0 = untrained), checkpoints/final.pt (the weights with the lowest
    validation loss) and metrics.csv (variant, seed, epoch, train_loss,
    val_loss, seconds) under `out_dir`. Where training ends (early stopping or
    max_epochs) before a checkpoint's epoch, that checkpoint holds the final
    weights; its `epoch` says how many epochs they had.
    """
    torch.set_num_threads(threads)
    seed_everything(seed)
    training, out_dir = settings["training"], Path(out_dir)
    device = pick_device(training.get("device", "cpu"), log)
    log(f"training on {device}")
    x_train, _ = load_split(data, "train")
    x_val, _ = load_split(data, "val")
    input_shape = x_train.shape[1:]
    x_train, x_val = x_train.to(device), x_val.to(device)
    model = build_model(settings["model"], input_shape).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=training["lr"])
    loss_fn = LOSSES[training["loss"]]
    order = torch.Generator().manual_seed(seed)
    wanted = sorted(settings["checkpoints"])

    def checkpoint(name, weights_model, epoch):
        save_checkpoint(out_dir / "checkpoints" / f"{name}.pt", weights_model, settings,
                        input_shape, seed, epoch)

    val_loss = mean_loss(model, loss_fn, x_val)
    rows = [(0, mean_loss(model, loss_fn, x_train), val_loss, 0.0)]
    best, best_epoch, best_model, waited = val_loss, 0, copy.deepcopy(model), 0
    log(f"epoch 0: train {rows[0][1]:.5f}  val {val_loss:.5f}")
    if 0 in wanted:
        checkpoint("epoch0", model, 0)
    epoch = 0
    for epoch in range(1, training["max_epochs"] + 1):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=order).split(training["batch_size"]):
            batch = x_train[idx.to(device)]
            loss = loss_fn(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.numel()
        val_loss = mean_loss(model, loss_fn, x_val)
        seconds = time.perf_counter() - start
        rows.append((epoch, total / x_train.numel(), val_loss, seconds))
        log(f"epoch {epoch}: train {rows[-1][1]:.5f}  val {val_loss:.5f}  {seconds:.2f} s")
        if not np.isfinite(val_loss):
            raise FloatingPointError(
                f"variant {settings['variant']!r} seed {seed} diverged at epoch {epoch} "
                f"(validation loss {val_loss}); last finite: {best:.5f}. Lower training.lr."
            )
        if epoch in wanted:
            checkpoint(f"epoch{epoch}", model, epoch)
        if val_loss < best:
            best, best_epoch, best_model, waited = val_loss, epoch, copy.deepcopy(model), 0
        else:
            waited += 1
            if waited >= training["patience"]:
                log(f"early stop after epoch {epoch}: no improvement for {waited} epochs "
                    f"(best {best:.5f} at epoch {best_epoch})")
                break
    for e in wanted:
        if e > epoch:
            checkpoint(f"epoch{e}", best_model, best_epoch)
    checkpoint("final", best_model, best_epoch)
    with atomic_path(out_dir / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", "epoch", "train_loss", "val_loss", "seconds"])
        writer.writerows((settings["variant"], seed, e, f"{t:.8g}", f"{v:.8g}", f"{s:.3f}")
                         for e, t, v, s in rows)
    return rows


def load_checkpoint(path):
    """A trained model and its checkpoint record, read without running pickled code."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(state["model"], state["input_shape"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model, state
