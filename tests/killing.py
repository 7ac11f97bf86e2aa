"""Helpers of tests/test_kill.py and tests/test_stress.py: a study with many
seeds, Snakemake started in its own process group and killed with SIGKILL,
and the outputs read back to check that none is half-written and to compare
runs byte for byte."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import matplotlib.image
import pandas as pd
import torch
import yaml

FAULTS = Path(__file__).resolve().parent / "faults"  # sitecustomize.py: cut writes short
STUDY = "stress"
SEEDS = [0, 1, 2, 3]
VARIANTS = ["latent2"]
MEASURE = "linear_cka"
# 4 trainings of 2 epochs, 3 checkpoints each: small enough to run three times
# in a few minutes on 2 cores, enough seeds to keep more jobs busy at once
# than there are cores.
CONFIG = {
    "study": STUDY,
    "data": {"dataset": "digits", "probe_size": 40},
    "seeds": SEEDS,
    "checkpoints": [0, 1],
    "model": {"architecture": "fc", "widths": [16, 8]},
    "training": {"batch_size": 64, "max_epochs": 2, "patience": 2},
    "variants": {"latent2": {"model": {"latent": 2}}},
    "similarity": {"bootstrap": 400, "measures": {MEASURE: {}}},
    "figures": {"formats": ["png"], "dpi": 50},
}
# Seconds before a wait gives up: only a guard against a hung run. On a loaded
# 2-core machine (CI, other test runs) the study takes several times as long as
# on an idle one, and a serial run of it is tens of Python processes in a row.
TIMEOUT = 3600


def write_config(root):
    (root / "stress.yaml").write_text(yaml.safe_dump(CONFIG))
    return root


def environment(faults=None, markers=None):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if faults:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAULTS), env.get("PYTHONPATH")]))
        env["HOURGLASS_FAULTS"] = ";".join(f"{stage}={regex}" for stage, regex in faults.items())
        env["HOURGLASS_FAULT_MARKERS"] = str(markers)
    return env


def snakemake(root, *args, check=True):
    """Run Snakemake on the study to the end; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--configfile", "stress.yaml", *args],
        cwd=root, env=environment(), capture_output=True, text=True, timeout=TIMEOUT)
    if check and result.returncode:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def start(root, *args, faults=None, markers=None):
    """Snakemake in a session of its own: its jobs are in its process group."""
    log = open(root / f"snakemake-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--configfile", "stress.yaml", *args],
        cwd=root, env=environment(faults, markers), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)


def wait_for(proc, condition, timeout=TIMEOUT):
    """Poll `condition` until it holds (True) or Snakemake ends (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return condition()
        assert time.monotonic() < deadline, "timed out waiting for the moment to kill"
        time.sleep(0.02)
    return True


def markers_in(folder):
    """The markers sitecustomize.py dropped (whole ones: `.part` is one being written)."""
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".part"))


def kill_group(proc):
    """SIGKILL Snakemake and every job it started (one process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + 120  # generous: a loaded machine is slow to reap them too
    while True:  # the group is gone once no member is left to signal
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, "processes of the killed group still alive"
        time.sleep(0.05)


def study_dir(root):
    return root / "results" / STUDY


def output_files(root):
    """Every file under the study folder but the logs (they hold times)."""
    out = study_dir(root)
    return sorted(p for p in out.rglob("*") if p.is_file() and p.relative_to(out).parts[0] != "logs")


def temporaries(root):
    return sorted(p for p in study_dir(root).rglob(".*.tmp"))


def outputs(root):
    """{path: content} of every output; metrics.csv without its `seconds`
    column (time is never repeatable, as in tests/test_resume.py)."""
    files = {}
    for path in output_files(root):
        key = str(path.relative_to(study_dir(root)))
        if path.name == "metrics.csv":
            with open(path) as f:
                rows = list(csv.reader(f))
            assert rows[0][-1] == "seconds", rows[0]
            files[key] = [row[:-1] for row in rows]
        else:
            files[key] = path.read_bytes()
    return files


def differences(a, b):
    """The paths whose content differs between two `outputs`, or only one has."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def unreadable(root):
    """Files at their final names that do not read back whole: what a killed
    job must never leave. HDF5 files are read dataset by dataset."""
    broken = []
    for path in output_files(root):
        if path.name.endswith(".tmp") or ".resume" in path.parts:
            continue  # temporaries and resumable state are not outputs
        try:
            if path.suffix == ".h5":
                with h5py.File(path, "r") as f:
                    f.visititems(lambda _, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
            elif path.suffix == ".csv":
                assert len(pd.read_csv(path)) > 0
            elif path.suffix == ".png":
                matplotlib.image.imread(path)
            elif path.suffix == ".pt":
                torch.load(path, map_location="cpu", weights_only=True)
            elif path.suffix == ".yaml":  # the study's effective config
                assert yaml.safe_load(path.read_text())["study"]
            else:
                broken.append((path, "unexpected file"))
        except Exception as error:  # noqa: BLE001 - any failure to read is the finding
            broken.append((path, repr(error)))
    return broken
