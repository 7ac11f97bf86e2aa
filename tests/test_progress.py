import io
import os
import pty
import subprocess
import sys
from types import SimpleNamespace

from hourglass.progress import bar, every

from conftest import REPO


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_redraws_one_line_on_a_terminal_and_ends_it():
    out = Terminal()
    for done in range(1, 5):
        bar(done, 4, "epoch 1/3", stream=out, width=8)
    assert out.getvalue().split("\r")[1:] == [
        "epoch 1/3 [##......] 1/4", "epoch 1/3 [####....] 2/4", "epoch 1/3 [######..] 3/4",
        "epoch 1/3 [########] 4/4\n"]


def test_bar_leaves_a_log_file_alone():
    out = io.StringIO()
    bar(1, 4, "epoch 1/3", stream=out)
    assert out.getvalue() == ""


def test_every_passes_the_first_line_then_waits(monkeypatch):
    # a clock that stands still: "(0 s)" even if a loaded machine stalls the test
    monkeypatch.setattr("hourglass.progress.time", SimpleNamespace(perf_counter=lambda: 1000.0))
    lines = []
    report = every(3600, lines.append)
    for i in range(100):
        report(f"step {i}")
    assert lines == ["step 0 (0 s)"]


def test_training_by_hand_shows_a_bar_its_log_does_not(digits_file, tmp_path):
    """A stage run in a terminal draws the bar on stderr; under Snakemake (a log file) it does not."""
    settings = ('{"variant": "v", "model": {"architecture": "fc", "widths": [8], "latent": 2, '
                '"bottleneck_layers": 1, "activation": "relu", "latent_activation": "relu", '
                '"init": "glorot_uniform"}, "training": {"loss": "mse", '
                '"lr": 0.01, "batch_size": 64, "max_epochs": 2, "patience": 5}, "checkpoints": []}')
    command = [sys.executable, "-m", "hourglass", "train", "--data", str(digits_file), "--seed", "0",
               "--settings", settings]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    main, child = pty.openpty()
    run = subprocess.Popen([*command, "--out-dir", str(tmp_path / "tty")], stdin=child,
                           stdout=child, stderr=child, env=env)
    os.close(child)
    shown = b""
    while True:  # read as it comes, so the child never blocks on a full terminal
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child has exited and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert run.wait() == 0
    assert b"\repoch 2/2 [" in shown and b"epoch 2: train" in shown
    logged = subprocess.run([*command, "--out-dir", str(tmp_path / "log")], env=env,
                            capture_output=True)
    assert logged.returncode == 0 and b"[#" not in logged.stdout + logged.stderr
    assert b"epoch 2: train" in logged.stdout
