"""A new study's config (`hourglass new-study`): a commented template, checked
against the workflow's schema before it is written.

The schema lives in the workflow (workflow/schemas/config.schema.yaml), beside
src/ in a checkout; `find_schema` looks for it there and in the current folder.
"""

import re
from pathlib import Path
from string import Template

import yaml

from hourglass.config import check_config, check_measures, load_schema
from hourglass.io import atomic_path, check_out

SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"

TEMPLATE = Template("""\
# Study $study: written by `hourglass new-study`. It starts as the default
# study (a small fully connected autoencoder on scikit-learn's 8x8 digits,
# minutes on a laptop CPU): edit it, then run
#   snakemake --cores all --configfile $path
# Every key is described, with its default, in
# workflow/schemas/config.schema.yaml; a key left out takes its default.
# Results go to results/$study/.
study: $study            # folder name under results/: letters, digits, _ . -

data:
  dataset: digits        # digits (offline), fashion_mnist, mnist, cifar10, dsprites, shapes,
                         # celeba, stl10_unlabeled or stl10
  classes: null          # keep only these labels, e.g. [1, 7] (null = all)
  first: null            # keep only the dataset's first images, in its order (null = all), e.g.
    # train: 8000        # the first 8000 training images
    # test: 4000         # and the first 4000 test images
  root: data             # folder of torchvision datasets (or Debian's Fashion-MNIST files)
  download: false        # let torchvision download a missing dataset (needs the network)
  val_fraction: 0.1      # of the training images, held out for early stopping
  train_size: null       # train on a class-stratified subset of this many images (null = all)
  probe_size: 300        # test images every layer is recorded on (class-stratified;
                         # null = all of the kept classes, or 1000 of all classes)
  split_seed: 0          # fixes the splits and the probe set
  # test_size: 2000      # keep a class-stratified subset of the test images (unset: all)
  # resize: 64           # resize every image to this many pixels a side (vae_conv: 64)
  # pad: 2               # add this many black pixels on every side (28 -> 32 for a cae)
  # binarise: 0.5        # black or white: white from this value in [0, 1] on

seeds: [0, 1, 2, 3, 4]   # one network per seed and variant; at least 2

# Epochs whose weights are recorded besides the final (best validation) ones;
# 0 = untrained. Where training ends earlier, a checkpoint holds the final weights.
checkpoints: [0]

# Every variant's model, unless the variant overrides a key. Each architecture
# takes its own keys (another's is an error): fc all below but channels; conv
# channels, latent, bottleneck_layers, init; linear (a tied linear autoencoder)
# latent, init; pca (exact PCA, fitted, not trained) latent; the VAEs vae_fc
# widths, latent, activation, init and vae_conv (64 x 64 images) latent, init;
# cae (Manakov et al.'s residual convolutional autoencoder) the four below init.
# A variant that sets another architecture keeps only the keys here that its
# architecture takes.
model:
  architecture: fc       # fc: fully connected; conv: convolutional (images whose sides divide by 4)
  widths: [64, 48, 32, 16]   # fc encoder widths, mirrored by the decoder
  # channels: [32, 64, 128]  # conv encoder channels, mirrored by the decoder
  latent: 16             # units in each bottleneck layer (pca: components kept)
  bottleneck_layers: 1   # bottleneck layers of `latent` units each
  activation: relu       # of the encoder and decoder layers, or tanh
  latent_activation: relu  # of the bottleneck layers, or tanh, or linear (none)
  init: glorot_uniform   # or glorot_normal
  # repeat: {encoder2: 2}  # fc, conv: copies added after encoder or decoder layers
  # classes: 10          # fc, conv: a classifier of this many classes instead of a decoder
  # levels: 3            # cae: levels of residual blocks and a stride-2 convolution
  # area: M              # cae: bottleneck area, S, M or L (the deepest 0, 1, 2 strides dropped)
  # compression: 0.25    # cae: bottleneck values as a share of the input's
  # final_norm: true     # cae: instance norm and ReLU after the last convolution

activations:             # how every layer is recorded on the probe images
  record_from: sampled   # a VAE's decoder reads a seeded sample of its code, or mean

training:                # every variant's training, unless the variant overrides a key
  loss: mse              # or bce: the reconstruction term (bce: fc and conv only)
  objective:             # what training minimises
    name: reconstruction # or denoising, which takes noise_std:
    # noise_std: 0.3     # denoising: standard deviation of the Gaussian noise
    # VAE models (loss bce: a Bernoulli decoder, mse: a Gaussian one):
    # beta: 4            # beta_vae: weight of the KL; beta_tc_vae: of the total correlation
    # gamma: 1000        # annealed_vae: weight of |KL - C|,
    # c_max: 25          #   C rising from 0 to c_max nats
    # ramp_steps: 100000 #   over this many optimiser steps
    # lambda_od: 10      # dip_vae_ii: weight of the covariance's off-diagonal
    # lambda_d: 10       #   and diagonal entries
  lr: 0.001              # Adam's learning rate
  weight_decay: 0        # Adam's weight decay
  batch_size: 32         # images per step
  max_epochs: 200        # at most; early stopping usually ends sooner
  epoch_steps: null      # or N: an epoch is N steps (training measured in steps)
  patience: 10           # stop after this many epochs without a lower validation loss (null: never)
  precision: fp32        # or bf16, fp16: mixed precision (autocast; fp16 with a gradient scaler)
  device: cpu            # or cuda: each training job asks for one GPU
  on_divergence: fail    # or exclude: record a seed whose loss stops being finite and leave it out
  stack_seeds: false     # or true: all seeds of a variant in one job, stepped together (for GPUs)

# The settings compared: each variant overrides some model / training / data
# keys (data: all but root and download; one data file per distinct setting).
variants:
  latent4:
    model: {latent: 4}
  latent8:
    model: {latent: 8}

# What the study computes from the recorded layers, each with its options
# (hourglass.analyses.registry): one job per variant, tables gathered, but for
# across_variants, one job for the study.
analyses:
  consistency: {}        # RC per layer across seeds and the MDS (options under similarity:)
  # instances:           # RC from nested random subsets of the seeds, no retraining
    # sizes: [2, 3]      # the subsets' numbers of seeds (at most the seeds trained)
    # subsets: 10        # random orders of the seeds
    # seed: 0            # seeds the orders
  # latent:              # how far apart a layer's codes keep the classes: silhouettes,
    # layer: null        # of this layer (null = the last bottleneck layer), against
    # components: 2      # the raw images and an exact PCA with this many components
  # dead_units: {}       # the share of each layer's units that never change
  # dynamics:            # each layer at each checkpoint against itself at the others
    # measures: [linear_cka, procrustes]
  # collapse:            # a VAE's posterior collapse: active units, KL per dimension,
    # threshold: 0.01    # active: the variance of a dimension's mean exceeds this
  # across_variants:     # every layer of every variant against those of the others,
    # measures: [linear_cka]  # at the final checkpoint, on the same probe images
  # probes:              # logistic regression on each seed's code and on the pixels:
    # target: classes    # macro-F1 of the classes, or factors: AUROC of each factor
    # images: 2000       # the first this many training (seen) and test (unseen) images
    # seeds: [0, 1, 2]   # the probes' seeds (split and initialisation)
    # data: {dataset: stl10}  # labelled images of their own (unseen only)
    # grid: [area, compression]  # two model settings: the figure's rows and columns
  # outliers:            # reconstruction errors as outlier scores: the AUROC of
    # ood: {dataset: digits, resize: 32, probe_size: 100}  # these test images against the variant's
    # grid: [area, compression]  # two model settings: the figure's rows and columns
  # losses:              # a grid of variants' losses: minimum test loss, training speed,
    # threshold: 0.01    # the training loss whose first epoch below it is the speed
    # grid: [area, compression]  # two model settings: the heatmaps' rows and columns
  # copy:                # is a convolutional code a copy? SVCCA and linear CKA of
    # images: 500        # each position's code and its patch of these test images
    # seed: 0            # orders the points (CKA's minibatches)
    # split: test        # or train, where the test split is too small
    # grid: [area, compression]  # two model settings: the figure's rows and columns
  # interpolation:       # decode codes interpolated between pairs of test images
    # pairs: 2           # how many pairs, a row each
    # steps: 8           # points from one code to the other, both included
  # iteration:           # feed reconstructions back into the model
    # images: 2          # how many test images, a row each
    # iterations: 100    # how many times
    # every: 8           # show every this many
  # inversion:           # invert every layer by gradient descent on the input (Badger):
    # iterations: 500    # steps from noise N(0.7, 1/20), the L1 loss times `scale`
    # scale: 0.15
    # eps_start: 0.1     # the step, linear from eps_start to eps_end
    # eps_end: 0.1
    # normalise: false   # true: divide each gradient by its root mean square
    # blur: true         # a Gaussian blur after each step, of kernel_size,
    # kernel_size: 3     # sigma linear from blur_start to blur_end
    # blur_start: 2.4
    # blur_end: 0.4
    # clamp: false       # clip the candidate to [0, 1] after each step
    # record_every: 50   # record m_g and m_i every this many steps
    # seed: 0            # the starts, the references, an untrained network's init
    # dtype: float32     # or float64
    # device: cpu        # or cuda
    # images: 2          # the first probe images of each variant,
    # seeds: [0]         # of these seeds, at checkpoint 0 (in checkpoints:) and final,
    # layers: null       # these layers (null = all but the input)
    # photos:            # the images the networks are inverted on:
      # source: sample_images  # scikit-learn's two photographs, or folder
      # path: null       # the folder, for source folder
      # count: null      # the first this many (null = all)
    # networks:          # library networks, each with its own descent settings if any
      # resnet50: {architecture: resnet50, weights: [untrained, imagenet], side: 299}
      # relu_5000: {architecture: mlp, widths: [5000], activation: relu, side: 29, blur: false}

# Claims of a paper the study reproduces, each a named check on its tables
# with params (hourglass.findings.FINDINGS); findings.csv says what held.
findings:
  - claim: RC dips toward the bottleneck and rises toward the output
    check: rc_dips_at_bottleneck
  - claim: the untrained network's RC keeps falling from input to output
    check: rc_falls
    params: {epoch: "0"}

similarity:
  bootstrap: 1000        # resamples of the probe images for RC's confidence interval
  ci: 0.95               # level of that interval
  seed: 0                # fixes the resamples
  measures:              # between every pair of variant x seed x checkpoint x layer,
    linear_cka: {}       # each with its options, e.g. linear_cka: {debiased: true};
    rsa: {}              # `hourglass measures` lists them all
    procrustes: {}
  dtype: float64         # or float32: faster, ~1e-6 relative error
  device: cpu            # or cuda: the measure jobs ask for one GPU
  max_memory_gb: 4       # memory an all-pairs job may hold at once (null = no limit)

figures:
  formats: [png, pdf]    # any of png, pdf, svg
  dpi: 150
  reconstructions:
    per_class: 1         # probe images per class in the reconstructions figure
  instance_mds:          # of the consistency analysis
    seed: null           # the seed whose layers are drawn (null = the first)
  silhouette_plots:      # of the latent analysis
    seeds: null          # the seeds drawn (null = the first three)
""")


class SchemaNotFound(OSError):
    pass


def find_schema() -> Path:
    """The workflow's config schema: beside src/ of the checkout this package
    runs from, or under the current folder (the repository root)."""
    package_root = Path(__file__).resolve().parents[2]
    places = [package_root, Path.cwd()]
    for root in places:
        if (root / SCHEMA).is_file():
            return root / SCHEMA
    looked = " and ".join(str(root / SCHEMA) for root in dict.fromkeys(places))
    raise SchemaNotFound(
        f"cannot find the workflow's config schema: looked for {looked}. hourglass needs "
        "the workflow beside the package: install hourglass from a clone of the "
        "repository (pip install -e .) or run it from the repository's root folder")


def check_name(name: str, schema: dict):
    """ValueError unless `name` is a study name the schema takes (it becomes a folder name)."""
    pattern = schema["$defs"]["name"]["pattern"]
    if not re.fullmatch(pattern, name):
        raise ValueError(f"study name {name!r} is not allowed: "
                         f"{schema['$defs']['name'].get('description', pattern)}")


def study_config(name: str, path_shown: str) -> str:
    """The commented config text of a new study `name`."""
    return TEMPLATE.substitute(study=name, path=path_shown)


def new_study(name: str, out=None, force=False) -> Path:
    """Write the config of a new study `name` to `out` (default: configs/{name}.yaml
    in the checkout holding the workflow) and return its path. Refuses to
    overwrite a file unless `force`; the text is checked against the schema
    before it is written."""
    schema_path = find_schema()
    check_name(name, load_schema(schema_path))
    if out is None:
        out = schema_path.parents[2] / "configs" / f"{name}.yaml"
    out = Path(out)
    check_out(out, force=force)
    try:
        shown = out.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = out
    text = study_config(name, shown.as_posix())
    config = yaml.safe_load(text)
    check_config(config, schema_path)
    check_measures(config["similarity"]["measures"])
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return out
