"""Walks through an autoencoder's code space (Manakov et al., section 3.5),
two qualitative views of what a bottleneck learned, as image grids:

- interpolation: encode pairs of test images, interpolate linearly between
  the two codes, and decode each point (a row per pair: the first image,
  the decoded points, the second image);
- iteration: feed a test image's reconstruction back into the model again
  and again (a row per image: the image and every `every`th reconstruction).

Each seed's final model walks the same test images (the first of the
variant's test split), so rows compare across variants and seeds.
"""

import numpy as np
import torch

from hourglass.analyses.probes import code_layer
from hourglass.checks import load_checkpoint
from hourglass.data import load_split
from hourglass.io import write_images


def interpolate(model, a, b, steps):
    """Image `a`, the decodings of `steps` codes evenly spaced from the code
    of `a` to that of `b` (both ends included), and image `b`: (steps + 2)
    x C x H x W."""
    layer = code_layer(model)
    with torch.no_grad():
        codes = model.layers(torch.stack([a, b]))[layer]
        t = torch.linspace(0, 1, steps, dtype=codes.dtype).view(-1, *[1] * (codes.dim() - 1))
        decoded = list(model.decode(layer, (1 - t) * codes[0] + t * codes[1]).values())[-1]
    return torch.cat([a[None], decoded, b[None]]).numpy()


def iteration_steps(iterations, every):
    """The steps an iteration grid shows: 0 (the image), every `every`th, and the last."""
    return sorted({*range(0, iterations + 1, every), iterations})


def iterate(model, x, iterations, every):
    """Images `x` and their reconstructions fed back `iterations` times, at
    iteration_steps: images x steps x C x H x W."""
    shown, kept = iteration_steps(iterations, every), [x]
    with torch.no_grad():
        for step in range(1, iterations + 1):
            x = model(x)
            if step in shown:
                kept.append(x)
    return torch.stack(kept, 1).numpy()


def first_images(data, count, setting, split="test"):
    """The first `count` images of a split of the data file, or a clear error."""
    x = load_split(data, split)[0]
    if len(x) < count:
        raise ValueError(f"{setting} asks for {count} {split} images, but {data} holds "
                         f"{len(x)}; ask for fewer")
    return x[:count]


def write_grids(checkpoints, settings, out, grid_of, columns):
    """Each seed's grid (`grid_of(model)`) of its final model, None where it
    diverged, written with the variant, its grid settings and the columns."""
    images, diverged, record = {}, {}, None
    for path in checkpoints:
        model, record = load_checkpoint(path)
        seed = record["seed"]
        images[seed] = None if model is None else grid_of(model)
        if model is None:
            diverged[seed] = record["diverged"]
    grid = {k: record["model"].get(k) for k in settings["grid"]}
    write_images(out, images, variant=record["variant"], grid=grid, columns=columns,
                 diverged=diverged)


def interpolation(checkpoints, data, settings, out, threads=1):
    """Image file `interpolation`: per seed, a row per pair of test images
    (the 1st and 2nd, the 3rd and 4th, ...) interpolated in `steps` points."""
    torch.set_num_threads(threads)
    pairs, steps = settings["pairs"], settings["steps"]
    x = first_images(data, 2 * pairs, f"analyses.interpolation.pairs: {pairs} pairs")
    columns = ["image a", *(f"t={t:.2g}" for t in np.linspace(0, 1, steps)), "image b"]
    write_grids(checkpoints, settings, out["interpolation"], lambda model: np.stack(
        [interpolate(model, x[2 * k], x[2 * k + 1], steps) for k in range(pairs)]), columns)


def iteration(checkpoints, data, settings, out, threads=1):
    """Image file `iteration`: per seed, a row per test image and its
    reconstructions fed back `iterations` times, every `every`th shown."""
    torch.set_num_threads(threads)
    x = first_images(data, settings["images"], "analyses.iteration.images")
    columns = ["image", *(f"{step}" for step in iteration_steps(settings["iterations"],
                                                                settings["every"])[1:])]
    write_grids(checkpoints, settings, out["iteration"],
                lambda model: iterate(model, x, settings["iterations"], settings["every"]),
                columns)
