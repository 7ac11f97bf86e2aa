"""Inversions per second of hourglass.inversion: every stage of an untrained
ResNet and two images in one batch (deepest layer first, each stage run only
for the candidates that need it) against one run per (layer, image), side
by side in one process, on the CPU or a GPU.

Run: .venv/bin/python benchmarks/inversion.py [--network resnet50] [--side 64]
     [--iterations 20] [--dtype float64] [--device cuda] [--threads 2]

Prints, for each way, the seconds and the rate in inversions per second
(layers x images x iterations / seconds), and how far the batch's final
candidates and m_i lie from the one-at-a-time runs'. In float64 they agree
exactly. In float32, convolutions of another batch size round differently,
and where a residual of the L1 loss rounds across zero its sign, hence that
value's gradient, flips: single values of the candidates part, while m_i
stays close.
"""

import argparse
import time

import numpy as np
import torch

from hourglass.inversion import Settings, invert
from hourglass.networks import RESNET_STAGES, fitted, resnet, sample_images


def timed(run):
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="resnet50", choices=["resnet18", "resnet50",
                                                                  "resnet152"])
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = fitted(sample_images()[0], args.side)
    layers = list(RESNET_STAGES)
    settings = Settings(iterations=args.iterations, record_every=args.iterations,
                        normalise=True, eps_start=0.05, eps_end=0.005, device=args.device,
                        dtype=args.dtype)
    model = resnet(args.network, "untrained", seed=0)
    invert(model, layers[:1], x[:1], Settings(iterations=2, device=args.device,
                                              dtype=args.dtype))  # warm-up
    work = len(layers) * len(x) * args.iterations
    batched_s, batched = timed(lambda: invert(model, layers, x, settings))
    alone_s, alone = timed(lambda: [[invert(model, [layer], x[j:j + 1], settings, keys=[j])
                                     for j in range(len(x))] for layer in layers])
    pairs = [(k, j) for k in range(len(layers)) for j in range(len(x))]
    gap = max(np.abs(batched.generated[k, j] - alone[k][j].generated[0, 0]).max()
              for k, j in pairs)
    m_i_gap = max(abs(batched.m_i[k, j, -1] / alone[k][j].m_i[0, 0, -1] - 1) for k, j in pairs)
    print(f"{args.network} at {args.side} x {args.side}, {len(layers)} layers x {len(x)} images "
          f"x {args.iterations} iterations, {args.dtype}, on {args.device} "
          f"({args.threads} threads)")
    for name, seconds in (("batched", batched_s), ("one at a time", alone_s)):
        print(f"  {name:14s} {seconds:7.2f} s  {work / seconds:8.1f} inversions/s")
    print(f"  batched / one at a time: {alone_s / batched_s:.2f}x faster; "
          f"largest difference of a final candidate's value: {gap:.2e}, of a final m_i "
          f"(relative): {m_i_gap:.2e}")


if __name__ == "__main__":
    main()
