"""Training one seed: hourglass's train() against a bare PyTorch loop doing the same work.

Run: .venv/bin/python benchmarks/training.py [--device cuda] [--epochs 2] [--images 20000]
                                               [--stack 10]

The consistency paper's fully connected autoencoder (784-512-256-128-64-8-
64-128-256-512-784, ReLU, Glorot-uniform, a sigmoid output; Adam, lr 0.001,
batch 128, MSE: configs/fashion_mnist_consistency.yaml, variant latent8) on
the Fashion-MNIST data of the 20,000-image study (fashion_mnist_consistency_20k
.yaml: `--images` training images, 10% of the 60,000 held out for validation,
all 10,000 test images), prepared by hourglass's data stage into a temporary
folder. Side by side in one process, on the same device and threads:

  hourglass train()  one seed for --epochs epochs, writing its checkpoints,
                     metrics and resumable progress into a temporary folder,
                     timed whole: reading the data file, the evaluation of the
                     untrained model (epoch 0), the files; nothing subtracted.
  bare loop          the same model from build_model (the same seed, so the
                     same initial weights), Adam, the minibatches in train()'s
                     order, `loss = F.mse_loss(model(x), x); opt.zero_grad();
                     loss.backward(); opt.step()`, and the evaluation train()
                     does: every split's loss at epoch 0, the validation and
                     test losses after every epoch, in batches of 1,024 without
                     gradients. Its tensors are in memory before it starts.

Prints the seconds per epoch of each, all in and within the epochs alone
(hourglass's metrics.csv seconds: the training pass and the evaluation), the
ratios hourglass / bare, the CPU seconds other processes used meanwhile (a
"contended" row was measured beside other work), and each epoch's training
and validation losses of both, which must agree: same weights, same order.

With --stack N, instead: N seeds (--seed on) trained one after another by
train() and all together by training.stack_seeds (hourglass.stacked), both
writing their files; the seconds of each, the ratio (targets: on CPU at most
x1.1; on a GPU the N stacked seeds in at most twice one seed's time), and
whether each seed's checkpoints are the same bytes both ways.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the workflow's stages run (hourglass.cli)
# cuBLAS is deterministic only with a fixed workspace, set before its first call:
# train() sets it too, but the bare loop may call cuBLAS first.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from hourglass.data import load_split, prepare  # noqa: E402
from hourglass.models import build_model  # noqa: E402
from hourglass.stacked import train_stacked  # noqa: E402
from hourglass.train import EVAL_BATCH, SPLITS, train  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from timing import contended, timed  # noqa: E402  (beside this script, not a package)

MODEL = {"architecture": "fc", "widths": [512, 256, 128, 64], "latent": 8,
         "bottleneck_layers": 1, "activation": "relu", "latent_activation": "relu",
         "init": "glorot_uniform"}
TRAINING = {"loss": "mse", "objective": {"name": "reconstruction"}, "lr": 0.001,
            "weight_decay": 0, "batch_size": 128, "epoch_steps": None, "patience": None,
            "precision": "fp32"}  # patience None: no early stop, which the bare loop lacks
CHECKPOINTS = [0, 1, 2, 4, 8, 16, 32]  # the 20,000-image study's
VAL_FRACTION, SPLIT_SEED = 0.1, 0  # the schema's defaults, as the study has them


def settings(epochs, device):
    """What the workflow hands train() for variant latent8 (variant_settings),
    less the checkpoints after the last epoch: the rest are written as a real
    run writes them."""
    return {"variant": "latent8", "model": MODEL,
            "training": {**TRAINING, "max_epochs": epochs, "device": device},
            "checkpoints": [e for e in CHECKPOINTS if e <= epochs]}


def run_hourglass(data, epochs, seed, device, threads, out_dir):
    """train()'s metrics rows; its progress lines would interleave with the table."""
    return train(data, settings(epochs, device), seed, out_dir, threads=threads,
                 log=lambda line: None)


def compare_stacked(data, seeds, epochs, device, threads, tmp):
    """The --stack table: `seeds` trained one by one and stacked."""
    alone, stacked = Path(tmp) / "alone", Path(tmp) / "stacked"
    together = settings(epochs, device)
    together["training"] = {**together["training"], "stack_seeds": True}
    runs = {
        "one by one": timed(lambda: [run_hourglass(data, epochs, seed, device, threads,
                                                   alone / f"seed{seed}") for seed in seeds],
                            device),
        "stacked": timed(lambda: train_stacked(data, together, seeds, stacked, threads=threads,
                                               log=lambda line: None), device),
    }
    print(f"  {len(seeds)} seeds {'':7} {'total s':>8} {'s/seed':>8} {'others s':>8}")
    for label, (seconds, other, _) in runs.items():
        print(f"  {label:18} {seconds:8.2f} {seconds / len(seeds):8.2f} {other:8.2f}"
              f"{contended(seconds, other)}")
    one_by_one, together = runs["one by one"][0], runs["stacked"][0]
    print(f"  stacked / one by one: x{together / one_by_one:.3f} (target on CPU: at most x1.1); "
          f"stacked / one seed: x{together / (one_by_one / len(seeds)):.2f} "
          "(target on a GPU: at most x2)")
    files = [path.relative_to(alone) for path in sorted(alone.rglob("checkpoints/*.pt"))]
    same = sum((alone / f).read_bytes() == (stacked / f).read_bytes() for f in files)
    print(f"  checkpoints the same bytes both ways: {same} of {len(files)}")


def mean_loss(model, x):
    """The MSE of `model` on `x`, image-weighted over batches, without gradients."""
    model.eval()
    with torch.no_grad():
        total = sum(F.mse_loss(model(xb), xb).item() * len(xb) for xb in x.split(EVAL_BATCH))
    return total / len(x)


def run_bare(splits, epochs, seed):
    """The bare loop: rows of {epoch, train_loss, val_loss, seconds} as train()'s."""
    x_train, x_val, x_test = (splits[split] for split in SPLITS)
    torch.manual_seed(seed)  # train() seeds torch so before building the model
    model = build_model(MODEL, x_train.shape[1:]).to(x_train.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=TRAINING["lr"])
    order = torch.Generator().manual_seed(seed)  # train()'s minibatch order
    rows = [{"epoch": 0, "train_loss": mean_loss(model, x_train),
             "val_loss": mean_loss(model, x_val), "test_loss": mean_loss(model, x_test)}]
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=order).split(TRAINING["batch_size"]):
            x = x_train[idx.to(x_train.device)]
            loss = F.mse_loss(model(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)  # the epoch's training loss, as train() reports it
        rows.append({"epoch": epoch, "train_loss": total / len(x_train),
                     "val_loss": mean_loss(model, x_val), "test_loss": mean_loss(model, x_test),
                     "seconds": time.perf_counter() - start})
    return rows


def warm_up(x):
    """One untimed step of a throwaway model: the thread pool, and on a GPU the
    context and cuBLAS, start here rather than in whichever run comes first."""
    model = build_model(MODEL, x.shape[1:]).to(x.device)
    F.mse_loss(model(x[:TRAINING["batch_size"]]), x[:TRAINING["batch_size"]]).backward()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=20000, help="training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stack", type=int, metavar="N",
                        help="compare N seeds trained one by one and stacked (training.stack_seeds)")
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist",
                        help="Debian's dataset-fashion-mnist files, or a torchvision data folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)  # train() sets it, for itself and what runs after
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "fashion_mnist.h5"
        prepare("fashion_mnist", args.root, False, VAL_FRACTION, args.images, None, SPLIT_SEED,
                data)
        splits = {split: load_split(data, split)[0].to(device) for split in SPLITS}
        model = build_model(MODEL, splits["train"].shape[1:])
        pixels = splits["train"][0].numel()
        widths = [pixels, *MODEL["widths"], MODEL["latent"], *MODEL["widths"][::-1], pixels]
        print(f"fc {'-'.join(map(str, widths))}, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters; Fashion-MNIST "
              + ", ".join(f"{len(x):,} {split}" for split, x in splits.items())
              + f" images; {args.epochs} epochs of seed {args.seed}, batch {TRAINING['batch_size']}, "
              f"{args.threads} thread(s), {args.device}", flush=True)
        warm_up(splits["train"])
        if args.stack:
            return compare_stacked(data, list(range(args.seed, args.seed + args.stack)),
                                   args.epochs, args.device, args.threads, tmp)
        runs = {
            "hourglass train()": timed(lambda: run_hourglass(
                data, args.epochs, args.seed, args.device, args.threads, Path(tmp) / "run"),
                args.device),
            "bare loop": timed(lambda: run_bare(splits, args.epochs, args.seed), args.device),
        }

    print(f"  {'':18} {'total s':>8} {'s/epoch':>8} {'in-epoch s':>10} {'others s':>8}")
    per_epoch, in_epoch = {}, {}
    for label, (seconds, other, rows) in runs.items():
        per_epoch[label] = seconds / args.epochs
        in_epoch[label] = sum(row["seconds"] for row in rows[1:]) / args.epochs
        print(f"  {label:18} {seconds:8.2f} {per_epoch[label]:8.2f} {in_epoch[label]:10.2f} "
              f"{other:8.2f}{contended(seconds, other)}", flush=True)
    hourglass, bare = (runs[label][2] for label in runs)
    print(f"  hourglass / bare: x{per_epoch['hourglass train()'] / per_epoch['bare loop']:.3f} "
          f"per epoch all in, x{in_epoch['hourglass train()'] / in_epoch['bare loop']:.3f} "
          "within the epochs (target: at most x1.1)")
    print(f"  {'epoch':>5} {'train loss':>12} {'bare':>12} {'|diff|':>8} "
          f"{'val loss':>12} {'bare':>12} {'|diff|':>8}")
    for ours, theirs in zip(hourglass, bare):
        print(f"  {ours['epoch']:5d} {ours['train_loss']:12.6f} {theirs['train_loss']:12.6f} "
              f"{abs(ours['train_loss'] - theirs['train_loss']):8.1e} {ours['val_loss']:12.6f} "
              f"{theirs['val_loss']:12.6f} {abs(ours['val_loss'] - theirs['val_loss']):8.1e}")


if __name__ == "__main__":
    main()
