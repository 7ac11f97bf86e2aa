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
import math
import os
import random
import shutil
import time
from contextlib import nullcontext, suppress
from pathlib import Path

import numpy as np
import torch

from hourglass import __version__
from hourglass.data import load_split
from hourglass.io import FORMAT_VERSION, atomic_path
from hourglass.models import architecture, build_model
from hourglass.losses import Batch
from hourglass.objectives import objective_loss
from hourglass.progress import bar, log_line
from hourglass.stages import code_hash

EVAL_BATCH = 1024
RESUME_DIR = ".resume"
STACKED_STATE = "stacked.pt"  # in {variant}/.resume/, beside each seed's work
SPLITS = ("train", "val", "test")
# What settings written without these keys (by hand, as in the tests) mean:
# the training there was before objectives and weight decay were settings.
DEFAULT_OBJECTIVE = {"name": "reconstruction"}
DEFAULT_WEIGHT_DECAY = 0
# Keys of the noise streams beside the order stream (the seed alone): the
# training noise runs on through the run (resumed with the rest of its state);
# the evaluation noise starts over from one fixed key at every evaluation, so
# every epoch's and every seed's validation and test losses are of the same
# corrupted images (and sampled codes); the recording noise, keyed by the
# variant, the seed and the epochs the weights had, draws a VAE's sampled
# code of the probe images, so that recording a checkpoint again writes the
# same bytes (activations.record).
TRAIN_NOISE, EVAL_NOISE, RECORD_NOISE = 1, 2, 3
# training.precision: the dtype autocast computes in (None: float32 throughout).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device, precision):
    """The context training and evaluation run in: torch's autocast to the
    half dtype `precision` names (weights, optimiser and losses stay float32),
    or nothing for fp32."""
    dtype = PRECISIONS[precision]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


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


def noise_stream(*key):
    """A CPU generator whose stream `key` fixes, unrelated to other keys' streams."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))


def epoch_batches(images, batch_size, epoch_steps, order, queue):
    """One epoch's minibatches (index tensors) of a training split of
    `images`, and the indices left for the next epoch. An epoch is one pass
    over the split in the order `order` draws (`epoch_steps` None: the last
    batch may be short), or `epoch_steps` full batches drawn on through
    passes, each in a new order, that need not end with the epoch (as a
    TensorFlow dataset's repeat() and batch()): `queue` holds the indices of
    the pass under way that earlier epochs left."""
    if epoch_steps is None:
        return torch.randperm(images, generator=order).split(batch_size), queue
    wanted = epoch_steps * batch_size
    while len(queue) < wanted:
        queue = torch.cat([queue, torch.randperm(images, generator=order)])
    return queue[:wanted].split(batch_size), queue[wanted:].clone()  # not the whole pass saved


def add_terms(totals, terms, images):
    """Add each term, a mean over `images` images, to its running sum over images."""
    for name, value in terms.items():
        totals[name] = totals.get(name, 0.0) + value.item() * images


def evaluate(model, loss, x, y, step, recon, precision="fp32"):
    """Each term of `loss` averaged over the images `x` (labels `y`), without
    gradients, with the evaluation noise, in `precision` (as trained);
    `recon` is training.loss."""
    model.eval()
    noise, totals = noise_stream(EVAL_NOISE), {}
    with torch.no_grad(), autocast(x.device, precision):
        for xb, yb in zip(x.split(EVAL_BATCH), y.split(EVAL_BATCH)):
            batch = Batch(xb, yb, step, recon, noise, len(x))
            add_terms(totals, loss.terms(model.by_role(loss.inputs(batch), noise), batch), len(xb))
    return {name: total / len(x) for name, total in totals.items()}


def split_columns(split, terms):
    return {f"{split}_{name}": value for name, value in terms.items()}


def split_metrics(model, loss, splits, names, step, recon, precision="fp32"):
    """Each term of `loss` on each split of `names` ({split: (x, y)} in
    `splits`), as evaluate() gives it, keyed as metrics.csv's columns."""
    return {column: value for split in names for column, value in split_columns(
        split, evaluate(model, loss, *splits[split], step, recon, precision)).items()}


# What saved progress must share with this run to be resumed, and what the log
# calls it when it does not. The code is the content of the modules training
# runs: progress made by other code would mix two models in one run.
IDENTITY = {"settings": "settings", "seed": "seed", "data": "data",
            "code": "training code (hourglass.stages.code_hash of its stage)",
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


def drop_stacked_progress(variant_dir, seed):
    """Remove the progress a killed stacked run of the variant (hourglass.stacked)
    left in {variant_dir}/.resume: stack_seeds is a training setting, so to a
    seed training alone it is progress of other settings, and would stay."""
    stack = Path(variant_dir) / RESUME_DIR
    shutil.rmtree(stack / f"seed{seed}", ignore_errors=True)
    (stack / STACKED_STATE).unlink(missing_ok=True)
    with suppress(OSError):  # not empty while other seeds' are there
        stack.rmdir()


def train(data, settings, seed, out_dir, threads=1, on_divergence="fail", log=log_line):
    """Train `settings["model"]` with `settings["training"]` under `seed`.

    Writes checkpoints/epoch{e}.pt for each e in `settings["checkpoints"]`
    (0 = untrained), checkpoints/final.pt (the weights with the lowest
    validation loss) and metrics.csv under `out_dir`: per epoch, each term of
    the objective (hourglass.objectives) on the training, validation and test
    splits (train_loss, train_recon, val_loss, ..., test_recon), then seconds.
    Epoch 0 evaluates the untrained model; from epoch 1 on, the training
    columns average the batches as they were trained. An epoch is one pass
    over the training split, or `training["epoch_steps"]` steps (see
    epoch_batches): training measured in steps, as Bonheme & Grzes's. Where training ends
    (early stopping or max_epochs) before a checkpoint's epoch, that
    checkpoint holds the final weights; its `epoch` says how many epochs they
    had. Trains on `settings["training"]["device"]` ("cpu", the default, or
    "cuda"; see pick_device). A model whose architecture is fitted in closed
    form (pca) is not trained: see fitted().

    A loss or weights that stop being finite raise FloatingPointError, or with
    `on_divergence="exclude"` end the run as diverged: the checkpoints not yet
    written (final among them) are marked diverged and hold no weights, and
    metrics.csv ends with the non-finite epoch.
    """
    torch.set_num_threads(threads)
    fit = architecture(settings["model"]["architecture"]).fit
    if fit is not None:  # weights in closed form (pca): nothing to train
        return fitted(fit, data, settings, seed, Path(out_dir), log)
    seed_everything(seed)
    training, out_dir = settings["training"], Path(out_dir)
    work = out_dir / RESUME_DIR
    device = pick_device(training.get("device", "cpu"), log)
    log(f"training on {device}")
    splits = {split: load_split(data, split) for split in SPLITS}
    x_train, y_train = splits["train"]
    input_shape = tuple(x_train.shape[1:])
    identity = {"settings": settings, "seed": seed,
                "data": fingerprint(*(t for pair in splits.values() for t in pair)),
                "code": code_hash("train"), "device": device.type, "format": FORMAT_VERSION}
    splits = {split: (x.to(device), y.to(device)) for split, (x, y) in splits.items()}
    x_train, y_train = splits["train"]
    model = build_model(settings["model"], input_shape).to(device)
    log(f"{settings['model']['architecture']}: "
        f"{sum(p.numel() for p in model.parameters()):,} parameters")
    precision = training.get("precision", "fp32")
    # fp16's narrow range needs the loss scaled against underflowing gradients; bf16's does not.
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    optimizer = torch.optim.Adam(model.parameters(), lr=training["lr"],
                                 weight_decay=training.get("weight_decay", DEFAULT_WEIGHT_DECAY))
    order = torch.Generator().manual_seed(seed)
    noise = noise_stream(seed, TRAIN_NOISE)
    loss = objective_loss(training.get("objective", DEFAULT_OBJECTIVE))
    recon = training["loss"]
    epoch_steps = training.get("epoch_steps")
    steps_per_epoch = epoch_steps or math.ceil(len(x_train) / training["batch_size"])
    wanted = sorted(settings["checkpoints"])

    def evaluated(names, epoch):
        return split_metrics(model, loss, splits, names, epoch * steps_per_epoch, recon,
                             precision)

    def checkpoint(name, state_dict, epoch, diverged=""):
        save_checkpoint(work / f"{name}.pt", state_dict, settings, input_shape, seed, epoch,
                        diverged)

    def save_progress():
        save({**progress, "identity": identity, "model": model.state_dict(),
              "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
              "order": order.get_state(),
              "noise": noise.get_state(), "rng": rng_states()}, work / "state.pt")

    progress = load_progress(work / "state.pt", identity, log)
    if progress is None:
        shutil.rmtree(work, ignore_errors=True)
        drop_stacked_progress(out_dir.parent, seed)
        progress = first_progress(model, evaluated(SPLITS, 0), training, log)
        if 0 in wanted:
            checkpoint("epoch0", model.state_dict(), 0)
        save_progress()
    else:
        model.load_state_dict(progress["model"])
        optimizer.load_state_dict(progress["optimizer"])
        scaler.load_state_dict(progress["scaler"])
        order.set_state(progress["order"])
        noise.set_state(progress["noise"])
        set_rng_states(progress["rng"])

    while not progress["done"]:
        epoch = progress["epoch"] + 1
        start = time.perf_counter()
        model.train()
        totals = {}
        batches, progress["queue"] = epoch_batches(len(x_train), training["batch_size"],
                                                   epoch_steps, order, progress["queue"])
        for step, idx in enumerate(batches, 1):
            bar(step, len(batches), f"epoch {epoch}/{training['max_epochs']}")
            idx = idx.to(device)
            batch = Batch(x_train[idx], y_train[idx], (epoch - 1) * steps_per_epoch + step - 1,
                          recon, noise, len(x_train))
            with autocast(device, precision):
                terms = loss.terms(model.by_role(loss.inputs(batch), noise), batch)
            optimizer.zero_grad()
            scaler.scale(terms["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            add_terms(totals, terms, len(idx))
        trained = sum(len(idx) for idx in batches)
        row = {"epoch": epoch, **split_columns("train", {
            name: total / trained for name, total in totals.items()}),
            **evaluated(SPLITS[1:], epoch)}
        row["seconds"] = time.perf_counter() - start
        if not end_epoch(progress, row, model, settings, seed, on_divergence, log):
            break  # not saved as progress: a resumed run diverges again, deterministically
        if epoch in wanted:
            checkpoint(f"epoch{epoch}", model.state_dict(), epoch)
        save_progress()

    last_checkpoints(progress, wanted, checkpoint)
    publish(work, out_dir, [f"epoch{e}" for e in wanted] + ["final"], settings["variant"], seed,
            progress["rows"])
    shutil.rmtree(work)
    return progress["rows"]


def first_progress(model, metrics, training, log):
    """A run's progress before its first epoch: the untrained `model` and its
    `metrics` on every split (epoch 0's row), the best so far."""
    row = {"epoch": 0, **metrics, "seconds": 0.0}
    log(f"epoch 0: train {row['train_loss']:.5f}  val {row['val_loss']:.5f}")
    return {"epoch": 0, "rows": [row], "best": row["val_loss"],
            "best_epoch": 0, "best_model": clone(model.state_dict()), "waited": 0,
            "done": training["max_epochs"] == 0, "queue": torch.empty(0, dtype=torch.long)}


def end_epoch(progress, row, model, settings, seed, on_divergence, log):
    """Add the epoch `row` just trained (`model` as it left it) to the run's
    `progress`: its best weights, early stopping, the end of training. False
    where the run diverged (see train's on_divergence; progress["diverged"]
    says how)."""
    training, epoch = settings["training"], row["epoch"]
    progress["rows"].append(row)
    try:
        check_finite(model, settings, seed, progress["rows"])
    except FloatingPointError as error:
        if on_divergence != "exclude":
            raise
        log(f"{error}\nrecorded as diverged (training.on_divergence: exclude); this seed "
            "is left out of the consistency statistics and the measures")
        progress["diverged"] = str(error)
        return False
    progress["epoch"] = epoch
    if row["val_loss"] < progress["best"]:
        progress.update(best=row["val_loss"], best_epoch=epoch, waited=0,
                        best_model=clone(model.state_dict()))
    else:
        progress["waited"] += 1
    seconds = row["seconds"]
    eta = seconds * (training["max_epochs"] - epoch)
    log(f"epoch {epoch}: train {row['train_loss']:.5f}  val {row['val_loss']:.5f}  "
        f"{seconds:.2f} s  (at most {eta:.0f} s to go)")
    stop = training["patience"] is not None and progress["waited"] >= training["patience"]
    if stop:
        log(f"early stop after epoch {epoch}: no improvement for {progress['waited']} epochs "
            f"(best {progress['best']:.5f} at epoch {progress['best_epoch']})")
    progress["done"] = epoch == training["max_epochs"] or stop
    return True


def last_checkpoints(progress, wanted, checkpoint):
    """Write the checkpoints of the `wanted` epochs training did not reach,
    and final: the best weights, or for a diverged run none, marked."""
    if "diverged" in progress:
        for name in [f"epoch{e}" for e in wanted if e > progress["epoch"]] + ["final"]:
            checkpoint(name, {}, progress["epoch"] + 1, progress["diverged"])
        return
    for e in wanted:
        if e > progress["epoch"]:
            checkpoint(f"epoch{e}", progress["best_model"], progress["best_epoch"])
    checkpoint("final", progress["best_model"], progress["best_epoch"])


def fitted(fit, data, settings, seed, out_dir, log):
    """train() for a model whose weights come from the training images in
    closed form (`fit`, e.g. PCA's SVD): every checkpoint holds the fitted
    weights (0 epochs of training), and metrics.csv one row, epoch 0, with
    the columns a trained model's has: each term of the objective for the
    fitted model on each split, then the seconds fitting and evaluating took.
    Deterministic, so the seed changes nothing."""
    start = time.perf_counter()
    splits = {split: load_split(data, split) for split in SPLITS}
    x_train = splits["train"][0]
    input_shape = tuple(x_train.shape[1:])
    model = build_model(settings["model"], input_shape)
    fit(model, x_train)
    training = settings["training"]
    loss = objective_loss(training.get("objective", DEFAULT_OBJECTIVE))
    row = {"epoch": 0, **split_metrics(model, loss, splits, SPLITS, 0, training["loss"])}
    row["seconds"] = time.perf_counter() - start
    log(f"fitted {settings['model']['architecture']}: train {row['train_loss']:.5f}  "
        f"val {row['val_loss']:.5f}")
    work = out_dir / RESUME_DIR
    names = [f"epoch{e}" for e in sorted(settings["checkpoints"])] + ["final"]
    for name in names:
        save_checkpoint(work / f"{name}.pt", model.state_dict(), settings, input_shape, seed, 0)
    publish(work, out_dir, names, settings["variant"], seed, [row])
    shutil.rmtree(work)
    return [row]


def check_finite(model, settings, seed, rows):
    """Stop a diverged run, whose last row of metrics `rows` holds a term that
    is not finite or whose weights are not, with an error that says which run
    and when."""
    row, last = rows[-1], rows[-2]
    exploded = not all(torch.isfinite(p).all() for p in model.parameters())
    terms = {column: value for column, value in row.items() if column not in ("epoch", "seconds")}
    if all(np.isfinite(value) for value in terms.values()) and not exploded:
        return
    what = ("weights are no longer finite" if exploded else
            f"loss is {row['train_loss']} / {row['val_loss']}")
    raise FloatingPointError(
        f"variant {settings['variant']!r} seed {seed} diverged at epoch {row['epoch']} ({what}); "
        f"last finite validation loss {last['val_loss']:.5g} at epoch {last['epoch']}. "
        "Lower training.lr.")


def publish(work, out_dir, names, variant, seed, rows):
    """Copy the finished checkpoints out of `work` and write metrics.csv.

    The caller drops `work` only once every output is in place, so that a
    run killed while publishing publishes again when restarted."""
    for name in names:
        with atomic_path(out_dir / "checkpoints" / f"{name}.pt") as tmp:
            shutil.copyfile(work / f"{name}.pt", tmp)
    columns = list(rows[0])
    with atomic_path(out_dir / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", *columns])
        writer.writerows([variant, seed, *(format_metric(column, row[column]) for column in columns)]
                         for row in rows)


def format_metric(column, value):
    if column == "epoch":
        return value
    return f"{value:.3f}" if column == "seconds" else f"{value:.8g}"


def load_checkpoint(path):
    """A trained model and its checkpoint record, read without running pickled code
    (torch.load weights_only=True); a damaged checkpoint, one of another file
    format or one whose weights do not fit its settings raises InputError.

    The model is None for a checkpoint of a run that diverged."""
    from hourglass.checks import load_checkpoint as checked

    return checked(path)
