"""Architecture registry. Every model is a chain of named stages whose
outputs are the layers recorded: input, encoder..., bottleneck..., decoder...,
output."""

import math

from torch import nn


class Autoencoder(nn.Module):
    """An encoder-decoder as an ordered chain of named stages."""

    def __init__(self, stages):
        super().__init__()
        self.stages = nn.ModuleDict(stages)

    @property
    def layer_names(self):
        return ["input", *self.stages]

    def forward(self, x):
        for stage in self.stages.values():
            x = stage(x)
        return x

    def layers(self, x):
        """Every layer's activations for input `x`, in order, keyed by name."""
        out = {"input": x}
        for name, stage in self.stages.items():
            x = stage(x)
            out[name] = x
        return out


def _fc(settings, input_shape):
    """784-512-256-128-64-[b]xk-64-128-256-512-784 (Durbha et al. 2022), with the
    widths, latent size b and bottleneck depth k taken from `settings`."""
    n_in = math.prod(input_shape)
    widths, latent, k = settings["widths"], settings["latent"], settings["bottleneck_layers"]
    stages, prev = [], n_in
    for i, width in enumerate(widths, 1):
        layers = [nn.Flatten()] if i == 1 else []
        stages.append((f"encoder{i}", nn.Sequential(*layers, nn.Linear(prev, width), nn.ReLU())))
        prev = width
    for i in range(1, k + 1):
        stages.append((f"bottleneck{i}", nn.Sequential(nn.Linear(prev, latent), nn.ReLU())))
        prev = latent
    for i, width in enumerate(reversed(widths), 1):
        stages.append((f"decoder{i}", nn.Sequential(nn.Linear(prev, width), nn.ReLU())))
        prev = width
    stages.append(("output", nn.Sequential(
        nn.Linear(prev, n_in), nn.Sigmoid(), nn.Unflatten(1, tuple(input_shape)))))
    return stages


def _conv(settings, input_shape):
    """conv-pool-conv-pool-conv-flatten-dense[b]xk-dense-reshape-conv-up-conv-up-conv:
    the consistency paper's CIFAR-10 autoencoder, channels from `settings`."""
    c_in, height, width = input_shape
    if height % 4 or width % 4:
        raise ValueError(f"the conv model needs image sides divisible by 4, got {height}x{width}")
    (c1, c2, c3), latent, k = settings["channels"], settings["latent"], settings["bottleneck_layers"]
    inner = (c3, height // 4, width // 4)
    n_inner = math.prod(inner)

    def conv(a, b):
        return nn.Conv2d(a, b, kernel_size=3, padding=1)

    stages = [
        ("encoder1", nn.Sequential(conv(c_in, c1), nn.ReLU(), nn.MaxPool2d(2))),
        ("encoder2", nn.Sequential(conv(c1, c2), nn.ReLU(), nn.MaxPool2d(2))),
        ("encoder3", nn.Sequential(conv(c2, c3), nn.ReLU())),
    ]
    prev = n_inner
    for i in range(1, k + 1):
        layers = [nn.Flatten()] if i == 1 else []
        stages.append((f"bottleneck{i}", nn.Sequential(*layers, nn.Linear(prev, latent), nn.ReLU())))
        prev = latent
    stages += [
        ("decoder1", nn.Sequential(nn.Linear(latent, n_inner), nn.ReLU(), nn.Unflatten(1, inner))),
        ("decoder2", nn.Sequential(conv(c3, c2), nn.ReLU(), nn.Upsample(scale_factor=2))),
        ("decoder3", nn.Sequential(conv(c2, c1), nn.ReLU(), nn.Upsample(scale_factor=2))),
        ("output", nn.Sequential(conv(c1, c_in), nn.Sigmoid())),
    ]
    return stages


MODELS = {"fc": _fc, "conv": _conv}

INITS = {"glorot_uniform": nn.init.xavier_uniform_, "glorot_normal": nn.init.xavier_normal_}


def build_model(settings, input_shape) -> Autoencoder:
    """The autoencoder `settings` describe, initialised from torch's current RNG."""
    architecture = settings["architecture"]
    if architecture not in MODELS:
        raise ValueError(f"unknown model {architecture!r}; known: {', '.join(MODELS)}")
    if settings["init"] not in INITS:
        raise ValueError(f"unknown init {settings['init']!r}; known: {', '.join(INITS)}")
    model = Autoencoder(MODELS[architecture](settings, input_shape))
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            INITS[settings["init"]](module.weight)
            nn.init.zeros_(module.bias)
    return model
