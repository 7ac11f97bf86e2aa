"""Inverting a layer by gradient descent on the input (Badger, "Input
Representations and Depth"): how much of an image a layer's activation
still determines.

For a target image t and a layer l, start from noise a₀ ~ N(0.7, 1/20) and
descend on the input, a ← a − ε ∇ scale·Σ|O_l(a) − O_l(t)|, smoothing the
candidate with a Gaussian blur after every step. Recorded along the way:

- m_g = ‖O_l(t) − O_l(a)‖₂, how close the candidate's activation came;
- m_i = ‖a − t‖₂, how close the candidate itself came;
- m_r = ‖O_l(t) − O_l(t′)‖₂ once, with t′ = t + N(0, 1/25): the activation
  distance of a barely changed image, the scale m_g is read against.

m_g < m_r with a large m_i means the layer maps a different image as close
to the target's activation as a slightly noised copy: the forward map is
not one to one there, and optimisation did not fail.

Every (layer, image) pair is one candidate; all candidates of one model run
as one batch, ordered deepest layer first so that each stage of the chain
computes only for the candidates that still need it. Each candidate's start
is drawn from its own stream, keyed by the seed, its layer and its image's
index, so a batch gives what one-at-a-time runs give.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from hourglass.models import Reparameterise
from hourglass.train import noise_stream

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Settings:
    """The descent: `iterations` steps of size ε, linear from `eps_start` to
    `eps_end`; after each a Gaussian blur of `kernel_size` with σ linear from
    `blur_start` to `blur_end` (`blur` false: none) and, where `clamp`, a
    clip to [0, 1]; the loss is `scale` times the L1 distance of the
    activations. Where `normalise`, each candidate's gradient is divided by
    its root mean square over the input's values, so that ε is the step of a
    typical input value whatever the layer's scale (an untrained deep
    ResNet's activations, and so its gradients, grow by orders of magnitude
    with depth, and one ε cannot suit every layer; Badger's step is plain).
    m_g and m_i are recorded every `record_every` steps and after the last.
    The start is N(`start_mean`, `start_sd`), the reference t + N(0,
    `reference_sd`), both drawn from streams of `seed`."""

    iterations: int = 500
    eps_start: float = 0.1
    eps_end: float = 0.1
    blur: bool = True
    kernel_size: int = 3
    blur_start: float = 2.4
    blur_end: float = 0.4
    clamp: bool = False
    normalise: bool = False
    scale: float = 0.15
    record_every: int = 50
    start_mean: float = 0.7
    start_sd: float = 1 / 20
    reference_sd: float = 1 / 25
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self):
        if self.iterations < 1 or self.record_every < 1:
            raise ValueError(f"inversion needs iterations ≥ 1 and record_every ≥ 1, got "
                             f"{self.iterations} and {self.record_every}")
        if self.blur and (self.kernel_size < 1 or self.kernel_size % 2 == 0):
            raise ValueError(f"inversion kernel_size must be odd and positive, got "
                             f"{self.kernel_size}")
        if self.dtype not in DTYPES:
            raise ValueError(f"inversion dtype {self.dtype!r}; known: {', '.join(DTYPES)}")


def schedule(start, end, iterations):
    """The value at each step: linear from `start` (step 0) to `end` (the last)."""
    return np.linspace(start, end, iterations)


def recorded_steps(settings):
    """The steps at which m_g and m_i are recorded: before steps 0,
    record_every, …, and after the last (= iterations)."""
    return sorted({*range(0, settings.iterations, settings.record_every), settings.iterations})


REFERENCE, START = 0, 1  # the kinds of draw, in the keys of their streams


def normal(shape, mean, sd, key, dtype):
    """N(mean, sd²) of `shape`, drawn in float64 from the stream `key` (so
    that float32 and float64 runs start alike) and cast to `dtype`."""
    return (torch.randn(shape, generator=noise_stream(*key), dtype=torch.float64) * sd
            + mean).to(dtype)


@dataclass
class Inversion:
    """What invert() found, per layer (in the order asked) and image:
    `steps` (recorded_steps); m_g and m_i (layers x images x steps); m_r
    (layers x images); `generated`, the final candidates (layers x images x
    the input's shape)."""

    layers: list
    steps: list
    m_g: np.ndarray
    m_i: np.ndarray
    m_r: np.ndarray
    generated: np.ndarray


def forward(model, x, layers, counts):
    """The activations of `layers` for the candidates `x`, ordered deepest
    layer first, `counts[k]` of them for layers[k]: each stage of the chain
    runs on the candidates of the layers at or after it only (a prefix of
    the batch). Returns the activation of each candidate's own layer, per
    layer, in the order of `layers`."""
    names = model.layer_names
    active, out, found = len(x), {"input": x}, {}
    limit = {layer: sum(counts[:k + 1]) for k, layer in enumerate(layers)}
    if "input" in limit:  # the shallowest: its candidates are the last block
        active = limit["input"] - counts[-1]
        found["input"] = x[active:]
    for name in names[1:names.index(layers[0]) + 1]:
        reads = model.reads[name] or (names[names.index(name) - 1],)
        inputs = [out[read][:active] for read in reads]
        stage = model.stages[name]
        out[name] = stage(*inputs, None) if isinstance(stage, Reparameterise) else stage(*inputs)
        if name in limit:
            found[name] = out[name][limit[name] - counts[layers.index(name)]:limit[name]]
            active = limit[name] - counts[layers.index(name)]
    return [found[layer] for layer in layers]


def invert(model, layers, targets, settings: Settings, keys=None, progress=None):
    """Invert each of `layers` of `model` (an hourglass.models.Autoencoder:
    a chain of named stages) for each image of `targets` (N x input shape)
    by gradient descent on the input (see the module). `keys`: each image's
    number in the noise streams (default 0, 1, …), so that an image gets the
    same start and reference whatever batch it is in. The model is cast to
    the settings' dtype and device, in eval mode and frozen, in place.
    `progress`, where given, is told each step (hourglass.progress.every).
    Returns an Inversion."""
    dtype, device = DTYPES[settings.dtype], torch.device(settings.device)
    names = model.layer_names
    unknown = [layer for layer in layers if layer not in names]
    if unknown:
        raise ValueError(f"no layer {', '.join(unknown)} in the model; its layers: "
                         f"{', '.join(names)}")
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    order = sorted(range(len(layers)), key=lambda k: -names.index(layers[k]))
    deep = [layers[k] for k in order]  # deepest first
    n = len(targets)
    keys = range(n) if keys is None else keys
    t = targets.to(device=device, dtype=dtype)
    reference = torch.stack([t[j] + normal(t[j].shape, 0.0, settings.reference_sd,
                                           (settings.seed, REFERENCE, key), dtype).to(device)
                             for j, key in enumerate(keys)])
    with torch.no_grad():
        want = forward(model, t.repeat(len(deep), *[1] * (t.dim() - 1)), deep, [n] * len(deep))
        near = forward(model, reference.repeat(len(deep), *[1] * (t.dim() - 1)), deep,
                       [n] * len(deep))
    m_r = torch.stack([(w - r).flatten(1).norm(dim=1) for w, r in zip(want, near)])
    a = torch.cat([torch.stack([normal(t[j].shape, settings.start_mean, settings.start_sd,
                                       (settings.seed, START, names.index(layer), key), dtype)
                                for j, key in enumerate(keys)]) for layer in deep]).to(device)
    eps = schedule(settings.eps_start, settings.eps_end, settings.iterations)
    sigma = schedule(settings.blur_start, settings.blur_end, settings.iterations)
    steps = recorded_steps(settings)
    m_g, m_i = [], []

    def record(acts, a):
        m_g.append(torch.stack([(got - w).flatten(1).norm(dim=1) for got, w in zip(acts, want)]))
        m_i.append((a - t.repeat(len(deep), *[1] * (t.dim() - 1))).flatten(1).norm(dim=1)
                   .view(len(deep), n))

    for step in range(settings.iterations):
        a.requires_grad_(True)
        acts = forward(model, a, deep, [n] * len(deep))
        loss = sum((got - w).abs().sum() for got, w in zip(acts, want)) * settings.scale
        (grad,) = torch.autograd.grad(loss, a)
        with torch.no_grad():
            if step in steps:
                record(acts, a)
            if settings.normalise:
                grad = grad / grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(
                    torch.finfo(dtype).tiny).view(-1, *[1] * (grad.dim() - 1))
            a = a.detach() - float(eps[step]) * grad
            if settings.blur:
                a = TF.gaussian_blur(a, [settings.kernel_size] * 2, [float(sigma[step])] * 2)
            if settings.clamp:
                a = a.clamp(0, 1)
        if progress is not None:
            progress(f"step {step + 1} of {settings.iterations}")
    with torch.no_grad():
        record(forward(model, a, deep, [n] * len(deep)), a)
    back = np.argsort(order)  # deepest-first -> the order asked

    def asked(x):
        return x.cpu().numpy()[back]

    generated = a.view(len(deep), n, *t.shape[1:])
    return Inversion(list(layers), steps, asked(torch.stack(m_g, -1)),
                     asked(torch.stack(m_i, -1)), asked(m_r), asked(generated))
