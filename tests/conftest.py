import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hourglass.data import prepare

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def config_problems(study, config):
    """check_config's message for the test study `study` (a file of tests/)
    with the top-level keys of `config` replaced."""
    from hourglass.config import ConfigError, check_config

    written = {**yaml.safe_load((REPO / "tests" / study).read_text()), **config}
    with pytest.raises(ConfigError) as error:
        check_config(written, SCHEMA)
    return str(error.value)


@pytest.fixture(scope="session")
def digits_file(tmp_path_factory):
    """The digits dataset file as the pipeline writes it (probe of 100)."""
    out = tmp_path_factory.mktemp("data") / "digits.h5"
    prepare("digits", root="unused", download=False, val_fraction=0.1, train_size=None,
            probe_size=100, split_seed=0, out=out)
    return out


@pytest.fixture(scope="session")
def two_seeds(digits_file, tmp_path_factory):
    """A folder with seed0/ and seed1/ of a tiny network trained for 2 epochs:
    checkpoints/ and activations/ at epoch0 and final. Read only."""
    from hourglass.activations import record
    from hourglass.train import train

    root = tmp_path_factory.mktemp("runs")
    settings = {
        "variant": "small",
        "model": dict(architecture="fc", widths=[16, 8], latent=3, bottleneck_layers=1,
                      activation="relu", latent_activation="relu", init="glorot_uniform"),
        "training": dict(loss="mse", lr=0.01, batch_size=64, max_epochs=2, patience=10),
        "checkpoints": [0],
    }
    for seed in (0, 1):
        out = root / f"seed{seed}"
        train(digits_file, settings, seed, out, log=lambda line: None)
        for name in ("epoch0", "final"):
            record(out / "checkpoints" / f"{name}.pt", digits_file, out / "activations" / f"{name}.h5")
    return root


@pytest.fixture(scope="session")
def workflow_copy(tmp_path_factory):
    """A function that copies the workflow (and the tests' tiny studies) to a new folder."""
    def copy(name="workflow"):
        root = tmp_path_factory.mktemp(name)
        for entry in ("Snakefile", "config.yaml", "envs", "workflow", "src"):
            src = REPO / entry
            (shutil.copytree if src.is_dir() else shutil.copy)(src, root / entry)
        for study in ("tiny.yaml", "latent_tiny.yaml", "vae_tiny.yaml", "cae_tiny.yaml",
                      "inversion_tiny.yaml"):
            shutil.copy(REPO / "tests" / study, root / study)
        return root
    return copy


def debian_packages(*packages):
    """Install Debian packages a test needs (apt-get, as root, as in CI),
    or skip the test where that cannot be done, saying what to install."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"needs Debian's {', '.join(packages)}: as root, "
                    f"apt-get install -y {' '.join(packages)}")
    install = ["apt-get", "install", "-y", "-qq", *packages]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(install, env=env, capture_output=True).returncode:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)


def snakemake(workdir, *args, check=True):
    """Run Snakemake (2 cores) in `workdir` with the interpreter of the tests."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir, env=env, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def tiny_study(workflow_copy):
    """A copy of the workflow with the tiny study (tests/tiny.yaml) run to the
    end, once for every module that reads it or dry-runs edits of it: a test
    that changes it puts it back, one that runs jobs works on a copy_of() it."""
    root = workflow_copy("tiny")
    snakemake(root, "--configfile", "tiny.yaml")
    return root


def copy_of(study, folder):
    """A copy of a study's workflow folder (results, Snakemake's records, and
    every file's times, so nothing looks newer than it is)."""
    return Path(shutil.copytree(study, folder, symlinks=True))


@pytest.fixture(scope="session")
def serial_study(workflow_copy):
    """tests/killing.py's study run once, one job at a time (`--cores 1`): the
    reference the killed and the parallel runs must match."""
    import killing

    root = killing.write_config(workflow_copy("serial"))
    killing.snakemake(root, "--cores", "1")
    return root


@pytest.fixture(scope="session")
def undefined_layers(tmp_path_factory):
    """Activation files of 3 seeds (variant `latent1`, checkpoint final, 12 probe
    images) whose layers have undefined similarities: `bottleneck1` has one unit
    (no correlation RDM) and `encoder1` is dead in seed 2 (every image alike,
    though not all units alike). `input` and `output` are alive."""
    import h5py
    import numpy as np

    from hourglass.io import write_attrs

    root = tmp_path_factory.mktemp("undefined")
    rng = np.random.default_rng(0)
    images = rng.random((12, 6))
    files = []
    for seed in range(3):
        layers = {"input": images, "encoder1": rng.normal(size=(12, 4)),
                  "bottleneck1": rng.normal(size=(12, 1)), "output": rng.random((12, 6))}
        if seed == 2:
            layers["encoder1"] = np.tile(rng.normal(size=4), (12, 1))
        path = root / f"seed{seed}.h5"
        with h5py.File(path, "w") as f:
            for name, act in layers.items():
                f.create_dataset(f"layers/{name}", data=act.astype(np.float32))
            write_attrs(f, layer_names=list(layers), seed=seed, epoch=2, variant="latent1",
                        layer_roles=["input", "encoder", "bottleneck", "output"],
                        shapes={n: [a.shape[1]] for n, a in layers.items()}, model={},
                        checkpoint="final", diverged="")
        files.append(path)
    return files
