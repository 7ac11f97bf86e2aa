"""Training killed with SIGKILL at several points, then run again, writes the
same bytes as a run that was never interrupted."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from hourglass.activations import record

# Wide layers make each save take milliseconds (a window a kill can hit) and an
# epoch take long enough to be killed in the middle.
SETTINGS = {
    "variant": "wide",
    "model": dict(architecture="fc", widths=[512, 512], latent=4, bottleneck_layers=1,
                  activation="relu", latent_activation="relu", init="glorot_uniform"),
    "training": dict(loss="mse", lr=0.0005, batch_size=16, max_epochs=4, patience=10),
    "checkpoints": [0, 2, 4],
}


def start(digits_file, out, settings=SETTINGS, src=REPO / "src"):
    return subprocess.Popen(
        [sys.executable, "-m", "hourglass", "train", "--data", str(digits_file), "--seed", "0",
         "--out-dir", str(out), "--settings", json.dumps(settings)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONPATH=str(src)))  # this checkout's code, or an edited copy


def finish(digits_file, out, settings=SETTINGS, src=REPO / "src"):
    proc = start(digits_file, out, settings, src)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log
    return log


def outputs(out):
    """Every output's bytes; metrics without the seconds column (time is never repeatable)."""
    files = {p.name: p.read_bytes() for p in sorted((out / "checkpoints").iterdir())}
    with open(out / "metrics.csv") as f:
        files["metrics"] = [row[:-1] for row in csv.reader(f)]
    return files


@pytest.fixture(scope="module")
def reference(digits_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    finish(digits_file, out)
    assert not (out / ".resume").exists()
    return out


def kill_when(proc, condition, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "training ended before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_early(digits_file, tmp_path, reference):
    proc = start(digits_file, tmp_path)
    kill_when(proc, lambda: (tmp_path / ".resume" / "state.pt").exists())
    finish(digits_file, tmp_path)
    assert outputs(tmp_path) == outputs(reference)


def test_killed_mid_epoch(digits_file, tmp_path, reference):
    proc = start(digits_file, tmp_path)
    for line in proc.stdout:  # epoch 2 done: its seconds tell how long epoch 3 takes
        if line.startswith("epoch 2:"):
            break
    seconds = float(line.split()[6])
    time.sleep(seconds / 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log = finish(digits_file, tmp_path)
    assert "resuming after epoch 2" in log
    assert outputs(tmp_path) == outputs(reference)


def test_killed_while_writing_a_checkpoint(digits_file, tmp_path, reference):
    resume = tmp_path / ".resume"

    def writing():
        return resume.exists() and any(p.name.endswith(".tmp") for p in resume.iterdir())

    proc = start(digits_file, tmp_path)
    kill_when(proc, lambda: (resume / "state.pt").exists() and writing())
    assert writing(), "the kill was meant to leave a half-written file"
    log = finish(digits_file, tmp_path)
    assert "resuming after epoch" in log
    assert outputs(tmp_path) == outputs(reference)
    assert not list(tmp_path.rglob("*.tmp"))


def test_activations_of_a_resumed_run_are_identical(digits_file, tmp_path, reference):
    proc = start(digits_file, tmp_path / "run")
    kill_when(proc, lambda: (tmp_path / "run" / ".resume" / "epoch2.pt").exists())
    finish(digits_file, tmp_path / "run")
    for name, run in (("a.h5", reference), ("b.h5", tmp_path / "run")):
        record(run / "checkpoints" / "final.pt", digits_file, tmp_path / name)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_progress_of_other_settings_is_not_resumed(digits_file, tmp_path, reference):
    proc = start(digits_file, tmp_path)
    kill_when(proc, lambda: (tmp_path / ".resume" / "epoch2.pt").exists())
    other = {**SETTINGS, "training": {**SETTINGS["training"], "lr": 0.001}}
    log = finish(digits_file, tmp_path, other)
    assert "holds progress made with other settings; starting over" in log
    assert outputs(tmp_path) != outputs(reference)


def test_progress_of_other_code_is_not_resumed(digits_file, tmp_path):
    """Killed, the model's code edited, run again: the run starts over and
    equals a fresh run of the edited code, not a mix of the two."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    proc = start(digits_file, tmp_path / "run", src=src)
    kill_when(proc, lambda: (tmp_path / "run" / ".resume" / "epoch2.pt").exists())
    models = src / "hourglass" / "models.py"
    models.write_text(models.read_text().replace("nn.ReLU()", "nn.Tanh()"))
    log = finish(digits_file, tmp_path / "run", src=src)
    assert "holds progress made with other training code" in log and "resuming" not in log
    finish(digits_file, tmp_path / "fresh", src=src)
    assert outputs(tmp_path / "run") == outputs(tmp_path / "fresh")
