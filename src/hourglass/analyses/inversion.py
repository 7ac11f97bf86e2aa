"""Input representations and depth (Badger): invert every layer of a
network by gradient descent on the input (hourglass.inversion), untrained
and trained, and record how close the candidate's activation (m_g, against
a slightly noised copy's m_r) and the candidate itself (m_i) came.

What is inverted: each variant's models of `seeds` at checkpoint 0
(untrained) and at the end of training (trained), on the first `images`
probe images of the variant's data, every layer but the input (or
`layers`); and each of `networks`, a library network the workflow does not
train (hourglass.networks: torchvision ResNets, untrained or with ImageNet
weights; MLPs of given widths), on the photographs of `photos` at the
network's input size. A network may override any setting of the descent.

Tables: `inversion` (a row per network, state, seed, layer, image and
recorded iteration); image file `generated`: per network and seed, a row
per layer of its first image: the target, then the final candidate of each
state.
"""

import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hourglass.checks import load_checkpoint
from hourglass.data import load_split
from hourglass.inversion import Settings, invert
from hourglass.io import concat_images, write_images, write_table
from hourglass.models import ROLES
from hourglass.networks import fitted, folder_images, mlp, resnet, sample_images
from hourglass.progress import every, log_line

ENGINE = tuple(Settings.__dataclass_fields__)
COLUMNS = ["network", "architecture", "activation", "seed", "state", "layer", "layer_index",
           "region", "values", "input_values", "image", "iteration", "m_g", "m_r", "m_i"]


def engine_settings(settings, network=None):
    """The descent's Settings: the analysis's, overridden by a network's own."""
    chosen = {**settings, **(network or {})}
    return Settings(**{k: chosen[k] for k in ENGINE if k in chosen})


def photos(settings):
    """The photographs the networks are inverted on, uint8, with their names."""
    source = settings["photos"]
    images, names = (sample_images() if source["source"] == "sample_images"
                     else folder_images(source["path"]))
    count = source.get("count") or len(images)
    if count > len(images):
        raise ValueError(f"analyses.inversion.photos.count {count}, but {source['source']} "
                         f"holds {len(images)} images; ask for fewer")
    return images[:count], names[:count]


def network_models(name, network, seed):
    """(state, model, input shape) of library network `name`, per state."""
    if network["architecture"] == "mlp":
        shape = (3, network["side"], network["side"])
        return [("untrained", mlp(network["widths"], network["activation"], shape, seed), shape)]
    return [(weights, resnet(network["architecture"], weights, seed),
             (3, network["side"], network["side"])) for weights in network["weights"]]


def layer_values(model, x):
    """The number of values of each layer's activation for one image of `x`."""
    with torch.no_grad():
        return {name: math.prod(value.shape[1:]) for name, value in model.layers(x[:1]).items()}


def inverted(model, layers, x, names, settings, identity, threads):
    """Invert `layers` of `model` on images `x` (named `names`): the table
    rows, and the final candidates (layers x images x input shape)."""
    torch.set_num_threads(threads)
    values = layer_values(model, x)  # before invert() casts the model
    what = f"{identity['network']} (seed {identity['seed']}, {identity['state']})"
    start = time.perf_counter()
    result = invert(model, layers, x, settings,
                    progress=every(60, lambda line: log_line(f"{what}: {line}")))
    log_line(f"{what}: {len(layers)} layers x {len(x)} images x {settings.iterations} steps "
             f"in {time.perf_counter() - start:.1f} s; m_i/start at the last step: "
             + ", ".join(f"{layer} {result.m_i[k, :, -1].mean() / result.m_i[k, :, 0].mean():.2f}"
                         for k, layer in enumerate(layers)))
    index = {name: k for k, name in enumerate(model.layer_names)}
    rows = [{**identity, "layer": layer, "layer_index": index[layer],
             "region": ROLES[model.layer_roles[index[layer]]], "values": values[layer],
             "input_values": values["input"], "image": image, "iteration": step,
             "m_g": result.m_g[k, j, s], "m_r": result.m_r[k, j], "m_i": result.m_i[k, j, s]}
            for k, layer in enumerate(result.layers) for j, image in enumerate(names)
            for s, step in enumerate(result.steps)]
    return rows, result.generated


def variant_runs(untrained, checkpoints, data, settings):
    """(identity, {state: model}, images, image names) per variant and seed inverted."""
    by_key = {}
    for state, paths in (("untrained", untrained), ("trained", checkpoints)):
        for path in paths:
            model, record = load_checkpoint(path)
            if record["seed"] not in settings["seeds"]:
                continue
            key = (record["variant"], record["seed"])
            by_key.setdefault(key, {"record": record, "models": {}})["models"][state] = model
    files = dict(zip(settings["variants"], data))
    for (variant, seed), found in by_key.items():
        x = load_split(files[variant], "probe")[0]
        if len(x) < settings["images"]:
            raise ValueError(f"analyses.inversion.images asks for {settings['images']} probe "
                             f"images, but variant {variant!r} has {len(x)}; ask for fewer")
        model = found["record"]["model"]
        yield ({"network": variant, "architecture": model["architecture"],
                "activation": model.get("activation", ""), "seed": seed}, found["models"],
               x[:settings["images"]], [f"probe {j}" for j in range(settings["images"])])


def first_image_grid(layers, x, generated):
    """A grid of the first image: a row per layer, the target and then each
    state's final candidate."""
    return np.stack([np.stack([x[0].numpy(), *(g[k, 0] for g in generated.values())])
                     for k in range(len(layers))])


def run(untrained, checkpoints, data, settings, out, threads=1):
    """Tables `inversion` and image file `generated` (see the module)."""
    rows, grids = [], {}  # grids: {network: (layers, states, {seed: grid})}
    for identity, models, x, names in variant_runs(untrained, checkpoints, data, settings):
        engine = engine_settings(settings)
        diverged = [state for state, model in models.items() if model is None]
        if diverged:
            raise ValueError(f"variant {identity['network']} seed {identity['seed']} diverged "
                             f"({', '.join(diverged)}): nothing to invert; drop it from "
                             "analyses.inversion.seeds")
        layers = settings["layers"] or next(iter(models.values())).layer_names[1:]
        generated = {}
        for state, model in models.items():
            found, generated[state] = inverted(model, layers, x, names, engine,
                                               {**identity, "state": state}, threads)
            rows += found
        grids.setdefault(identity["network"], (layers, list(generated), {}))[2][
            identity["seed"]] = first_image_grid(layers, x, generated)
    for name, network in settings["networks"].items():
        images, names = photos(settings)
        engine = engine_settings(settings, network)
        generated = {}
        for state, model, shape in network_models(name, network, engine.seed):
            x = fitted(images, shape[-1])
            layers = network.get("layers") or model.layer_names[1:]
            identity = {"network": name, "architecture": network["architecture"],
                        "activation": network.get("activation", ""), "seed": engine.seed,
                        "state": state}
            found, generated[state] = inverted(model, layers, x, names, engine, identity,
                                               threads)
            rows += found
        grids[name] = (layers, list(generated),
                       {engine.seed: first_image_grid(layers, x, generated)})
    write_table(pd.DataFrame(rows, columns=COLUMNS), out["inversion"])
    write_generated(grids, out["generated"])


def write_generated(grids, out):
    """Image file `generated`: a group per network of its grids per seed
    (first_image_grid), through the image files of hourglass.io."""
    folder = Path(tempfile.mkdtemp(dir=Path(out).parent))
    try:
        paths = [folder / f"{k}.h5" for k in range(len(grids))]
        for path, (network, (layers, states, images)) in zip(paths, grids.items()):
            write_images(path, images, variant=network, grid={}, rows=list(layers),
                         columns=["target", *states], diverged={})
        concat_images(paths, out)
    finally:
        shutil.rmtree(folder)
