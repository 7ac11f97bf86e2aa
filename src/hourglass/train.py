"""Deterministic, resumable training of one variant under one seed.

The seed fixes the initial weights and the order of the minibatches, so the
same settings and seed give byte-identical checkpoints on the same hardware
and library versions (CPU). On CUDA, deterministic algorithms and cuBLAS's
fixed workspace make a rerun on the same GPU model repeat itself; CPU and GPU
numbers differ in the last bits. Progress is saved at the end of every epoch in
`.resume/` beside the outputs, a folder Snakemake does not know of and so
does not delete: a run killed at any moment and started again continues from
the last saved epoch and writes the same bytes an uninterrupted run would.
"""

import csv
import hashlib
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from hourglass import __version__
from hourglass.data import load_split
from hourglass.io import FORMAT_VERSION, atomic_path
from hourglass.models import MODELS, build_model
from hourglass.progress import bar, log_line
from hourglass.stages import code_hash

LOSSES = {"mse": F.mse_loss, "bce": F.binary_cross_entropy}
EVAL_BATCH = 1024
RESUME_DIR = ".resume"
METRICS = ["variant", "seed", "epoch", "train_loss", "val_loss", "seconds"]


def pick_device(requested, log):
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


def rng_states():
    """The global RNG states of Python, NumPy and torch, in types torch.load(weights_only) reads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}


def set_rng_states(states):
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def fingerprint(*tensors):
    """A short hash of the data trained on: progress made on other data is not resumed."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def clone(state_dict):
    return {k: v.clone() for k, v in state_dict.items()}


def save(obj, path):
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(path, state_dict, settings, input_shape, seed, epoch, diverged=""):
    """A checkpoint; one of a run that diverged holds no weights and says why in `diverged`."""
    save({
        # on CPU, so that a checkpoint written on a GPU loads anywhere
        "state_dict": {k: v.cpu() for k, v in state_dict.items()},
        "model": settings["model"],
        "variant": settings["variant"],
        "input_shape": list(input_shape),
        "seed": seed,
        "epoch": epoch,
        "diverged": diverged,
        "hourglass_version": __version__,
        "format_version": FORMAT_VERSION,
    }, path)


def mean_loss(model, loss_fn, x):
    """Mean loss of `model` over all of `x`, without gradients."""
    model.eval()
    with torch.no_grad():
        total = sum(loss_fn(model(b), b, reduction="sum").item() for b in x.split(EVAL_BATCH))
    return total / x.numel()


# What saved progress must share with this run to be resumed, and what the log
# calls it when it does not. The code is the content of the modules training
# runs: progress made by other code would mix two models in one run.
IDENTITY = {"settings": "settings", "seed": "seed", "data": "data",
            "code": "training code (hourglass.stages.code_hash('train'))",
            "device": "device", "format": "file format"}


def load_progress(path, identity, log):
    """The saved progress at `path` if it belongs to this very run, else None."""
    if not path.exists():
        return None
    try:
        progress = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a state from another version, or a damaged file
        log(f"cannot resume from {path} ({error}); starting over")
        return None
    saved = progress.get("identity") or {}
    changed = [IDENTITY[key] for key in IDENTITY if saved.get(key) != identity[key]]
    if changed:
        log(f"{path} holds progress made with other {', '.join(changed)}; starting over")
        return None
    log(f"resuming after epoch {progress['epoch']}")
    return progress


def train(data, settings, seed, out_dir, threads=1, on_divergence="fail", log=log_line):
    """Train `settings["model"]` with `settings["training"]` under `seed`.

    Writes checkpoints/epoch{e}.pt for each e in `settings["checkpoints"]`
    (0 = untrained), checkpoints/final.pt (the weights with the lowest
    validation loss) and metrics.csv (variant, seed, epoch, train_loss,
    val_loss, seconds) under `out_dir`. Where training ends (early stopping or
    max_epochs) before a checkpoint's epoch, that checkpoint holds the final
    weights; its `epoch` says how many epochs they had. Trains on
    `settings["training"]["device"]` ("cpu", the default, or "cuda"; see
    pick_device). A model whose architecture is fitted in closed form (pca)
    is not trained: see fitted().

    A loss or weights that stop being finite raise FloatingPointError, or with
    `on_divergence="exclude"` end the run as diverged: the checkpoints not yet
    written (final among them) are marked diverged and hold no weights, and
    metrics.csv ends with the non-finite epoch.
    """
    torch.set_num_threads(threads)
    fit = MODELS[settings["model"]["architecture"]].fit
    if fit is not None:  # weights in closed form (pca): nothing to train
        return fitted(fit, data, settings, seed, Path(out_dir), log)
    seed_everything(seed)
    training, out_dir = settings["training"], Path(out_dir)
    work = out_dir / RESUME_DIR
    device = pick_device(training.get("device", "cpu"), log)
    log(f"training on {device}")
    x_train, _ = load_split(data, "train")
    x_val, _ = load_split(data, "val")
    input_shape = tuple(x_train.shape[1:])
    identity = {"settings": settings, "seed": seed, "data": fingerprint(x_train, x_val),
                "code": code_hash("train"), "device": device.type, "format": FORMAT_VERSION}
    x_train, x_val = x_train.to(device), x_val.to(device)
    model = build_model(settings["model"], input_shape).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=training["lr"])
    order = torch.Generator().manual_seed(seed)
    loss_fn = LOSSES[training["loss"]]
    wanted = sorted(settings["checkpoints"])

    def checkpoint(name, state_dict, epoch, diverged=""):
        save_checkpoint(work / f"{name}.pt", state_dict, settings, input_shape, seed, epoch,
                        diverged)

    def save_progress():
        save({**progress, "identity": identity, "model": model.state_dict(),
              "optimizer": optimizer.state_dict(), "order": order.get_state(),
              "rng": rng_states()}, work / "state.pt")

    progress = load_progress(work / "state.pt", identity, log)
    if progress is None:
        shutil.rmtree(work, ignore_errors=True)
        val_loss = mean_loss(model, loss_fn, x_val)
        progress = {"epoch": 0, "rows": [(0, mean_loss(model, loss_fn, x_train), val_loss, 0.0)],
                    "best": val_loss, "best_epoch": 0, "best_model": clone(model.state_dict()),
                    "waited": 0, "done": training["max_epochs"] == 0}
        log(f"epoch 0: train {progress['rows'][0][1]:.5f}  val {val_loss:.5f}")
        if 0 in wanted:
            checkpoint("epoch0", model.state_dict(), 0)
        save_progress()
    else:
        model.load_state_dict(progress["model"])
        optimizer.load_state_dict(progress["optimizer"])
        order.set_state(progress["order"])
        set_rng_states(progress["rng"])

    while not progress["done"]:
        epoch = progress["epoch"] + 1
        start = time.perf_counter()
        model.train()
        total = 0.0
        batches = torch.randperm(len(x_train), generator=order).split(training["batch_size"])
        for step, idx in enumerate(batches, 1):
            bar(step, len(batches), f"epoch {epoch}/{training['max_epochs']}")
            batch = x_train[idx.to(device)]
            loss = loss_fn(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.numel()
        train_loss, val_loss = total / x_train.numel(), mean_loss(model, loss_fn, x_val)
        seconds = time.perf_counter() - start
        try:
            check_finite(model, train_loss, val_loss, settings, seed, epoch, progress["rows"])
        except FloatingPointError as error:
            if on_divergence != "exclude":
                raise
            # Not saved as progress: a resumed run diverges again, deterministically.
            log(f"{error}\nrecorded as diverged (training.on_divergence: exclude); this seed "
                "is left out of the consistency statistics and the measures")
            progress["rows"].append((epoch, train_loss, val_loss, seconds))
            progress["diverged"] = str(error)
            break
        progress["rows"].append((epoch, train_loss, val_loss, seconds))
        progress["epoch"] = epoch
        if val_loss < progress["best"]:
            progress.update(best=val_loss, best_epoch=epoch, waited=0,
                            best_model=clone(model.state_dict()))
        else:
            progress["waited"] += 1
        eta = seconds * (training["max_epochs"] - epoch)
        log(f"epoch {epoch}: train {train_loss:.5f}  val {val_loss:.5f}  {seconds:.2f} s"
            f"  (at most {eta:.0f} s to go)")
        if progress["waited"] >= training["patience"]:
            log(f"early stop after epoch {epoch}: no improvement for {progress['waited']} epochs "
                f"(best {progress['best']:.5f} at epoch {progress['best_epoch']})")
        progress["done"] = epoch == training["max_epochs"] or progress["waited"] >= training["patience"]
        if epoch in wanted:
            checkpoint(f"epoch{epoch}", model.state_dict(), epoch)
        save_progress()

    if "diverged" in progress:
        for name in [f"epoch{e}" for e in wanted if e > progress["epoch"]] + ["final"]:
            checkpoint(name, {}, progress["epoch"] + 1, progress["diverged"])
    else:
        for e in wanted:
            if e > progress["epoch"]:
                checkpoint(f"epoch{e}", progress["best_model"], progress["best_epoch"])
        checkpoint("final", progress["best_model"], progress["best_epoch"])
    publish(work, out_dir, [f"epoch{e}" for e in wanted] + ["final"], settings["variant"], seed,
            progress["rows"])
    return progress["rows"]


def fitted(fit, data, settings, seed, out_dir, log):
    """train() for a model whose weights come from the training images in
    closed form (`fit`, e.g. PCA's SVD): every checkpoint holds the fitted
    weights (0 epochs of training) and metrics.csv one row, epoch 0, with
    the fitted model's losses. Deterministic, so the seed changes nothing."""
    start = time.perf_counter()
    x_train, _ = load_split(data, "train")
    x_val, _ = load_split(data, "val")
    input_shape = tuple(x_train.shape[1:])
    model = build_model(settings["model"], input_shape)
    fit(model, x_train)
    loss_fn = LOSSES[settings["training"]["loss"]]
    row = (0, mean_loss(model, loss_fn, x_train), mean_loss(model, loss_fn, x_val),
           time.perf_counter() - start)
    log(f"fitted {settings['model']['architecture']}: train {row[1]:.5f}  val {row[2]:.5f}")
    work = out_dir / RESUME_DIR
    names = [f"epoch{e}" for e in sorted(settings["checkpoints"])] + ["final"]
    for name in names:
        save_checkpoint(work / f"{name}.pt", model.state_dict(), settings, input_shape, seed, 0)
    publish(work, out_dir, names, settings["variant"], seed, [row])
    return [row]


def check_finite(model, train_loss, val_loss, settings, seed, epoch, rows):
    """Stop a diverged run with an error that says which one and when."""
    exploded = not all(torch.isfinite(p).all() for p in model.parameters())
    if np.isfinite(train_loss) and np.isfinite(val_loss) and not exploded:
        return
    what = "weights are no longer finite" if exploded else f"loss is {train_loss} / {val_loss}"
    raise FloatingPointError(
        f"variant {settings['variant']!r} seed {seed} diverged at epoch {epoch} ({what}); last "
        f"finite validation loss {rows[-1][2]:.5g} at epoch {rows[-1][0]}. Lower training.lr.")


def publish(work, out_dir, names, variant, seed, rows):
    """Copy the finished checkpoints out of `work`, write metrics.csv, drop `work`.

    `work` goes only once every output is in place, so a run killed while
    publishing publishes again when restarted."""
    for name in names:
        with atomic_path(out_dir / "checkpoints" / f"{name}.pt") as tmp:
            shutil.copyfile(work / f"{name}.pt", tmp)
    with atomic_path(out_dir / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(METRICS)
        writer.writerows((variant, seed, e, f"{t:.8g}", f"{v:.8g}", f"{s:.3f}")
                         for e, t, v, s in rows)
    shutil.rmtree(work)


def load_checkpoint(path):
    """A trained model and its checkpoint record, read without running pickled code
    (torch.load weights_only=True); a damaged checkpoint, one of another file
    format or one whose weights do not fit its settings raises InputError.

    The model is None for a checkpoint of a run that diverged."""
    from hourglass.checks import load_checkpoint as checked

    return checked(path)
