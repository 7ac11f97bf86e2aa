"""Training killed with SIGKILL at several points, then run again, writes the
same bytes as a run that was never interrupted."""

import csv
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

import killing
from conftest import REPO
from hourglass.activations import record

pytestmark = pytest.mark.faults  # trainings killed and resumed: make test-faults

# Wide layers make an epoch take long enough to be killed in the middle.
SETTINGS = {
    "variant": "wide",
    "model": dict(architecture="fc", widths=[512, 512], latent=4, bottleneck_layers=1,
                  activation="relu", latent_activation="relu", init="glorot_uniform"),
    "training": dict(loss="mse", lr=0.0005, batch_size=16, max_epochs=4, patience=10),
    "checkpoints": [0, 2, 4],
}
# Seconds before a wait gives up: only a guard against a hung run. On a loaded
# 2-core machine (CI, other test runs) a training takes several times as long
# as on an idle one.
TIMEOUT = 1200


def start(digits_file, out, settings=SETTINGS, terminal=None, faults=None, markers=None,
          src=REPO / "src"):
    """The training, its output on a pipe or on `terminal` (a pty's fd: it draws its
    progress bar there); `faults` cut writes short as in tests/killing.py; `src` is
    the package it runs (this checkout's, or an edited copy)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    if faults:
        env.update(PYTHONPATH=os.pathsep.join([str(killing.FAULTS), env["PYTHONPATH"]]),
                   HOURGLASS_FAULTS=";".join(f"{stage}={regex}" for stage, regex in faults.items()),
                   HOURGLASS_FAULT_MARKERS=str(markers))
    return subprocess.Popen(
        [sys.executable, "-m", "hourglass", "train", "--data", str(digits_file), "--seed", "0",
         "--out-dir", str(out), "--settings", json.dumps(settings)],
        stdout=subprocess.PIPE if terminal is None else terminal,
        stderr=subprocess.STDOUT if terminal is None else terminal, text=True, env=env)


def finish(digits_file, out, settings=SETTINGS, src=REPO / "src"):
    proc = start(digits_file, out, settings, src=src)
    log, _ = proc.communicate(timeout=TIMEOUT)
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


def kill_when(proc, condition, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "training ended before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def killed_after_epoch_2_and_resumed(digits_file, tmp_path, settings):
    """A run of `settings` killed once epoch 2 is saved, then finished, writes
    what an uninterrupted run of them writes (both under tmp_path)."""
    finish(digits_file, tmp_path / "uninterrupted", settings)
    proc = start(digits_file, tmp_path / "run", settings)
    kill_when(proc, lambda: (tmp_path / "run" / ".resume" / "epoch2.pt").exists())
    log = finish(digits_file, tmp_path / "run", settings)
    assert "resuming after epoch" in log
    assert outputs(tmp_path / "run") == outputs(tmp_path / "uninterrupted")


def train_stacked(digits_file, variant_dir, settings):
    """`hourglass train-stacked` of seeds 0 and 1, its output on a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "hourglass", "train-stacked", "--data", str(digits_file),
         "--seeds", "0", "1", "--variant-dir", str(variant_dir), "--settings",
         json.dumps(settings)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")))


def test_stacked_seeds_killed_between_their_files_and_resumed(digits_file, tmp_path, reference):
    """training.stack_seeds killed once seed 1's epoch-2 checkpoint is in
    {variant}/.resume (the stack's progress of epoch 2 may not be), then
    finished: each seed's files are those of an uninterrupted stack, and seed
    0's those of seed 0 trained alone."""
    settings = {**SETTINGS, "training": {**SETTINGS["training"], "stack_seeds": True}}
    for name in ("uninterrupted", "run"):
        proc = train_stacked(digits_file, tmp_path / name, settings)
        if name == "run":
            kill_when(proc, lambda: (tmp_path / name / ".resume" / "seed1" / "epoch2.pt").exists())
            proc = train_stacked(digits_file, tmp_path / name, settings)
        log, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, log
    assert "resuming after epoch" in log
    for seed in ("seed0", "seed1"):
        assert outputs(tmp_path / "run" / seed) == outputs(tmp_path / "uninterrupted" / seed)
    assert outputs(tmp_path / "run" / "seed0") == outputs(reference)
    assert not (tmp_path / "run" / ".resume").exists()


def test_killed_early(digits_file, tmp_path, reference):
    proc = start(digits_file, tmp_path)
    kill_when(proc, lambda: (tmp_path / ".resume" / "state.pt").exists())
    finish(digits_file, tmp_path)
    assert outputs(tmp_path) == outputs(reference)


def test_killed_mid_epoch(digits_file, tmp_path, reference):
    # Killed once half of epoch 3's batches have begun, as the progress bar it
    # draws on a terminal before each batch shows. (Sleeping half of epoch 2's
    # time instead kills before epoch 2 is saved, or after epoch 3, whenever
    # the machine's load changes between the two epochs.)
    main, child = pty.openpty()
    proc = start(digits_file, tmp_path, terminal=child)
    os.close(child)
    shown, deadline = b"", time.monotonic() + TIMEOUT
    while not any(2 * int(done) >= int(total) for done, total in
                  re.findall(rb"\repoch 3/4 \[[#.]*\] (\d+)/(\d+)[\r\n]", shown)):  # whole bars
        assert time.monotonic() < deadline, "timed out waiting for epoch 3"
        if select.select([main], [], [], 1)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child has exited and closed the terminal
                chunk = b""
            assert chunk, "training ended before the kill"
            shown += chunk
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    os.close(main)
    log = finish(digits_file, tmp_path)
    assert "resuming after epoch 2" in log
    assert outputs(tmp_path) == outputs(reference)


def test_killed_while_writing_a_checkpoint(digits_file, tmp_path, reference):
    out, markers = tmp_path / "run", tmp_path / "markers"
    resume = out / ".resume"
    markers.mkdir()

    def writing():
        return resume.exists() and any(p.name.endswith(".tmp") for p in resume.iterdir())

    # The write of epoch 2's checkpoint (state.pt of epoch 1 saved) is cut short
    # and held by tests/faults/sitecustomize.py until the kill: polling for a
    # temporary that lives a few milliseconds misses every one of them on a
    # loaded machine, or sees one whose write ends before the kill lands.
    proc = start(digits_file, out, faults={"train": r"\.resume/epoch2\.pt$"}, markers=markers)
    kill_when(proc, lambda: (resume / "state.pt").exists() and bool(killing.markers_in(markers)))
    assert writing(), "the kill was meant to leave a half-written file"
    log = finish(digits_file, out)
    assert "resuming after epoch" in log
    assert outputs(out) == outputs(reference)
    assert not list(out.rglob("*.tmp"))


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
    code = models.read_text()
    assert "nn.Sigmoid()" in code
    models.write_text(code.replace("nn.Sigmoid()", "nn.Hardsigmoid()"))  # the output layer's
    log = finish(digits_file, tmp_path / "run", src=src)
    assert "holds progress made with other training code" in log and "resuming" not in log
    finish(digits_file, tmp_path / "fresh", src=src)
    assert outputs(tmp_path / "run") == outputs(tmp_path / "fresh")


def test_a_killed_denoising_run_resumes_its_noise(digits_file, tmp_path, reference):
    """The training noise continues where the saved state left it: a fresh noise
    stream on resuming would corrupt the remaining epochs' images differently."""
    denoising = {**SETTINGS, "training": {**SETTINGS["training"],
                                          "objective": {"name": "denoising", "noise_std": 0.3}}}
    killed_after_epoch_2_and_resumed(digits_file, tmp_path, denoising)
    assert outputs(tmp_path / "run")["final.pt"] != outputs(reference)["final.pt"]


def test_a_killed_run_in_steps_resumes_mid_pass(digits_file, tmp_path):
    """Epochs of 40 steps of 16 images end mid-pass over the digits: the rest
    of the pass under way is saved with the progress and trained on first."""
    steps = {**SETTINGS, "training": {**SETTINGS["training"], "max_epochs": 3,
                                      "epoch_steps": 40}}
    killed_after_epoch_2_and_resumed(digits_file, tmp_path, steps)


def test_a_killed_mixed_precision_run_resumes_its_loss_scale(digits_file, tmp_path):
    """fp16 training (autocast and a gradient scaler) of the cae resumes to the
    same bytes, the scaler's state saved with the rest of the progress."""
    import torch

    fp16 = {**SETTINGS, "model": dict(architecture="cae", levels=2, area="S", compression=1,
                                      final_norm=True),
            "training": {**SETTINGS["training"], "precision": "fp16", "max_epochs": 3}}
    finish(digits_file, tmp_path / "uninterrupted", fp16)
    proc = start(digits_file, tmp_path / "run", fp16)
    kill_when(proc, lambda: (tmp_path / "run" / ".resume" / "epoch2.pt").exists())
    state = torch.load(tmp_path / "run" / ".resume" / "state.pt", weights_only=True)
    assert state["scaler"]["scale"] > 1
    log = finish(digits_file, tmp_path / "run", fp16)
    assert "resuming after epoch" in log and "cae: 2,667 parameters" in log
    assert outputs(tmp_path / "run") == outputs(tmp_path / "uninterrupted")
