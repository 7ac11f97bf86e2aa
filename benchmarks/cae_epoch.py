"""Seconds per training epoch of Manakov et al.'s cae at 96 x 96, as the
tightrope studies train it (10,000 images, batch 32, Adam, MSE), in fp32 and
mixed precision, on the CPU or a GPU.

Run: .venv/bin/python benchmarks/cae_epoch.py [--device cuda] [--steps 5]

Times `--steps` optimiser steps after one warm-up step, per area and
compression, and prints the seconds an epoch of 313 steps takes at that
rate, side by side for each precision, with the parameter count, and how
far each precision's loss of the same initial weights lies from the first's
(the precisions must agree).
"""

import argparse
import copy
import time

import torch
from torch.nn import functional as F

from hourglass.models import build_model
from hourglass.train import PRECISIONS, autocast

EPOCH_STEPS = 313  # 10,000 images in batches of 32


def seconds_per_step(model, x, precision, steps):
    """Seconds per optimiser step on batch `x`, and the loss of the first."""
    device = x.device
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step():
        with autocast(device, precision):
            loss = F.mse_loss(model(x).float(), x)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.item()

    first = step()  # warm-up: allocations, kernels chosen; the loss of the initial weights
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps, first


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=5)
    # fp16 on a CPU: more than 2.5 min a step here (bf16 is the CPU's mixed precision)
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS,
                        help="default: fp32 bf16 on the CPU, all on cuda")
    parser.add_argument("--compressions", nargs="+", type=float, default=[1 / 64, 1])
    args = parser.parse_args()
    device = torch.device(args.device)
    args.precisions = args.precisions or (list(PRECISIONS) if device.type == "cuda"
                                          else ["fp32", "bf16"])
    print(f"{'area':4} {'compression':>11} {'parameters':>11} "
          + " ".join(f"{p + ' s/epoch':>14}" for p in args.precisions)
          + f" {'loss rel. diff':>14}", flush=True)
    for area in "SML":
        for compression in args.compressions:
            torch.manual_seed(0)
            settings = dict(architecture="cae", levels=5, area=area, compression=compression,
                            final_norm=True)
            model = build_model(settings, (3, 96, 96)).to(device)
            # each precision trains its own copy of the same initial weights
            x = torch.rand(32, 3, 96, 96, generator=torch.Generator().manual_seed(0)).to(device)
            runs = [seconds_per_step(copy.deepcopy(model), x, p, args.steps)
                    for p in args.precisions]
            losses = [loss for _, loss in runs]
            # agreement: the initial loss in each precision against the first's
            differences = max(abs(loss - losses[0]) / losses[0] for loss in losses)
            print(f"{area:4} {compression:11.4g} {sum(p.numel() for p in model.parameters()):11,} "
                  + " ".join(f"{t * EPOCH_STEPS:14.1f}" for t, _ in runs)
                  + f" {differences:14.2e}", flush=True)


if __name__ == "__main__":
    main()
