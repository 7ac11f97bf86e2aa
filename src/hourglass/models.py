"""Architecture registry. Every model is a chain of named stages whose
outputs are the layers recorded, each with a role (ROLES): what the layer is
for, and where the figures place it. Names are only labels."""

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from hourglass.activations import repeat_name

# The roles a recorded layer may play, each with the region of the network
# the figures shade it in. A new kind of layer (a classifier's head, say) is a
# new entry here. A VAE's heads: the posterior's mean and log-variance, the
# code drawn from it, and the decoder's logits before the output's sigmoid.
# A classifier's head: its class scores (logits), in place of a decoder.
ROLES = {"input": "input", "encoder": "encoder", "bottleneck": "bottleneck",
         "decoder": "decoder", "output": "output", "mean": "bottleneck",
         "logvar": "bottleneck", "sampled": "bottleneck", "logits": "output",
         "classes": "output"}


class Reparameterise(nn.Module):
    """The code a VAE's decoder reads: mean + exp(logvar / 2) * e, with e drawn
    from the generator `noise` (on the CPU, so that the seed fixes the draw on
    any device); the mean itself where `noise` is None."""

    def forward(self, mean, logvar, noise):
        if noise is None:
            return mean
        e = torch.randn(mean.shape, generator=noise, dtype=mean.dtype).to(mean.device)
        return mean + e * torch.exp(0.5 * logvar)


class Autoencoder(nn.Module):
    """An encoder-decoder as an ordered sequence of named stages, each with a
    role. A stage reads the layer before it, or the layers it names: a stage is
    (name, role, module) or (name, role, module, names read), so that a VAE's
    mean and log-variance heads both read the encoder's last layer."""

    def __init__(self, stages):
        super().__init__()
        names, roles, modules, reads = zip(*((*stage, ()) if len(stage) == 3 else stage
                                             for stage in stages))
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown layer role(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(ROLES)} (hourglass.models.ROLES)")
        self.stages = nn.ModuleDict(zip(names, modules))
        self.roles = list(roles)
        self.reads = dict(zip(names, reads))

    @property
    def layer_names(self):
        return ["input", *self.stages]

    @property
    def layer_roles(self):
        """The role of each of layer_names, in the same order."""
        return ["input", *self.roles]

    def forward(self, x, noise=None):
        return list(self.layers(x, noise).values())[-1]

    def layers(self, x, noise=None):
        """Every layer's activations for input `x`, in order, keyed by name;
        `noise` is the generator a sampled code draws from (Reparameterise)."""
        return self.decode("input", x, noise)

    def decode(self, layer, value, noise=None):
        """`layer`'s activations `value` (a code edited or interpolated) and
        every layer after it computed from them, in order, keyed by name: the
        decoder alone. Only where no later stage reads a layer before
        `layer`; a VAE decoded from before its code draws from `noise` (None:
        the mean, as records without noise)."""
        names = ["input", *self.stages]
        out, x = {layer: value}, value
        for name in names[names.index(layer) + 1:]:
            reads = self.reads[name]
            if any(read not in out for read in reads):
                raise ValueError(f"layer {name} reads {', '.join(reads)}, not only layers from "
                                 f"{layer} on: the model cannot be decoded from {layer}")
            stage, inputs = self.stages[name], [out[read] for read in reads] or [x]
            x = stage(*inputs, noise) if isinstance(stage, Reparameterise) else stage(*inputs)
            out[name] = x
        return out

    @property
    def single_roles(self):
        """The roles one layer alone plays (input, output, a VAE's mean, ...):
        those an objective may read."""
        roles = self.layer_roles
        return [role for role in roles if roles.count(role) == 1]

    def by_role(self, x, noise=None):
        """The layers for input `x` of each of single_roles, keyed by role:
        what an objective reads, whatever the model names it (PCA's output
        is its `reconstruction`)."""
        single = self.single_roles
        return {role: layer for role, layer in zip(self.layer_roles, self.layers(x, noise).values())
                if role in single}


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}


def _dense_stages(role, n_in, widths, activation, flatten=False):
    """Dense layers of `widths` from `n_in` inputs, each followed by
    `activation`, named {role}1, {role}2, ... with that role; the first
    flattens its input where `flatten`."""
    stages, prev = [], n_in
    for i, width in enumerate(widths, 1):
        first = [nn.Flatten()] if flatten and i == 1 else []
        stages.append((f"{role}{i}", role,
                       nn.Sequential(*first, nn.Linear(prev, width), activation())))
        prev = width
    return stages


def with_repeats(stages, repeat, copy):
    """`stages` with each layer named in `repeat` ({layer: copies}) followed by
    that many copies of its own, from `copy(module)`: a module taking the
    layer's output to another of the same shape. Only encoder and decoder
    layers repeat; naming another is an error listing those."""
    names = [name for name, role, _ in stages if role in ("encoder", "decoder")]
    unknown = [layer for layer in repeat if layer not in names]
    if unknown:
        raise ValueError(f"model.repeat names {', '.join(unknown)}, not an encoder or decoder "
                         f"layer of the model; those it has: {', '.join(names)} (more bottleneck "
                         "layers: model.bottleneck_layers)")
    out = []
    for name, role, module in stages:
        out.append((name, role, module))
        out += [(repeat_name(name, k), role, copy(module)) for k in range(1, repeat.get(name, 0) + 1)]
    return out


def _classifier_head(settings, encoder_stages, features):
    """The encoder's stages and a dense head of `classes` class scores (the
    logits a softmax reads; role classes) in place of the decoder."""
    return [*encoder_stages, ("classes", "classes", nn.Linear(features, settings["classes"]))]


def _fc(settings, input_shape):
    """784-512-256-128-64-[b]xk-64-128-256-512-784 (Durbha et al. 2022), with the
    widths, latent size b, bottleneck depth k, and the activation of the hidden
    layers (`activation`) and of the code (`latent_activation`) taken from
    `settings`; the output is a sigmoid. `repeat` adds copies of encoder or
    decoder layers (a dense layer of the same width each); `classes`, where
    set, replaces the decoder by a classifier's head."""
    n_in = math.prod(input_shape)
    widths, latent, k = settings["widths"], settings["latent"], settings["bottleneck_layers"]
    hidden, code = ACTIVATIONS[settings["activation"]], ACTIVATIONS[settings["latent_activation"]]
    stages, prev = _dense_stages("encoder", n_in, widths, hidden, flatten=True), widths[-1]
    for i in range(1, k + 1):
        stages.append((f"bottleneck{i}", "bottleneck", nn.Sequential(nn.Linear(prev, latent), code())))
        prev = latent
    if settings.get("classes") is not None:
        stages = _classifier_head(settings, stages, latent)
    else:
        stages += _dense_stages("decoder", prev, widths[::-1], hidden)
        stages.append(("output", "output", nn.Sequential(
            nn.Linear(widths[0], n_in), nn.Sigmoid(), nn.Unflatten(1, tuple(input_shape)))))

    def copy(module):  # a dense layer of the layer's width, flattening nothing
        width = next(m for m in module if isinstance(m, nn.Linear)).out_features
        return nn.Sequential(nn.Linear(width, width), hidden())

    return with_repeats(stages, settings.get("repeat", {}), copy)


def _conv(settings, input_shape):
    """conv-pool-conv-pool-conv-flatten-dense[b]xk-dense-reshape-conv-up-conv-up-conv:
    the consistency paper's CIFAR-10 autoencoder, channels from `settings`.
    `repeat` adds copies of encoder or decoder layers: a 3x3 convolution of
    the layer's channels with ReLU, at the size of its output (after its
    pooling or upsampling); `classes`, where set, replaces the decoder by a
    classifier's head."""
    c_in, height, width = input_shape
    if height % 4 or width % 4:
        raise ValueError(f"the conv model needs image sides divisible by 4, got {height}x{width}")
    (c1, c2, c3), latent, k = settings["channels"], settings["latent"], settings["bottleneck_layers"]
    inner = (c3, height // 4, width // 4)
    n_inner = math.prod(inner)

    def conv(a, b):
        return nn.Conv2d(a, b, kernel_size=3, padding=1)

    stages = [
        ("encoder1", "encoder", nn.Sequential(conv(c_in, c1), nn.ReLU(), nn.MaxPool2d(2))),
        ("encoder2", "encoder", nn.Sequential(conv(c1, c2), nn.ReLU(), nn.MaxPool2d(2))),
        ("encoder3", "encoder", nn.Sequential(conv(c2, c3), nn.ReLU())),
    ]
    prev = n_inner
    for i in range(1, k + 1):
        layers = [nn.Flatten()] if i == 1 else []
        stages.append((f"bottleneck{i}", "bottleneck",
                       nn.Sequential(*layers, nn.Linear(prev, latent), nn.ReLU())))
        prev = latent
    if settings.get("classes") is not None:
        stages = _classifier_head(settings, stages, latent)
    else:
        stages += [
            ("decoder1", "decoder",
             nn.Sequential(nn.Linear(latent, n_inner), nn.ReLU(), nn.Unflatten(1, inner))),
            ("decoder2", "decoder",
             nn.Sequential(conv(c3, c2), nn.ReLU(), nn.Upsample(scale_factor=2))),
            ("decoder3", "decoder",
             nn.Sequential(conv(c2, c1), nn.ReLU(), nn.Upsample(scale_factor=2))),
            ("output", "output", nn.Sequential(conv(c1, c_in), nn.Sigmoid())),
        ]

    def copy(module):  # decoder1 is dense, then reshaped: its copy convolves the reshaped maps
        channels = [m for m in module if isinstance(m, nn.Conv2d)]
        width = channels[0].out_channels if channels else inner[0]
        return nn.Sequential(conv(width, width), nn.ReLU())

    return with_repeats(stages, settings.get("repeat", {}), copy)


def _vae_heads(features, latent, reads):
    """A VAE's posterior: mean and log-variance heads, both reading the layer
    `reads` of `features` units, and the code sampled from them."""
    return [("mean", "mean", nn.Linear(features, latent), (reads,)),
            ("logvar", "logvar", nn.Linear(features, latent), (reads,)),
            ("sampled", "sampled", Reparameterise(), ("mean", "logvar"))]


def _vae_fc(settings, input_shape):
    """A fully connected VAE for small images, e.g. 784-512-256-[mean, logvar,
    sampled]-256-512-784: the encoder widths and latent size from `settings`,
    ReLU (or `activation`) between them; the decoder mirrors the encoder and
    ends in logits, whose sigmoid is the output."""
    n_in = math.prod(input_shape)
    widths, latent = settings["widths"], settings["latent"]
    hidden = ACTIVATIONS[settings["activation"]]
    stages, prev = _dense_stages("encoder", n_in, widths, hidden, flatten=True), widths[-1]
    stages += _vae_heads(prev, latent, f"encoder{len(widths)}")
    prev = latent
    stages += _dense_stages("decoder", prev, widths[::-1], hidden)
    prev = widths[0]
    stages += [("logits", "logits", nn.Sequential(nn.Linear(prev, n_in),
                                                  nn.Unflatten(1, tuple(input_shape)))),
               ("output", "output", nn.Sigmoid())]
    return stages


def _vae_conv(settings, input_shape):
    """disentanglement_lib's convolutional VAE (Locatello et al. 2019), for
    64 x 64 x C images (any sides divisible by 16): conv 32 4x4 stride 2, conv
    32 4x4 s2, conv 64 2x2 s2, conv 64 2x2 s2, dense 256, the mean and
    log-variance heads of `latent` units and the sampled code; then dense
    256, dense 1024 reshaped to 64 x 4 x 4, transposed convs 64, 32, 32
    (4x4 s2) and C, the logits, whose sigmoid is the output. ReLU after every
    layer but the heads and the logits; 'same' padding throughout."""
    c, height, width = input_shape
    if height % 16 or width % 16:
        raise ValueError(f"vae_conv needs image sides divisible by 16 (64 x 64 in the paper), "
                         f"got {height}x{width}; resize the images")
    inner = (64, height // 16, width // 16)
    latent = settings["latent"]

    def down(a, b, k):  # halves each side: padding 1 for 4x4 kernels, 0 for 2x2
        return nn.Sequential(nn.Conv2d(a, b, k, stride=2, padding=(k - 2) // 2), nn.ReLU())

    def up(a, b, *relu):  # doubles each side
        return nn.Sequential(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), *relu)

    return [
        ("encoder1", "encoder", down(c, 32, 4)),
        ("encoder2", "encoder", down(32, 32, 4)),
        ("encoder3", "encoder", down(32, 64, 2)),
        ("encoder4", "encoder", down(64, 64, 2)),
        ("encoder5", "encoder", nn.Sequential(nn.Flatten(), nn.Linear(math.prod(inner), 256),
                                              nn.ReLU())),
        *_vae_heads(256, latent, "encoder5"),
        ("decoder1", "decoder", nn.Sequential(nn.Linear(latent, 256), nn.ReLU())),
        ("decoder2", "decoder", nn.Sequential(nn.Linear(256, math.prod(inner)), nn.ReLU(),
                                              nn.Unflatten(1, inner))),
        ("decoder3", "decoder", up(64, 64, nn.ReLU())),
        ("decoder4", "decoder", up(64, 32, nn.ReLU())),
        ("decoder5", "decoder", up(32, 32, nn.ReLU())),
        ("logits", "logits", up(32, c)),
        ("output", "output", nn.Sigmoid()),
    ]


AREAS = {"S": 0, "M": 1, "L": 2}  # encoder strides removed from the deepest levels


def _norm_conv(a, b, stride=1):
    """3x3 convolution ('same' padding), instance norm with affine weights, ReLU."""
    return [nn.Conv2d(a, b, 3, stride=stride, padding=1), nn.InstanceNorm2d(b, affine=True),
            nn.ReLU()]


class Residual(nn.Module):
    """x + f(x), f two 3x3 convolutions with instance norm and ReLU at `width` channels."""

    def __init__(self, width):
        super().__init__()
        self.f = nn.Sequential(*_norm_conv(width, width), *_norm_conv(width, width))

    def forward(self, x):
        return x + self.f(x)


def cae_bottleneck(settings, input_shape):
    """The bottleneck of a `cae` for `input_shape` (C, H, W): (channels,
    height, width). Each of the `levels` levels halves the sides, except the
    deepest 0, 1 or 2 with the area S, M or L; the channels hold
    `compression` of the input's values in that area."""
    c, height, width = input_shape
    levels, kept = settings["levels"], AREAS[settings["area"]]
    if kept >= levels:
        raise ValueError(f"cae area {settings['area']} removes the stride of {kept} of its "
                         f"{levels} levels: give model.levels more than {kept}")
    halvings = 2 ** (levels - kept)
    if height % halvings or width % halvings:
        raise ValueError(f"cae with {levels} levels and area {settings['area']} halves the image "
                         f"sides {levels - kept} times, so they must be divisible by {halvings}, "
                         f"got {height}x{width}; pad or resize the images (data.pad, data.resize)")
    if min(height, width) // halvings < 2:
        # InstanceNorm of a 1x1 map is undefined: every level's maps need two pixels a side
        raise ValueError(f"cae with {levels} levels and area {settings['area']} halves the image "
                         f"sides {levels - kept} times, leaving {height // halvings}x"
                         f"{width // halvings}: instance normalisation needs at least 2x2; "
                         "give fewer levels or a larger area, or larger images (data.resize)")
    area = (height // halvings) * (width // halvings)
    channels = settings["compression"] * c * height * width / area
    if channels < 1 or abs(channels - round(channels)) > 1e-9:
        raise ValueError(f"cae compression {settings['compression']} of {c * height * width} "
                         f"input values over a {height // halvings}x{width // halvings} bottleneck "
                         f"is {channels:g} channels, not a whole number of at least 1; choose a "
                         f"compression that is a multiple of {area / (c * height * width):g}")
    return round(channels), height // halvings, width // halvings


def _cae(settings, input_shape):
    """Manakov et al.'s convolutional autoencoder (ConvAE2d of their toolkit).
    An initial 3x3 convolution; per level, 2 residual blocks then a stride-2
    3x3 convolution that quadruples the channels (3 -> 12 -> 48 -> ...), the
    deepest to the bottleneck's channels (cae_bottleneck); the area S, M or L
    drops the stride of the deepest 0, 1 or 2. The decoder mirrors it: per
    level a bilinear x2 upsampling (none where the encoder kept the size), a
    3x3 convolution to the level's channels, 2 residual blocks; then a final
    3x3 convolution, normalised and rectified as theirs unless `final_norm`
    is false. Every convolution but the last is followed by instance norm
    (affine) and ReLU. Recorded: each level's output."""
    c = input_shape[0]
    levels, kept = settings["levels"], AREAS[settings["area"]]
    code = cae_bottleneck(settings, input_shape)[0]
    widths = [c * 4 ** k for k in range(levels)] + [code]
    strides = [2] * (levels - kept) + [1] * kept

    def residuals(width):
        return [Residual(width), Residual(width)]

    stages = []
    for k in range(levels):
        first = _norm_conv(c, c) if k == 0 else []
        name, role = ("bottleneck", "bottleneck") if k == levels - 1 else (f"encoder{k + 1}", "encoder")
        stages.append((name, role, nn.Sequential(*first, *residuals(widths[k]),
                                                 *_norm_conv(widths[k], widths[k + 1], strides[k]))))
    for i, k in enumerate(reversed(range(levels)), 1):
        up = [nn.Upsample(scale_factor=2, mode="bilinear")] if strides[k] == 2 else []
        stages.append((f"decoder{i}", "decoder",
                       nn.Sequential(*up, *_norm_conv(widths[k + 1], widths[k]),
                                     *residuals(widths[k]))))
    last = _norm_conv(c, c) if settings["final_norm"] else [nn.Conv2d(c, c, 3, padding=1)]
    stages.append(("output", "output", nn.Sequential(*last)))
    return stages


class TiedDecoder(nn.Module):
    """The transpose of `encoder`'s weight, plus a bias of its own. The weight
    is the encoder's very Parameter, so the optimiser sees it once and every
    step keeps the two tied."""

    def __init__(self, encoder: nn.Linear, output_shape):
        super().__init__()
        self.weight = encoder.weight
        self.bias = nn.Parameter(torch.zeros(encoder.in_features))
        self.unflatten = nn.Unflatten(1, tuple(output_shape))

    def forward(self, code):
        return self.unflatten(F.linear(code, self.weight.T, self.bias))


def _linear(settings, input_shape):
    """A linear autoencoder with tied weights (Baldi & Hornik 1989; the latent
    study's "PCA as a linear autoencoder"): code = W x + b, output = Wᵀ code + c,
    no activations. The biases let it learn the data's mean, so that its
    optimum spans the principal subspace of the centred data, PCA's (without
    them it would span that of the uncentred second moments)."""
    encoder = nn.Linear(math.prod(input_shape), settings["latent"])
    return [("code", "bottleneck", nn.Sequential(nn.Flatten(), encoder)),
            ("output", "output", TiedDecoder(encoder, input_shape))]


class Projection(nn.Module):
    """PCA's projection, held as buffers (fitted, not trained): onto the rows V
    of `components`, x -> (x - mean) Vᵀ; or, given `output_shape`, back from
    them, code -> code V + mean, as images of that shape."""

    def __init__(self, components, mean, output_shape=None):
        super().__init__()
        self.register_buffer("components", components)
        self.register_buffer("mean", mean)
        self.output_shape = None if output_shape is None else tuple(output_shape)

    def forward(self, x):
        if self.output_shape is None:
            return (x.flatten(1) - self.mean) @ self.components.T
        return (x @ self.components + self.mean).unflatten(1, self.output_shape)


def _pca(settings, input_shape):
    """Exact PCA with `latent` components, fitted by _fit_pca; its code and
    reconstruction share one pair of buffers (components, mean)."""
    n_in = math.prod(input_shape)
    components, mean = torch.zeros(settings["latent"], n_in), torch.zeros(n_in)
    return [("code", "bottleneck", Projection(components, mean)),
            ("reconstruction", "output", Projection(components, mean, input_shape))]


def _fit_pca(model, x_train):
    """Fit the pca model to the training images by SVD of the centred data:
    the components are the leading right singular vectors (signs made
    deterministic: the largest entry of each is positive)."""
    x = x_train.flatten(1).double()
    mean = x.mean(0)
    code = model.stages["code"]
    if code.components.shape[0] > min(x.shape):
        raise ValueError(f"pca: {code.components.shape[0]} components asked (model.latent), but "
                         f"the {len(x)} training images of {x.shape[1]} values span at most "
                         f"{min(x.shape)}; lower model.latent")
    _, _, vt = torch.linalg.svd(x - mean, full_matrices=False)
    vt = vt[:code.components.shape[0]]
    signs = torch.sign(vt.gather(1, vt.abs().argmax(1, keepdim=True)))
    code.components.copy_(vt * signs)
    code.mean.copy_(mean)


@dataclass(frozen=True)
class Architecture:
    """A model of the registry: `build(settings, input_shape)` gives its
    stages as (name, role, module); `fit(model, x_train)`, where given, sets
    its weights from the training images in closed form, instead of training.
    `unit_output`: its output lies in [0, 1] (a sigmoid), which training.loss
    bce needs; the config refuses bce for a model whose output does not."""

    build: Callable
    fit: Callable | None = None
    unit_output: bool = True


MODELS = {"fc": Architecture(_fc), "conv": Architecture(_conv),
          "linear": Architecture(_linear, unit_output=False),
          "pca": Architecture(_pca, fit=_fit_pca, unit_output=False),
          "vae_fc": Architecture(_vae_fc), "vae_conv": Architecture(_vae_conv),
          "cae": Architecture(_cae, unit_output=False)}


def architecture(name) -> Architecture:
    """The registry's entry `name` (model.architecture), or ValueError naming the known ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


INITS = {"glorot_uniform": nn.init.xavier_uniform_, "glorot_normal": nn.init.xavier_normal_}


def build_model(settings, input_shape) -> Autoencoder:
    """The autoencoder `settings` describe, initialised from torch's current RNG
    (pca has no `init`: its buffers are fitted)."""
    entry = architecture(settings["architecture"])
    init = settings.get("init")
    if init is not None and init not in INITS:
        raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    model = Autoencoder(entry.build(settings, input_shape))
    for module in model.modules():
        if init is not None and isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            INITS[init](module.weight)
            nn.init.zeros_(module.bias)
    return model
