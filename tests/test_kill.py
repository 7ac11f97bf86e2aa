"""Snakemake killed with SIGKILL (with every job it runs) while a job of each
stage is writing an output leaves no output that looks finished, and the run
completed afterwards writes the same bytes as an uninterrupted one.

A write is caught in the act by tests/faults/sitecustomize.py: the temporary
of the stage's output is cut to half its size just before its rename, and the
job waits there to be killed; every other job running at that moment is
killed wherever it is. After each kill the test checks what is on disk, runs
`snakemake --unlock` (the killed Snakemake's locks stay) and starts again
with `--rerun-incomplete`, with the stages not yet killed still armed, until
every stage has been killed once; then it runs the study to the end.
"""

from pathlib import Path

import pytest

import killing

pytestmark = [pytest.mark.slow, pytest.mark.faults]

# The write cut short in each stage: for jobs with several outputs, one that
# comes after others are already in place under their final names.
STAGES = {
    "data": r"data/digits-[0-9a-f]+\.h5$",
    "train": r"checkpoints/final\.pt$",  # after epoch0.pt and epoch1.pt are published
    "activations": r"activations/final\.h5$",  # after epoch0.h5 and epoch1.h5
    "consistency": r"similarity/[^/]+/mds\.csv$",  # after the variant's consistency.csv
    "gather": r"similarity/mds\.csv$",  # the gathered MDS table
    "measure": rf"similarity/{killing.MEASURE}\.csv$",  # after {measure}.h5
    "figure": r"figures/[^/]+\.png$",
}
# A temporary left by a job whose output the config no longer asks for (say a
# measure dropped after the kill): no write will ever replace it.
ORPHAN = Path("similarity") / ".rsa.h5.tmp"


@pytest.fixture(scope="module")
def killed(workflow_copy):
    """Kill the study once at each stage; what each kill left, and the log of
    the run that completed it."""
    root = killing.write_config(workflow_copy("killed"))
    markers = root / "markers"
    markers.mkdir()
    left = {}
    for _ in range(len(STAGES)):
        armed = {stage: regex for stage, regex in STAGES.items() if stage not in left}
        if not armed:
            break
        proc = killing.start(root, "--cores", "all", "--rerun-incomplete",
                             faults=armed, markers=markers)
        caught = killing.wait_for(proc, lambda: bool(killing.markers_in(markers)))
        killing.kill_group(proc)
        assert caught, f"Snakemake ended before a write of {sorted(armed)} was caught"
        for marker in killing.markers_in(markers):
            stage = marker.name.split(".")[0]
            target, tmp = (Path(p) for p in marker.read_text().split())
            left.setdefault(stage, {
                "target": target, "target_exists": target.exists(),
                "tmp_size": tmp.stat().st_size if tmp.exists() else None,
                "unreadable": killing.unreadable(root),
                "temporaries": killing.temporaries(root),
            })
        for marker in markers.iterdir():
            marker.unlink()
        killing.snakemake(root, "--unlock")
    (killing.study_dir(root) / ORPHAN).write_bytes(b"half an HDF5 file")
    log = killing.snakemake(root, "--cores", "all", "--rerun-incomplete")
    return root, left, log


@pytest.mark.parametrize("stage", STAGES)
def test_a_killed_job_leaves_no_output_that_looks_finished(killed, stage):
    _, left, _ = killed
    assert stage in left, f"no {stage} job was caught writing"
    kill = left[stage]
    assert not kill["target_exists"], f"{kill['target']} exists though its write was cut short"
    assert kill["tmp_size"] is not None, "the half-written temporary should still be there"
    assert kill["unreadable"] == [], "a file under its final name does not read back"
    hidden = kill["target"].with_name(f".{kill['target'].name}.tmp")
    assert hidden in kill["temporaries"]


def test_the_completed_run_matches_an_uninterrupted_serial_run(killed, serial_study):
    root, _, _ = killed
    reference, resumed = killing.outputs(serial_study), killing.outputs(root)
    assert killing.differences(reference, resumed) == []


def test_no_temporaries_remain_not_even_of_dropped_outputs(killed):
    root, _, log = killed
    assert killing.temporaries(root) == []
    assert f"removed the temporary of a killed job: results/{killing.STUDY}/{ORPHAN}" in log
    assert not list(killing.study_dir(root).rglob(".resume")), "training state left after success"


def test_killed_training_resumed_from_its_saved_state(killed):
    root, left, _ = killed
    run = left["train"]["target"].parents[1]  # {variant}/seed{s}
    log = root / "results" / killing.STUDY / "logs" / "train" / run.parent.name / f"{run.name}.log"
    assert "resuming after epoch 2" in log.read_text()
