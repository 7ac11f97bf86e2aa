"""Bad input, tried for real: each stops before compute with a message that
names the file or the config key and what to do, and leaves nothing behind
(no output, no temporary file, finished files untouched to the byte and the
nanosecond of their mtime).

Stages run through their real entry point (`python -m hourglass <stage>`'s
`main`, in process); configs through the checks the Snakefile runs at
start-up (in process), and one of each kind, YAML files and targets through
`snakemake` (marked slow). Every test case tries one bad input, except four
controls (test_the_stages_run_on_good_input,
test_a_diverged_seeds_files_pass_the_checks,
test_every_torch_load_and_yaml_read_is_safe,
test_a_target_inside_the_study_is_planned): 77 bad inputs in all, 5 of the
configs tried both ways.
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hourglass import __version__
from hourglass.activations import record
from hourglass.checks import InputError, load_checkpoint
from hourglass.cli import main
from hourglass.config import ConfigError, check_files
from hourglass.data import prepare
from hourglass.io import FORMAT_VERSION, write_matrix
from hourglass.train import train
from test_data import idx_bytes, write_idx_files
from conftest import REPO, SCHEMA, copy_of, snakemake

PROBE = 60
LAYERS = ["input", "encoder1", "encoder2", "bottleneck1", "decoder1", "decoder2", "output"]


def settings(variant, latent):
    return {"variant": variant,
            "model": dict(architecture="fc", widths=[16, 8], latent=latent, bottleneck_layers=1,
                          activation="relu", latent_activation="relu", init="glorot_uniform"),
            "training": dict(loss="mse", lr=0.01, batch_size=64, max_epochs=2, patience=5),
            "checkpoints": [0]}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A finished small study, made with the stages' own functions: the digits
    file (probe of 60), 2 variants x 2 seeds trained, activations recorded."""
    root = tmp_path_factory.mktemp("made")
    data = root / "data" / "digits.h5"
    prepare("digits", "unused", False, 0.1, None, PROBE, 0, data)
    for variant, latent in (("latent4", 4), ("latent8", 8)):
        for seed in (0, 1):
            run = root / variant / f"seed{seed}"
            train(data, settings(variant, latent), seed, run, log=lambda line: None)
            for name in ("epoch0", "final"):
                record(run / "checkpoints" / f"{name}.pt", data, run / "activations" / f"{name}.h5")
    return root


@pytest.fixture
def study(made, tmp_path):
    """A fresh copy of the finished study (mtimes kept) to break things in."""
    return Path(shutil.copytree(made, tmp_path / "study"))


def snapshot(folder):
    """Every file under `folder`: its bytes and mtime (ns)."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def fails(capsys, folder, argv, *expected):
    """Run stage `argv`; it must exit 1 with every `expected` text in its message
    and leave `folder` exactly as it was. Returns the message."""
    before = snapshot(folder)
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    message = capsys.readouterr().err
    print(message)  # shown by pytest -rP: the messages users get
    assert exit_.value.code == 1, message
    for text in expected:
        assert str(text) in message, f"{text!r} not in:\n{message}"
    assert snapshot(folder) == before, "the failing stage wrote, changed or left files"
    assert not list(Path(folder).rglob("*.tmp"))
    return message


def acts(study, variant="latent4", seeds=(0, 1), names=("epoch0", "final")):
    return [study / variant / f"seed{s}" / "activations" / f"{n}.h5" for s in seeds for n in names]


def consistency(study, files):
    out = study / "similarity" / "latent4"
    return ["analysis", "consistency", "--activations", *files, "--out", out / "consistency.csv",
            out / "mds.csv", out / "clusters.csv", out / "instance_mds.csv", out / "mirrors.csv",
            "--settings",
            '{"bootstrap": 10, "ci": 0.9, "seed": 0}']


def measure(study, files):
    return ["measure", "linear_cka", "--activations", *files,
            "--out-h5", study / "similarity" / "linear_cka.h5",
            "--out-csv", study / "similarity" / "linear_cka.csv", "--settings",
            '{"options": {}, "dtype": "float64", "device": "cpu", "max_memory_gb": null}']


def activations(study, run, names=("epoch0", "final")):
    return ["activations", "--data", study / "data" / "digits.h5",
            "--checkpoints", *[run / "checkpoints" / f"{n}.pt" for n in names],
            "--out", *[run / "new" / f"{n}.h5" for n in names]]


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# -------------------------------------------------------- the stages work


def test_the_stages_run_on_good_input(study, capsys):
    """The control: the same commands on unbroken files succeed."""
    main([str(a) for a in consistency(study, acts(study))])
    main([str(a) for a in activations(study, study / "latent4" / "seed0")])
    assert (study / "similarity" / "latent4" / "consistency.csv").exists()
    assert (study / "latent4" / "seed0" / "new" / "final.h5").exists()


def test_a_diverged_seeds_files_pass_the_checks(study, capsys):
    """The control for diverged runs (training.on_divergence: exclude): their
    checkpoints hold no weights and their activation files no layers, by design."""
    from hourglass.train import save_checkpoint

    run = study / "latent4" / "seed2"
    for name in ("epoch0", "final"):
        save_checkpoint(run / "checkpoints" / f"{name}.pt", {}, settings("latent4", 4), (1, 8, 8),
                        2, 1, diverged="loss is nan")
    main([str(a) for a in activations(study, run)])
    files = acts(study) + [run / "new" / "epoch0.h5", run / "new" / "final.h5"]
    main([str(a) for a in consistency(study, files)])
    main([str(a) for a in measure(study, files)])
    assert (study / "similarity" / "linear_cka.csv").exists()


# ---------------------------------------------------------- dataset files


def test_missing_dataset_file(study, capsys):
    (study / "data" / "digits.h5").unlink()
    fails(capsys, study, ["train", "--data", study / "data" / "digits.h5", "--seed", 0,
                          "--out-dir", study / "new", "--settings", json.dumps(settings("latent4", 4))],
          f"there is no dataset file {study / 'data' / 'digits.h5'}", "run snakemake")


def test_truncated_dataset_file(study, capsys):
    truncate(study / "data" / "digits.h5")
    fails(capsys, study, activations(study, study / "latent4" / "seed0"),
          f"cannot read dataset file {study / 'data' / 'digits.h5'}", "truncated",
          "delete it and re-run snakemake")


def test_dataset_file_of_an_older_format(study, capsys):
    with h5py.File(study / "data" / "digits.h5", "a") as f:
        del f.attrs["format_version"]
    fails(capsys, study, ["train", "--data", study / "data" / "digits.h5", "--seed", 0,
                          "--out-dir", study / "new", "--settings", json.dumps(settings("latent4", 4))],
          f"dataset file {study / 'data' / 'digits.h5'} was written by hourglass {__version__} "
          "in a file format from before format versions", f"reads file format {FORMAT_VERSION}",
          "snakemake --forceall")


def data_stage(root, out, dataset="digits", probe_size=10):
    return ["data", "--root", root, "--out", out, "--settings",
            f'{{"dataset": "{dataset}", "classes": null, "first": null, "val_fraction": 0.25, '
            f'"train_size": null, "probe_size": {probe_size}, "split_seed": 0}}']


def test_probe_larger_than_the_test_set(tmp_path, capsys):
    fails(capsys, tmp_path, data_stage("unused", tmp_path / "digits.h5", probe_size=5000),
          "data.probe_size is 5000 but only 360 test images of 'digits' are available",
          "set data.probe_size to at most 360")


def test_unknown_dataset_lists_the_known_ones(tmp_path, capsys):
    fails(capsys, tmp_path, data_stage("unused", tmp_path / "x.h5", dataset="imagenet"),
          "unknown dataset 'imagenet'; known: digits, fashion_mnist, mnist, cifar10")


def test_missing_raw_dataset(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    fails(capsys, tmp_path, data_stage(tmp_path / "empty", tmp_path / "f.h5", "fashion_mnist"),
          f"dataset 'fashion_mnist' was not found in {tmp_path / 'empty'}",
          "apt-get install dataset-fashion-mnist")


def test_truncated_fashion_mnist_gz(tmp_path, capsys):
    """The Debian layout's .gz, cut off mid-stream (a download that stopped)."""
    write_idx_files(tmp_path / "fm", compress=True)
    truncate(tmp_path / "fm" / "t10k-images-idx3-ubyte.gz", keep=0.6)
    fails(capsys, tmp_path, data_stage(tmp_path / "fm", tmp_path / "f.h5", "fashion_mnist"),
          f"dataset file {tmp_path / 'fm' / 't10k-images-idx3-ubyte.gz'} cannot be read",
          "truncated", "apt-get install --reinstall dataset-fashion-mnist")


def test_fashion_mnist_gz_of_a_truncated_file(tmp_path, capsys):
    """A whole .gz whose content is cut off: fewer images than the header says."""
    arrays = write_idx_files(tmp_path / "fm", compress=True)
    with gzip.open(tmp_path / "fm" / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(idx_bytes(arrays["train-images-idx3-ubyte"])[:-100])
    fails(capsys, tmp_path, data_stage(tmp_path / "fm", tmp_path / "f.h5", "fashion_mnist"),
          f"dataset file {tmp_path / 'fm' / 'train-images-idx3-ubyte.gz'} is truncated",
          "promises [40, 28, 28] = 31360 bytes of data, it holds 31260")


def test_truncated_mnist_raw_file(tmp_path, capsys):
    """torchvision's layout: it would fail on a reshape naming no file."""
    write_idx_files(tmp_path / "root" / "MNIST" / "raw", compress=False)
    truncate(tmp_path / "root" / "MNIST" / "raw" / "train-labels-idx1-ubyte", keep=0.9)
    fails(capsys, tmp_path, data_stage(tmp_path / "root", tmp_path / "m.h5", "mnist"),
          f"dataset file {tmp_path / 'root' / 'MNIST' / 'raw' / 'train-labels-idx1-ubyte'} "
          "is truncated", "MNIST/raw")


def test_fewer_labels_than_images_in_fashion_mnist_gz(tmp_path, capsys):
    """The Debian layout, a labels file of another (smaller) download beside the images."""
    arrays = write_idx_files(tmp_path / "fm", compress=True)
    labels = tmp_path / "fm" / "train-labels-idx1-ubyte.gz"
    with gzip.open(labels, "wb") as f:
        f.write(idx_bytes(arrays["train-labels-idx1-ubyte"][:-3]))
    fails(capsys, tmp_path, data_stage(tmp_path / "fm", tmp_path / "f.h5", "fashion_mnist"),
          f"dataset 'fashion_mnist': {labels} holds 37 labels but "
          f"{tmp_path / 'fm' / 'train-images-idx3-ubyte.gz'} holds 40 images", "one label each")


def test_more_labels_than_images_in_mnist_raw(tmp_path, capsys):
    """torchvision's layout: it would pair the images with the first labels, silently."""
    raw = tmp_path / "root" / "MNIST" / "raw"
    arrays = write_idx_files(raw, compress=False)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(
        idx_bytes(np.concatenate([arrays["t10k-labels-idx1-ubyte"]] * 2)))
    fails(capsys, tmp_path, data_stage(tmp_path / "root", tmp_path / "m.h5", "mnist"),
          f"dataset 'mnist': {raw / 't10k-labels-idx1-ubyte'} holds 40 labels but "
          f"{raw / 't10k-images-idx3-ubyte'} holds 20 images", "one label each")


def test_label_outside_the_classes(tmp_path, capsys):
    """A label 10 among Fashion-MNIST's 10 classes (0 to 9)."""
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    arrays = write_idx_files(raw, compress=False)
    labels = arrays["train-labels-idx1-ubyte"].copy()
    labels[[5, 7]] = [10, 12]
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    fails(capsys, tmp_path, data_stage(tmp_path / "root", tmp_path / "f.h5", "fashion_mnist"),
          f"dataset 'fashion_mnist': {raw / 'train-labels-idx1-ubyte'} holds 2 of 40 labels "
          "outside its 10 classes (0 to 9), the first 10 at position 5")


# ------------------------------------------------------- activation files


def test_truncated_activation_file(study, capsys):
    bad = study / "latent4" / "seed1" / "activations" / "final.h5"
    truncate(bad)
    fails(capsys, study, consistency(study, acts(study)),
          f"cannot read activations file {bad}", "truncated", "delete it and re-run snakemake",
          "nothing was computed or written")


def test_activation_file_missing_a_layer(study, capsys):
    bad = study / "latent4" / "seed0" / "activations" / "epoch0.h5"
    with h5py.File(bad, "a") as f:
        del f["layers/bottleneck1"]
    fails(capsys, study, consistency(study, acts(study)),
          f"activations file {bad} has no layer 'bottleneck1', though its attributes list it")


def test_activation_layer_of_the_wrong_shape(study, capsys):
    bad = study / "latent4" / "seed0" / "activations" / "final.h5"
    with h5py.File(bad, "a") as f:
        del f["layers/bottleneck1"]
        f["layers"].create_dataset("bottleneck1", data=np.zeros((PROBE, 3), np.float32))
    fails(capsys, study, measure(study, acts(study) + acts(study, "latent8")),
          f"activations file {bad}: layer 'bottleneck1' holds [3] values per probe image, its "
          "attributes say [4]")


def test_activation_files_of_different_probe_sets(study, capsys):
    bad = study / "latent8" / "seed1" / "activations" / "epoch0.h5"
    with h5py.File(bad, "a") as f:
        for name in LAYERS:
            data = f["layers"][name][:50]
            del f["layers"][name]
            f["layers"][name] = data
    fails(capsys, study, measure(study, acts(study) + acts(study, "latent8")),
          "the activation files disagree on the number of probe images: most hold 60",
          f"{bad}: 50", "recorded on different dataset files")


@pytest.mark.parametrize("version,layout", [
    (None, "a file format from before format versions (no format_version)"),
    (FORMAT_VERSION + 1, f"file format {FORMAT_VERSION + 1}"),
])
def test_activation_file_of_another_package_version(study, capsys, version, layout):
    """A results folder written by an older (or newer) hourglass."""
    bad = study / "latent4" / "seed0" / "activations" / "epoch0.h5"
    with h5py.File(bad, "a") as f:
        if version is None:
            del f.attrs["format_version"]
        else:
            f.attrs["format_version"] = version
            f.attrs["hourglass_version"] = "9.9.9"
    writer = __version__ if version is None else "9.9.9"
    fails(capsys, study, consistency(study, acts(study)),
          f"activations file {bad} was written by hourglass {writer} in {layout}",
          f"this is hourglass {__version__}, which reads file format {FORMAT_VERSION} only",
          "snakemake --forceall", "" if version is None else "or read these results with "
          "hourglass 9.9.9")


def test_every_bad_activation_file_is_named_at_once(study, capsys):
    """The measure stage checks all its files before computing: two problems, one message."""
    truncated = study / "latent8" / "seed0" / "activations" / "final.h5"
    truncate(truncated)
    layerless = study / "latent4" / "seed1" / "activations" / "epoch0.h5"
    with h5py.File(layerless, "a") as f:
        del f["layers/output"]
    fails(capsys, study, measure(study, acts(study) + acts(study, "latent8")),
          "2 problem(s) with the 8 activation files", f"cannot read activations file {truncated}",
          f"activations file {layerless} has no layer 'output'")


def test_consistency_of_one_seed(study, capsys):
    fails(capsys, study, consistency(study, acts(study, seeds=(0,))),
          "checkpoint 'final' has activations of 1 seed(s); consistency needs at least 2 "
          "(config key seeds)")


def test_consistency_of_two_variants_at_once(study, capsys):
    fails(capsys, study, consistency(study, acts(study) + acts(study, "latent8")),
          "the activation files are of several variants (latent4, latent8)")


def test_reconstructions_figure_from_a_file_without_output(study, capsys):
    bad = study / "latent8" / "seed0" / "activations" / "final.h5"
    with h5py.File(bad, "a") as f:
        del f["layers/output"]
    data = study / "data" / "digits.h5"  # a data file and an activation file per variant
    fails(capsys, study, ["figure", "reconstructions", "--inputs",
                          data, acts(study, seeds=(0,), names=("final",))[0], data, bad,
                          "--out", study / "figures" / "reconstructions.png"],
          f"activations file {bad} has no layer 'output'")


def test_similarity_matrix_of_an_older_format(study, capsys):
    import pandas as pd

    path = study / "similarity" / "linear_cka.h5"
    write_matrix(path, np.eye(2), pd.DataFrame({"variant": ["a", "a"], "seed": [0, 1]}),
                 "linear_cka", {})
    with h5py.File(path, "a") as f:
        del f.attrs["format_version"]
    fails(capsys, study, ["figure", "linear_cka_layers", "--inputs", path,
                          "--out", study / "figures" / "linear_cka_layers.png"],
          f"similarity matrix file {path} was written by hourglass {__version__} in a file "
          "format from before format versions")


def test_unknown_measure_at_the_measure_stage(study, capsys):
    argv = measure(study, acts(study))
    argv[1] = "cka"
    fails(capsys, study, argv, "unknown similarity measure 'cka'; known: rsa: ", "linear_cka: ")


def test_unknown_model_at_the_train_stage(study, capsys):
    s = settings("latent4", 4)
    s["model"]["architecture"] = "resnet"
    fails(capsys, study, ["train", "--data", study / "data" / "digits.h5", "--seed", 0,
                          "--out-dir", study / "new", "--settings", json.dumps(s)],
          "unknown model 'resnet'; known: fc, conv")


def test_unknown_figure(study, capsys):
    fails(capsys, study, ["figure", "heatmap", "--inputs", study / "data" / "digits.h5",
                          "--out", study / "figures" / "heatmap.png"],
          "unknown figure 'heatmap'; known: overview, training, reconstructions, consistency, mds, "
          "clusters, instance_mds, instances, silhouettes")


# ------------------------------------------------------------ checkpoints


def test_checkpoint_of_another_architecture(study, capsys):
    """latent8's weights under latent4's name: the good checkpoint beside it is
    not recorded either, since all are checked first."""
    run = study / "latent4" / "seed0"
    shutil.copy(study / "latent8" / "seed0" / "checkpoints" / "final.pt",
                run / "checkpoints" / "final.pt")
    state = torch.load(run / "checkpoints" / "final.pt", weights_only=True)
    state["model"]["latent"] = 4  # its settings say latent 4, its weights are latent 8's
    torch.save(state, run / "checkpoints" / "final.pt")
    fails(capsys, study, activations(study, run),
          f"checkpoint {run / 'checkpoints' / 'final.pt'} holds the weights of another "
          "architecture than its settings describe",
          "bottleneck1.0.weight: model (4, 8), checkpoint (8, 8)", "nothing was written")


def test_checkpoint_of_another_dataset(study, capsys, tmp_path):
    """A checkpoint of a 28x28 study dropped into this 8x8 one."""
    run = study / "latent4" / "seed0"
    other = tmp_path / "fm"
    write_idx_files(other, compress=True)
    prepare("fashion_mnist", other, False, 0.25, None, 10, 0, tmp_path / "fm.h5")
    s = settings("latent4", 4) | {"training": settings("latent4", 4)["training"] | {"max_epochs": 0}}
    train(tmp_path / "fm.h5", s, 0, tmp_path / "fm_run", log=lambda line: None)
    shutil.copy(tmp_path / "fm_run" / "checkpoints" / "final.pt", run / "checkpoints" / "final.pt")
    fails(capsys, study, activations(study, run),
          f"checkpoint {run / 'checkpoints' / 'final.pt'} is a model of [1, 28, 28] inputs, but "
          f"the probe images of {study / 'data' / 'digits.h5'} are [1, 8, 8]")


def test_truncated_checkpoint(study, capsys):
    run = study / "latent4" / "seed1"
    truncate(run / "checkpoints" / "epoch0.pt")
    fails(capsys, study, activations(study, run),
          f"cannot read checkpoint {run / 'checkpoints' / 'epoch0.pt'}", "damaged or truncated",
          "delete it and re-run snakemake")


def test_checkpoint_of_an_older_format(study, capsys):
    path = study / "latent4" / "seed1" / "checkpoints" / "final.pt"
    state = torch.load(path, weights_only=True)
    del state["format_version"]
    torch.save(state, path)
    fails(capsys, study, activations(study, study / "latent4" / "seed1"),
          f"checkpoint file {path} was written by hourglass {__version__} in a file format "
          "from before format versions")


class Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_payload_in_a_checkpoint_does_not_run(study, capsys, tmp_path):
    path = study / "latent4" / "seed0" / "checkpoints" / "final.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, "extra": Payload(tmp_path / "pwned")}, path)
    with pytest.raises(InputError, match="hourglass refuses to load"):
        load_checkpoint(path)
    fails(capsys, study, activations(study, study / "latent4" / "seed0"),
          f"checkpoint {path} holds objects other than tensors and plain data",
          "weights_only=True", "unsupported GLOBAL posix.mkdir", "do not trust it")
    assert not (tmp_path / "pwned").exists()
    torch.load(path, weights_only=False)  # the payload is real: unsafe loading runs it
    assert (tmp_path / "pwned").exists()


def test_pickled_payload_in_saved_progress_does_not_run(study, tmp_path):
    """Training's resume state is read with weights_only=True too: the payload is
    ignored and training starts over."""
    work = tmp_path / "run" / ".resume"
    work.mkdir(parents=True)
    torch.save({"identity": Payload(tmp_path / "pwned")}, work / "state.pt")
    lines = []
    train(study / "data" / "digits.h5", settings("latent4", 4), 0, tmp_path / "run",
          log=lines.append)
    assert not (tmp_path / "pwned").exists()
    assert any("cannot resume from" in line and "starting over" in line for line in lines)


def test_every_torch_load_and_yaml_read_is_safe():
    """No torch.load without weights_only=True, no yaml.load but with the safe loaders, in the package."""
    package = Path(__file__).resolve().parents[1] / "src" / "hourglass"
    for path in package.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and not line.lstrip().startswith(("#", '"')):
                assert "weights_only=True" in line, f"{path}:{number}: {line}"
            for unsafe in ("yaml.unsafe_load", "yaml.full_load", "yaml.Loader"):
                assert unsafe not in line, f"{path}:{number}: {line}"
            # yaml.load only with the config's loader, a subclass of the safe one
            if "yaml.load(" in line:
                assert "Loader=StrictLoader" in line, f"{path}:{number}: {line}"


# ------------------------------------------------- configs


@pytest.fixture(scope="module")
def workflow(workflow_copy):
    return workflow_copy("badconfig")


def rejected(root, configfiles, *expected, target=()):
    """A dry run that must fail, naming `expected`, and write nothing."""
    result = snakemake(root, "-n", "--configfile", *configfiles, *target, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, f"{text!r} not in:\n{output}"
    assert not (root / "results").exists()
    return output


BAD_CONFIGS = [
    ("model: {latnet: 4}", "unknown key model.latnet; allowed here: architecture, widths"),
    ("trainig: {lr: 0.1}", "unknown key trainig; allowed here: study, data"),
    ("model: {channels: [8, 8, 8]}", "unknown key model.channels; allowed here: architecture, widths"),
    ("variants: {a: {model: {latent: four}}}", "variants.a.model.latent: 'four' is not of type 'integer'"),
    ("variants: {a: {model: {latent: 0}}}", "variants.a.model.latent: 0 is less than the minimum of 1"),
    ("similarity: {measures: {linear_cka: {debias: true}}}",
     "similarity.measures.linear_cka: measure 'linear_cka' takes the options (debiased"),
    ("figures: {formats: [pdf, svg]}", "figures.formats: ['pdf', 'svg'] does not contain items"
     " matching the given schema (file formats of every figure; png must be among them"),
    ("training: {lr: fast}", "training.lr: 'fast' is not of type 'number'"),
    ("seeds: '0, 1'", "seeds: '0, 1' is not of type 'array'"),
    ("training: {max_epochs: -1}", "training.max_epochs: -1 is less than the minimum of 0"),
    ("checkpoints: [0, -2]", "checkpoints.1: -2 is less than the minimum of 0"),
    ("model: {latent: 0}", "model.latent: 0 is less than the minimum of 1 (units in each"),
    ("seeds: [0]", "seeds: [0] is too short (at least 2, since consistency compares seeds)"),
    ("data: {probe_size: 5}", "data.probe_size: 5 is less than the minimum of 10"),
    ("variants: {latent4: {data: {classes: [1, 10]}}}",
     "variants.latent4.data.classes: 10 is not a class of 'digits'; its classes are 0 (0)"),
    ("data: {classes: [2, 2]}", "data.classes: [2, 2] has non-unique elements"),
    ("data: {classes: [1, 7], probe_size: 100}",
     "data.probe_size: 100 probe images asked for, but classes [1, 7] of 'digits' have at most 73"),
    ("data: {dataset: imagenet}",
     "data.dataset: 'imagenet' is not known; choose one of: digits, fashion_mnist, mnist, cifar10"),
    ("model: {architecture: resnet}", "model.architecture: 'resnet' is not known; choose one of: fc, conv"),
    ("similarity: {measures: {cka: {}}}",
     "'cka' is not known; choose one of: rsa, linear_cka, rbf_cka, procrustes"),
    ("study: ../x", "study: '../x' does not match: letters, digits, '_', '.', '-' on one line"),
    ("study: /tmp/abs", "study: '/tmp/abs' does not match"),
    ("study: a/../../b", "study: 'a/../../b' does not match"),
    ("variants: {'../escape': {}}", "variants: '../escape' does not match"),
    ("variants: {'/abs': {}}", "variants: '/abs' does not match"),
    ("variants: {'a/b': {}}", "variants: 'a/b' does not match"),
    ('study: "tiny\\n"', "study: 'tiny\\n' does not match"),  # a newline $ would let through
    ("variants: {a: {}, a: {model: {latent: 2}}}", "line 1, column 19: key 'a' is given twice"),
    # a billion laughs: nine levels of aliases, 10^9 strings once expanded
    ("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "\n".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)),
     "line 2, column 10: an alias (*l0) is not allowed in a config"),
]


@pytest.mark.parametrize("bad,message", BAD_CONFIGS)
def test_bad_config_is_named_by_the_start_up_checks(tmp_path, bad, message):
    """The checks the Snakefile runs before anything else, in this process:
    check_files reads each file strictly and merges them as --configfile does,
    then runs the Snakefile's check_config and check_measures."""
    (tmp_path / "bad.yaml").write_text(bad + "\n")
    with pytest.raises(ConfigError) as error:
        check_files([REPO / "tests" / "tiny.yaml", tmp_path / "bad.yaml"], SCHEMA)
    assert message in str(error.value)


# Snakemake itself stops on one bad config of each kind: a key the schema does
# not know, a value only the data can refute, a measure's option, and files
# its own loader would take (a key given twice, an alias that expands to a
# billion strings)
SNAKEMAKE_STOPS = [(bad, message) for bad, message in BAD_CONFIGS if message.startswith((
    "unknown key model.latnet", "variants.latent4.data.classes", "similarity.measures.",
    "line 1, column 19", "line 2, column 10"))]


@pytest.mark.slow
@pytest.mark.parametrize("bad,message", SNAKEMAKE_STOPS)
def test_bad_config_stops_before_any_job(workflow, tmp_path, bad, message):
    (tmp_path / "bad.yaml").write_text(bad + "\n")
    rejected(workflow, ["tiny.yaml", str(tmp_path / "bad.yaml")], message)


@pytest.mark.slow
def test_configfile_that_does_not_parse(workflow, tmp_path):
    """Snakemake parses --configfile itself, and names no file; hourglass check does."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: tiny\nvariants:\n  a: {model: {latent: 4}\n  b: {}\n")
    rejected(workflow, ["tiny.yaml", str(bad)], "not valid JSON or YAML")
    result = subprocess.run([sys.executable, "-m", "hourglass", "check", "tiny.yaml", str(bad)],
                            cwd=workflow, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(workflow / "src")))
    assert result.returncode == 1
    assert f"config file {bad} does not parse as YAML, line 4, column" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("text,message", [
    ("study: tiny\nvariants: [a\n", "config file config.yaml does not parse as YAML, line 3"),
    ("study: !!python/object/apply:os.mkdir [pwned]\nvariants: {a: {}}\n",
     "config file config.yaml does not parse as YAML, line 1, column 8: could not determine a "
     "constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.mkdir'"),
])
def test_default_config_that_does_not_parse_or_runs_code(workflow_copy, text, message):
    root = workflow_copy("badyaml")
    (root / "config.yaml").write_text(text)
    result = snakemake(root, "-n", check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert not (root / "pwned").exists() and not (root / "results").exists()


@pytest.mark.slow
def test_python_tag_in_a_configfile_runs_nothing(workflow, tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text(f"study: !!python/object/apply:os.mkdir [{tmp_path / 'pwned'}]\n")
    rejected(workflow, ["tiny.yaml", str(bad)], "not valid JSON or YAML")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_a_target_inside_the_study_is_planned(workflow):
    """The control for the targets below."""
    out = snakemake(workflow, "-n", "--configfile", "tiny.yaml", "--",
                    "results/tiny/latent4/seed0/metrics.csv").stdout
    assert "rule train:" in out and "variant=latent4, seed=0" in out


@pytest.mark.slow
@pytest.mark.parametrize("target", [
    "results/tiny/../../outside/seed0/metrics.csv",
    "/tmp/outside/results/tiny/latent4/seed0/metrics.csv",
    "results/tiny/latent4/seed0/../../../../outside/checkpoints/final.pt",
    "results/tiny/sub/latent4/seed0/metrics.csv",          # a '/' in {variant}
    "results/tiny/latent4/seed0/x/metrics.csv",            # a '/' in {seed}
    "results/tiny/latent4/seed0x/activations/final.h5",    # {seed} is digits only
    "results/tiny/similarity/sub/linear_cka.csv",          # a '/' in {measure}
    "results/tiny/similarity/sub/latent4/consistency.csv",
    "results/tiny/figures/sub/consistency.png",            # a '/' in {figure}
    "results/tiny/figures/../../../outside.png",
])
def test_no_wildcard_matches_a_path_outside_the_study(workflow, target):
    rejected(workflow, ["tiny.yaml"], "MissingRuleException", "No rule to produce",
             target=["--", target])


# --------------------------------------- a real results folder, via snakemake


@pytest.fixture
def ran_copy(tiny_study, tmp_path):
    """A copy of the tiny study, run to the end."""
    return copy_of(tiny_study, tmp_path / "ran")


def snakemake_fails(root, log, *expected):
    """Run the study (consistency tables) again: it must fail, `log` naming
    `expected`, and leave every finished file as it was."""
    results = root / "results" / "tiny"
    before = {p: v for p, v in snapshot(results).items() if not str(p).startswith("logs")}
    result = snakemake(root, "--configfile", "tiny.yaml", "--",
                       "results/tiny/similarity/consistency.csv", check=False)
    assert result.returncode != 0
    message = (results / "logs" / log).read_text()
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    after = {p: v for p, v in snapshot(results).items() if not str(p).startswith("logs")}
    return before, after


@pytest.mark.slow
def test_results_folder_of_an_older_version_for_real(ran_copy):
    """An activation file without format_version (as hourglass before format
    versions wrote it): the consistency job re-runs, stops, and says why."""
    bad = "results/tiny/latent4/seed1/activations/epoch2.h5"
    with h5py.File(ran_copy / bad, "a") as f:
        del f.attrs["format_version"]
    before, after = snakemake_fails(
        ran_copy, "consistency/latent4.log",
        f"activations file {bad} was written by hourglass {__version__} in a file format from "
        "before format versions", "snakemake --forceall")
    gone = {Path("similarity/latent4") / f"{table}.csv"
            for table in ("consistency", "mds", "clusters", "instance_mds", "mirrors")}
    assert not gone & set(after)  # the failed job's outputs: none
    assert {p: v for p, v in before.items() if p not in gone} == after  # the rest: untouched
    assert not list((ran_copy / "results").rglob("*.tmp"))


@pytest.mark.slow
def test_checkpoint_of_another_architecture_for_real(ran_copy):
    """latent8's final checkpoint copied over latent4's, settings and all: the
    activations job of that seed re-runs and stops naming the checkpoint."""
    bad = "results/tiny/latent4/seed0/checkpoints/final.pt"
    state = torch.load(ran_copy / "results/tiny/latent8/seed0/checkpoints/final.pt",
                       weights_only=True)
    state["model"]["latent"] = 4
    torch.save(state, ran_copy / bad)
    before, after = snakemake_fails(
        ran_copy, "activations/latent4/seed0.log",
        f"checkpoint {bad} holds the weights of another architecture than its settings describe",
        "bottleneck1.0.weight: model (4, 16), checkpoint (8, 16)")
    gone = {Path(f"latent4/seed0/activations/{n}.h5") for n in ("epoch0", "epoch2", "final")}
    assert not gone & set(after)
    changed = {p for p in before if p not in gone and before[p] != after.get(p)}
    assert not changed, changed
    assert not list((ran_copy / "results").rglob("*.tmp"))
