"""Many jobs at once: the study with 4 seed runs, started with more jobs at
once than there are cores (`--cores 8`), killed with SIGKILL once half the
trainings are done, then finished with `--cores all`, writes exactly what a
serial `--cores 1` run writes. No two jobs write the same file, and readers
open HDF5 files read-only."""

import re
from collections import Counter

import pytest

import killing
from conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.faults]
TRAININGS = len(killing.SEEDS) * len(killing.VARIANTS)


@pytest.fixture(scope="module")
def stressed(workflow_copy):
    root = killing.write_config(workflow_copy("stressed"))
    proc = killing.start(root, "--cores", "8")
    halfway = killing.wait_for(proc, lambda: len(list(
        killing.study_dir(root).glob("*/seed*/metrics.csv"))) >= TRAININGS // 2)
    killing.kill_group(proc)
    assert halfway, "Snakemake ended before half the trainings were done"
    at_kill = {
        "trained": len(list(killing.study_dir(root).glob("*/seed*/metrics.csv"))),
        "gathered": (killing.study_dir(root) / "similarity" / "consistency.csv").exists(),
        "unreadable": killing.unreadable(root),
        "resumable": len(list(killing.study_dir(root).glob("*/seed*/.resume/state.pt"))),
    }
    killing.snakemake(root, "--unlock")
    log = killing.snakemake(root, "--cores", "all", "--rerun-incomplete")
    return root, at_kill, log


def test_killed_halfway_leaves_nothing_half_written(stressed):
    _, at_kill, _ = stressed
    # the trainings run side by side and may all end within the same moment
    assert at_kill["trained"] >= TRAININGS // 2 and not at_kill["gathered"]
    assert at_kill["unreadable"] == []


def test_finished_in_parallel_it_matches_the_serial_run(stressed, serial_study):
    root, _, _ = stressed
    assert killing.differences(killing.outputs(serial_study), killing.outputs(root)) == []
    assert killing.temporaries(root) == []


def test_a_second_run_has_nothing_to_do(stressed):
    root, _, _ = stressed
    assert "Nothing to be done" in killing.snakemake(root, "--cores", "all", "-n")


def test_no_two_jobs_write_the_same_file(serial_study):
    """Every output and log of every job (dry run of the whole study, forced)
    is declared by one job only, and each training's undeclared working
    folder (.resume/) lies in a run folder of its own."""
    dry = killing.snakemake(serial_study, "--cores", "all", "-n", "-F", "-p")
    written, run_dirs, jobs = Counter(), Counter(), Counter()
    for line in dry.splitlines():
        if m := re.match(r"\s*(?:local)?rule (\w+):$", line):
            jobs[m.group(1)] += 1
        elif m := re.match(r"\s+(output|log): (.*)", line):
            written.update(m.group(2).split(", "))
        elif m := re.search(r"--out-dir (\S+)", line):
            run_dirs[m.group(1)] += 1
    assert jobs["train"] == jobs["activations"] == TRAININGS
    assert len(written) > 3 * TRAININGS
    assert [f for f, n in written.items() if n > 1] == []
    assert len(run_dirs) == TRAININGS and set(run_dirs.values()) == {1}


def test_readers_open_hdf5_read_only():
    """h5py.File is opened for writing only on an atomic_path temporary; every
    other opening is read-only (the stages' through io.open_h5)."""
    calls = []
    for path in sorted((REPO / "src" / "hourglass").rglob("*.py")):
        for line in path.read_text().splitlines():
            if "h5py.File(" in line:
                calls.append((path.name, line.strip()))
    readers = [c for c in calls if not re.search(r'h5py\.File\(tmp, "w"\)', c[1])]
    assert readers and all(re.search(r'h5py\.File\(\w+, "r"\)', line) for _, line in readers), calls
    assert ("io.py", 'return h5py.File(path, "r")') in readers
    assert len(calls) > len(readers)
