"""The tiny study on a real SLURM, through the project's slurm profile.

tests/cluster/slurm-up starts a private one-node cluster (one fake GPU) for
this module and slurm-down stops it. The study runs twice: locally, and
through `--workflow-profile workflow/profiles/slurm`, during which one
training job is killed with scancel. Run with `make test-cluster`.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.cluster

# Variant latent8 trains on CUDA: its jobs must ask SLURM for a GPU, get the
# fake one, find no CUDA device and train on CPU, so its numbers equal a
# local run's.
CUDA_VARIANT = """\
variants:
  latent4:
    model: {latent: 4}
  latent8:
    model: {latent: 8}
    training: {lr: 0.002, device: cuda}
"""
CONFIG = ["--configfile", "tiny.yaml", "cuda.yaml"]
# What a cluster without accounting (no sacct) needs, plus quick polling so
# the test does not spend its time waiting; the profile is used as it is.
SLURM_ARGS = ["--workflow-profile", "workflow/profiles/slurm",
              "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "2",
              "--seconds-between-status-checks", "2",
              # keep every job's log, to tell which seed a job ran
              "--slurm-keep-successful-logs"]
RUN_TIMEOUT = 1200


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The environment of a running private cluster: its commands first on PATH."""
    state = tmp_path_factory.mktemp("slurm")
    # slurm-up stops what it started if it fails; the pids file is left only
    # while daemons run
    subprocess.run([REPO / "tests" / "cluster" / "slurm-up", state, "--gpus", "1"], check=True)
    try:
        path = os.pathsep.join([str(state / "bin"), str(Path(sys.executable).parent),
                                os.environ["PATH"]])
        yield dict(os.environ, PATH=path)
    finally:
        subprocess.run([REPO / "tests" / "cluster" / "slurm-down", state], check=True)


def snakemake(workdir, env, *args):
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if result.returncode:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def slurm_jobs(env):
    """Every job the cluster knows (it keeps finished ones for MinJobAge), by id."""
    out = subprocess.run(["scontrol", "show", "job", "--oneliner"], env=env, check=True,
                         capture_output=True, text=True).stdout
    jobs = {}
    for line in out.splitlines():
        if line.startswith("JobId="):
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            jobs[int(fields["JobId"])] = fields
    return jobs


def seed_of(job):
    """(variant, seed) of a train + activations group job, from its SLURM log."""
    text = Path(job["StdOut"]).read_text() if Path(job["StdOut"]).exists() else ""
    m = re.search(r"--target-jobs .*?train:variant=(\w+),seed=(\d+)", text)
    return (m.group(1), int(m.group(2))) if m else None


def cancel_one_training(workdir, env, proc):
    """While `proc` runs the study, scancel the first group job seen training.

    Training has started once its log exists, and has not finished while its
    metrics.csv (written last) is missing. Returns (job id, variant, seed).
    """
    deadline = time.monotonic() + RUN_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        for job_id, job in slurm_jobs(env).items():
            if job["JobState"] != "RUNNING" or not job.get("Comment", "").startswith("rule_seed_run"):
                continue
            if (found := seed_of(job)) is None:
                continue
            run = workdir / "results" / "tiny" / found[0] / f"seed{found[1]}"
            log = workdir / "results" / "tiny" / "logs" / "train" / found[0] / f"seed{found[1]}.log"
            if log.exists() and not (run / "metrics.csv").exists():
                subprocess.run(["scancel", str(job_id)], env=env, check=True)
                return job_id, *found
        time.sleep(0.2)
    raise AssertionError("no training job was seen running: nothing was cancelled")


@pytest.fixture(scope="module")
def runs(cluster, workflow_copy):
    """The study run locally and on the cluster (one training job cancelled)."""
    local, remote = workflow_copy("local"), workflow_copy("remote")
    for root in (local, remote):
        (root / "cuda.yaml").write_text(CUDA_VARIANT)
    snakemake(local, cluster, "--cores", "2", *CONFIG)

    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *SLURM_ARGS, *CONFIG],
                            cwd=remote, env=cluster, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        cancelled = cancel_one_training(remote, cluster, proc)
        output, _ = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    seconds = time.monotonic() - started
    assert proc.returncode == 0, f"the study failed on SLURM:\n{output}"
    jobs = slurm_jobs(cluster)
    core_seconds = sum(int(j["NumCPUs"]) * to_seconds(j["RunTime"]) for j in jobs.values())
    print(f"\nSLURM run: {seconds:.0f} s wall, {len(jobs)} jobs, {core_seconds} core-seconds")
    return {"local": local, "remote": remote, "output": output, "jobs": jobs,
            "cancelled": cancelled}


def to_seconds(runtime):
    """SLURM's [days-]hh:mm:ss as seconds."""
    days, _, hms = runtime.rpartition("-")
    h, m, s = map(int, hms.split(":"))
    return ((int(days or 0) * 24 + h) * 60 + m) * 60 + s


def test_cluster_tables_are_byte_identical_to_a_local_run(runs):
    for table in ("consistency.csv", "mds.csv", "linear_cka.csv", "procrustes.csv"):
        local = runs["local"] / "results" / "tiny" / "similarity" / table
        remote = runs["remote"] / "results" / "tiny" / "similarity" / table
        assert remote.read_bytes() == local.read_bytes(), table


def test_one_submission_per_seed_and_a_gpu_only_for_cuda_training(runs):
    by_comment = {}
    for job in runs["jobs"].values():
        by_comment.setdefault(job.get("Comment", ""), []).append(job)
    # data and gather_consistency run on the submit host; train + activations
    # of a seed share one job (6 seeds, and the cancelled one again)
    groups = by_comment.pop("rule_seed_run_activations_train")
    assert len(groups) == 7
    measures = ("linear_cka", "procrustes")  # those of tests/tiny.yaml
    figures = ["clusters", "consistency", "instance_mds", "mds", "overview", "reconstructions",
               "training"] + [
        f"{m}_{view}" for m in measures for view in ("epochs", "layers", "seeds")]
    assert sorted(by_comment) == sorted(
        ["rule_consistency_wildcards_latent4", "rule_consistency_wildcards_latent8"]
        + [f"rule_figure_wildcards_{f}" for f in figures]
        + [f"rule_measure_wildcards_{m}" for m in measures])
    assert all(len(jobs) == 1 and "gpu" not in jobs[0].get("TresPerJob", "")
               for jobs in by_comment.values())
    seeds = {}
    for job in groups:
        variant, seed = seed_of(job)
        seeds[variant, seed] = seeds.get((variant, seed), 0) + 1
        gpus = job.get("TresPerJob", "")
        assert gpus == "gres:gpu:1" if variant == "latent8" else "gpu" not in gpus, (variant, job)
        assert job["NumCPUs"] == "1" and job["TRES"].startswith("cpu=1,mem=")
    assert sorted(seeds) == [(v, s) for v in ("latent4", "latent8") for s in (0, 1, 2)]
    log = runs["remote"] / "results" / "tiny" / "logs" / "train" / "latent8" / "seed0.log"
    assert "warning: training.device is 'cuda' but this job sees no CUDA device" in log.read_text()


def test_a_cancelled_training_job_is_resubmitted_and_the_study_completes(runs):
    job_id, variant, seed = runs["cancelled"]
    jobs = runs["jobs"]
    assert jobs[job_id]["JobState"] == "CANCELLED"
    # killed mid-training: its log never saw training finish
    assert "(Rule: train)" not in Path(jobs[job_id]["StdOut"]).read_text()
    again = [i for i, job in jobs.items() if i > job_id and job.get("Comment", "").startswith(
        "rule_seed_run") and seed_of(job) == (variant, seed)]
    assert len(again) == 1 and jobs[again[0]]["JobState"] == "COMPLETED"
    # the retry is the second attempt, with the profile's resources scaled by it
    assert "--attempt 2" in Path(jobs[again[0]]["StdOut"]).read_text()
    assert jobs[again[0]]["TRES"].startswith("cpu=1,mem=8000M")
    metrics = runs["remote"] / "results" / "tiny" / variant / f"seed{seed}" / "metrics.csv"
    assert metrics.exists()


def test_a_second_run_submits_nothing(runs, cluster):
    before = set(slurm_jobs(cluster))
    output = snakemake(runs["remote"], cluster, *SLURM_ARGS, *CONFIG)
    assert "Nothing to be done" in output
    assert set(slurm_jobs(cluster)) == before
