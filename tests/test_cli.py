"""The user commands: inspect, measures, new-study, compare, on real files."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, SCHEMA
from hourglass.activations import describe, read_layer, record
from hourglass.analyses.comparisons import compare
from hourglass.cli import main
from hourglass.config import check_config
from hourglass.data import prepare
from hourglass.io import read_matrix, write_matrix
from hourglass.similarity import MEASURES, linear_cka
from hourglass.train import load_checkpoint

LAYERS = ["input", "encoder1", "encoder2", "bottleneck1", "decoder1", "decoder2", "output"]


def hourglass(*args, cwd=REPO, src=REPO / "src"):
    """`python -m hourglass ARGS` in a fresh process, running the package under `src`."""
    env = dict(os.environ, PYTHONPATH=str(src))
    return subprocess.run([sys.executable, "-m", "hourglass", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)


def run(capsys, *args):
    """hourglass.cli.main(ARGS) in this process: (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def files(folder):
    """Every file under `folder`: its bytes and mtime (ns), to see that nothing was touched."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def matrix_file(two_seeds, tmp_path_factory):
    files = sorted(two_seeds.glob("seed*/activations/*.h5"))
    matrix, labels = compare(files, "linear_cka", {}, log=lambda line: None)
    out = tmp_path_factory.mktemp("similarity") / "linear_cka.h5"
    write_matrix(out, matrix, labels, "linear_cka", {})
    return out


# --- help -------------------------------------------------------------------

USER_COMMANDS = ("inspect", "measures", "check", "new-study", "compare")


def test_help_separates_user_commands_from_workflow_stages():
    result = hourglass("--help")
    assert result.returncode == 0, result.stderr
    users, stages = result.stdout.split("\ncommands:\n")[1].split("\nworkflow stages")
    for name in USER_COMMANDS:
        assert re.search(rf"^  {name} +\w", users, re.M)
    for name in ("config", "data", "train", "activations", "analysis", "measure", "gather",
                 "figure"):
        assert re.search(rf"^  {name} +\w", stages, re.M)
    assert re.findall(r"^  (\S+)", users, re.M) == list(USER_COMMANDS)
    assert result.stdout.startswith("usage: hourglass [-h] [--version] COMMAND ...")


@pytest.mark.parametrize("command", USER_COMMANDS)
def test_every_user_command_has_a_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: hourglass {command}")
    description = out.split("\n\n")[1]
    assert len(description.split()) > 15  # a paragraph, not just the usage


def test_no_command_is_an_error_that_lists_them(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "COMMAND" in err


# --- inspect ----------------------------------------------------------------

def test_inspect_activations(two_seeds, capsys):
    path = two_seeds / "seed1" / "activations" / "final.h5"
    code, out, err = run(capsys, "inspect", path)
    assert code == 0, err
    attrs = describe(path)
    assert out.splitlines()[0] == f"{path}: activations"
    for field in ("variant:", "seed:", "checkpoint:", "epoch:", "stimuli:", "model:",
                  "hourglass_version:"):
        assert re.search(rf"^{field} +\S", out, re.M), field
    assert re.search(r"^seed: +1$", out, re.M) and re.search(r"^checkpoint: +final$", out, re.M)
    assert re.search(rf"^epoch: +{attrs['epoch']}$", out, re.M)
    assert re.search(r"^stimuli: +100$", out, re.M)
    listed = re.findall(r"^  (\w+) +([\d x]+?) +(\d+) units +float32$", out, re.M)
    assert [name for name, _, _ in listed] == LAYERS
    assert dict((n, s) for n, s, _ in listed)["output"] == "1 x 8 x 8"
    assert dict((n, int(u)) for n, _, u in listed)["bottleneck1"] == 3


def test_inspect_json_is_the_files_attributes(two_seeds, capsys):
    path = two_seeds / "seed0" / "activations" / "epoch0.h5"
    code, out, _ = run(capsys, "inspect", "--json", path)
    assert code == 0
    d = json.loads(out)
    attrs = describe(path)
    assert d["kind"] == "activations" and d["path"] == str(path)
    assert [r["name"] for r in d["layers"]] == attrs["layer_names"]
    assert {r["name"]: r["shape"] for r in d["layers"]} == attrs["shapes"]
    assert d["model"] == attrs["model"] and d["checkpoint"] == "epoch0" and d["epoch"] == 0
    assert d["hourglass_version"] == attrs["hourglass_version"]


def test_inspect_checkpoint(two_seeds, capsys):
    path = two_seeds / "seed0" / "checkpoints" / "final.pt"
    model, state = load_checkpoint(path)
    code, out, err = run(capsys, "inspect", "--json", path)
    assert code == 0, err
    d = json.loads(out)
    assert d["kind"] == "checkpoint"
    assert (d["variant"], d["seed"], d["epoch"]) == ("small", 0, state["epoch"])
    assert d["model"] == state["model"] and d["input_shape"] == [1, 8, 8]
    assert d["parameters"] == {k: list(v.shape) for k, v in model.state_dict().items()}
    assert d["parameter_count"] == sum(p.numel() for p in model.parameters())
    code, out, _ = run(capsys, "inspect", path)
    assert f"parameter_count:   {d['parameter_count']}" in out
    first = next(iter(d["parameters"]))
    assert re.search(rf"^  {re.escape(first)} +{' x '.join(map(str, d['parameters'][first]))}$", out, re.M)


def test_inspect_dataset(digits_file, capsys):
    code, out, err = run(capsys, "inspect", digits_file)
    assert code == 0, err
    assert out.splitlines()[0] == f"{digits_file}: dataset"
    assert re.search(r"^dataset: +digits$", out, re.M)
    assert re.search(r"^image_shape: +\[1, 8, 8\]$", out, re.M)
    assert re.search(r"^  probe +100  1 x 8 x 8  10-10$", out, re.M)
    d = json.loads(run(capsys, "inspect", "--json", digits_file)[1])
    with h5py.File(digits_file) as f:
        assert {s: v["images"] for s, v in d["splits"].items()} == {
            s: len(f[s]["y"]) for s in ("train", "val", "test", "probe")}
    assert d["classes"] == [str(c) for c in range(10)] and d["settings"]["probe_size"] == 100


def test_inspect_similarity_matrix(matrix_file, capsys):
    matrix, labels = read_matrix(matrix_file)
    code, out, err = run(capsys, "inspect", matrix_file)
    assert code == 0, err
    assert re.search(r"^measure: +linear_cka$", out, re.M)
    assert re.search(rf"^representations: +{len(labels)}$", out, re.M)
    assert len(labels) == 2 * 2 * len(LAYERS)
    assert re.search(r"^  seed +2: 0, 1$", out, re.M)
    assert re.search(r"^  epoch +2: 0, final$", out, re.M)
    assert re.search(rf"^  layer +{len(LAYERS)}: {', '.join(LAYERS)}$", out, re.M)
    d = json.loads(run(capsys, "inspect", "--json", matrix_file)[1])
    assert d["kind"] == "similarity matrix" and d["options"] == {}
    assert list(d["labels"]) == list(labels)
    assert d["nan"] == int(np.isnan(matrix).sum())


def test_inspect_several_files_at_once(two_seeds, digits_file, capsys):
    code, out, _ = run(capsys, "inspect", digits_file, two_seeds / "seed0" / "checkpoints" / "epoch0.pt")
    assert code == 0
    assert f"{digits_file}: dataset" in out and "epoch0.pt: checkpoint" in out


def test_inspect_unknown_or_unreadable_files(tmp_path, two_seeds):
    text = tmp_path / "notes.txt"
    text.write_text("not data\n")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["weights"] = np.zeros(3)
    truncated = tmp_path / "final.h5"
    truncated.write_bytes((two_seeds / "seed0" / "activations" / "final.h5").read_bytes()[:4000])
    pickled = tmp_path / "model.pt"
    import torch
    torch.save({"weights": torch.zeros(2)}, pickled)
    for path, why in [(tmp_path / "missing.h5", "no such file"),
                      (text, "neither HDF5 nor a PyTorch file"),
                      (foreign, "an HDF5 file holding weights"),
                      (truncated, "cannot be read"),
                      (pickled, "a PyTorch file holding weights")]:
        result = hourglass("inspect", path)
        assert result.returncode == 1, (path, result.stdout, result.stderr)
        assert result.stderr.startswith(f"hourglass inspect: error: {path}"), result.stderr
        assert why in result.stderr
        assert "Traceback" not in result.stderr
        if path.exists():
            for kind in ("activations", "checkpoint", "similarity matrix", "dataset"):
                assert f"  {kind}: " in result.stderr


def test_inspect_refuses_pickled_code(tmp_path):
    """A .pt file that needs arbitrary unpickling is not loaded, and says so."""
    import torch
    path = tmp_path / "evil.pt"
    torch.save({"model": pd.Timestamp(0)}, path)
    result = hourglass("inspect", path)
    assert result.returncode == 1 and "cannot be read safely" in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_training_progress(two_seeds, tmp_path, capsys):
    """The state a killed training run resumes from (train.py's save_progress)."""
    import torch
    _, state = load_checkpoint(two_seeds / "seed0" / "checkpoints" / "final.pt")
    settings = {"variant": "small", "model": state["model"], "training": {"lr": 0.01}}
    path = tmp_path / "state.pt"
    torch.save({"epoch": 5, "done": False, "best_epoch": 4, "rows": [(0, 1.0, 1.0, 0.0)],
                "identity": {"settings": settings, "seed": 3, "data": "abc", "device": "cpu"},
                "model": {}, "optimizer": {}}, path)
    code, out, err = run(capsys, "inspect", path)
    assert code == 0, err
    assert out.splitlines()[0] == f"{path}: training progress"
    assert re.search(r"^seed: +3$", out, re.M) and re.search(r"^epoch: +5$", out, re.M)


def test_a_stack_out_of_device_memory_says_what_to_change(monkeypatch, tmp_path, capsys):
    """torch's out-of-memory error (a GPU's; none here, so raised in its place)
    becomes a stage error naming the ways out."""
    import torch

    from hourglass import stacked

    def too_big(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(stacked, "train_stacked", too_big)
    code, _, err = run(capsys, "train-stacked", "--data", tmp_path / "d.h5", "--seeds", "0", "1",
                       "--variant-dir", tmp_path, "--threads", "1", "--settings", "{}")
    assert code == 1
    assert ("error: the stack of 2 seeds does not fit in the device's memory (CUDA out of "
            "memory. Tried to allocate 2.00 GiB); train fewer seeds") in err
    assert "training.stack_seeds: false" in err


# --- measures ---------------------------------------------------------------

def test_measures_lists_every_registered_measure_with_its_options(capsys):
    code, out, _ = run(capsys, "measures")
    assert code == 0
    listed = re.findall(r"^(\w+) +\S", out, re.M)
    assert listed == list(MEASURES)
    for name, entry in MEASURES.items():
        assert f"{name}" in out and entry.description in out
    assert "options: debiased=False" in out and "options: metric='correlation', compare='pearson'" in out


# --- check ------------------------------------------------------------------

def test_check_names_a_file_it_cannot_read_as_yaml(tmp_path, digits_file, capsys):
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("study: caf\xe9\n".encode("latin-1"))
    for path, why in [(binary, "is not a YAML text file"),
                      (digits_file, "is not a YAML text file"),
                      (latin1, "is not a YAML text file"),
                      (tmp_path / "missing.yaml", "cannot be read: no such file"),
                      (tmp_path, "cannot be read: is a directory")]:
        code, _, err = run(capsys, "check", REPO / "tests" / "tiny.yaml", path)
        assert code == 1, (path, err)
        assert err.startswith(f"hourglass check: error: config file {path} "), err
        assert why in err, err


# --- new-study --------------------------------------------------------------

def schema_keys(node, prefix=""):
    """Every key the schema describes, dotted ("data.probe_size"), variants' insides left out."""
    # a $ref's keys, those the node adds beside it (data: root, download), and
    # those of its branches (a model's per architecture, an objective's options)
    ref = SCHEMA_DOC["$defs"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else {}
    branches = [b["then"] for n in (ref, node) for b in n.get("allOf", [])]
    properties = {k: v for n in [ref, node, *branches] for k, v in n.get("properties", {}).items()}
    for key, sub in properties.items():
        yield prefix + key
        if key not in ("variants", "measures"):
            yield from schema_keys(sub, f"{prefix}{key}.")


SCHEMA_DOC = yaml.safe_load(SCHEMA.read_text())


def test_new_study_writes_a_valid_commented_config(tmp_path, capsys):
    out = tmp_path / "studies" / "latent_sweep.yaml"
    code, stdout, err = run(capsys, "new-study", "latent_sweep", "--out", out)
    assert code == 0, err
    assert str(out) in stdout and "--configfile" in stdout
    text = out.read_text()
    config = yaml.safe_load(text)
    assert config["study"] == "latent_sweep"
    check_config(config, SCHEMA)
    # every key of the schema is in the file (set, or commented out where
    # another architecture takes it)
    for key in schema_keys(SCHEMA_DOC):
        name = key.rsplit(".", 1)[-1]
        assert re.search(rf"^\s*(# )?{name}:", text, re.M), f"{key} is not in the template"


def test_new_study_never_overwrites_unless_forced(tmp_path, capsys):
    out = tmp_path / "mine.yaml"
    out.write_text("study: mine\n")
    before = files(tmp_path)
    code, stdout, err = run(capsys, "new-study", "mine", "--out", out)
    assert code == 1
    assert err.startswith(f"hourglass new-study: error: {out} already exists; nothing was written")
    assert "pass --force to replace it" in err
    assert files(tmp_path) == before
    code, stdout, err = run(capsys, "new-study", "mine", "--out", out, "--force")
    assert code == 0, err
    assert yaml.safe_load(out.read_text())["study"] == "mine"


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "_x", "with space", "ünï", ""])
def test_new_study_rejects_names_that_are_no_folder_name(tmp_path, capsys, name):
    code, _, err = run(capsys, "new-study", name, "--out", tmp_path / "x.yaml")
    assert code == 1
    assert f"study name {name!r} is not allowed: letters, digits, '_', '.', '-'" in err
    assert not list(tmp_path.iterdir())


def test_new_study_goes_to_configs_and_snakemake_takes_it(workflow_copy):
    """In a checkout (a copy of the workflow, package under src/), from any folder."""
    from conftest import snakemake

    root = workflow_copy("new_study")
    elsewhere = root / "notebooks"
    elsewhere.mkdir()
    result = hourglass("new-study", "sweep", cwd=elsewhere, src=root / "src")
    assert result.returncode == 0, result.stderr
    path = root / "configs" / "sweep.yaml"
    assert path.is_file() and f"wrote {path}" in result.stdout
    dry = snakemake(root, "-n", "--configfile", "configs/sweep.yaml")
    assert "results/sweep/" in dry.stdout
    again = hourglass("new-study", "sweep", cwd=root, src=root / "src")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_new_study_says_where_it_looked_for_the_schema(tmp_path):
    """The package installed without its workflow (src/ copied alone), run elsewhere."""
    shutil.copytree(REPO / "src", tmp_path / "pkg" / "src")
    result = hourglass("new-study", "lonely", cwd=tmp_path, src=tmp_path / "pkg" / "src")
    assert result.returncode == 1
    err = result.stderr
    assert err.startswith("hourglass new-study: error: cannot find the workflow's config schema")
    assert str(tmp_path / "pkg" / "workflow" / "schemas" / "config.schema.yaml") in err
    assert str(tmp_path / "workflow" / "schemas" / "config.schema.yaml") in err
    assert "pip install -e" in err and "Traceback" not in err
    assert not (tmp_path / "configs").exists()


# --- compare ----------------------------------------------------------------

def table(out):
    """The layer rows that `compare` prints: {layer: (value text, rest)}."""
    rows = re.findall(r"^ *(\w+) +(\S+) +(\S+) +(\S+) *(.*)$", out, re.M)
    return {r[0]: r[1:] for r in rows if r[0] in LAYERS}


def test_compare_two_seeds_layer_by_layer(two_seeds, capsys, tmp_path):
    a, b = (two_seeds / f"seed{s}" / "activations" / "final.h5" for s in (0, 1))
    code, out, err = run(capsys, "compare", a, b, "--out", tmp_path / "cka.csv")
    assert code == 0, err
    rows = table(out)
    assert list(rows) == LAYERS
    assert rows["output"][:2] == ("1x8x8", "1x8x8") and rows["bottleneck1"][:2] == ("3", "3")
    for layer in LAYERS:
        expected = linear_cka(read_layer(a, layer), read_layer(b, layer))
        assert float(rows[layer][2]) == pytest.approx(expected, abs=5e-5)
    assert float(rows["input"][2]) == pytest.approx(1.0)  # the same probe images
    csv = pd.read_csv(tmp_path / "cka.csv")
    assert list(csv.columns) == ["layer", "shape_a", "shape_b", "value", "dead"]
    assert list(csv["layer"]) == LAYERS
    assert csv["value"].to_numpy() == pytest.approx(
        [linear_cka(read_layer(a, n), read_layer(b, n)) for n in LAYERS], rel=1e-9)


def test_compare_picked_layers_with_options(two_seeds, capsys):
    a, b = (two_seeds / f"seed{s}" / "activations" / "final.h5" for s in (0, 1))
    code, out, err = run(capsys, "compare", a, b, "--measure", "rsa", "--option", "compare=spearman",
                         "--layer", "bottleneck1", "--layer", "encoder1")
    assert code == 0, err
    assert list(table(out)) == ["bottleneck1", "encoder1"]
    from hourglass.similarity import rsa
    expected = rsa(read_layer(a, "encoder1"), read_layer(b, "encoder1"), compare="spearman")
    assert float(table(out)["encoder1"][2]) == pytest.approx(expected, abs=5e-5)


def test_compare_matrix_every_layer_against_every_layer(two_seeds, capsys, tmp_path):
    a = two_seeds / "seed0" / "activations" / "epoch0.h5"
    b = two_seeds / "seed0" / "activations" / "final.h5"
    code, out, err = run(capsys, "compare", a, b, "--measure", "procrustes", "--matrix",
                         "--out", tmp_path / "m.csv")
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["a"])
    assert lines[header].split()[3:] == LAYERS  # "a \ b" then the columns
    body = [line.split() for line in lines[header + 1:header + 1 + len(LAYERS)]]
    assert [r[0] for r in body] == LAYERS
    long = pd.read_csv(tmp_path / "m.csv")
    assert len(long) == len(LAYERS) ** 2 and list(long.columns) == ["layer_a", "layer_b", "value", "dead"]
    from hourglass.similarity import procrustes
    value = long.set_index(["layer_a", "layer_b"])["value"]
    assert value["encoder2", "decoder1"] == pytest.approx(
        procrustes(read_layer(a, "encoder2"), read_layer(b, "decoder1")), rel=1e-9)
    assert float(body[LAYERS.index("encoder2")][1 + LAYERS.index("decoder1")]) == pytest.approx(
        value["encoder2", "decoder1"], abs=5e-5)


def test_compare_a_dead_layer_is_nan_and_named(two_seeds, capsys, tmp_path):
    a = two_seeds / "seed0" / "activations" / "final.h5"
    b = tmp_path / "dead.h5"
    shutil.copy(two_seeds / "seed1" / "activations" / "final.h5", b)
    with h5py.File(b, "r+") as f:
        f["layers/encoder2"][...] = 0  # every probe image alike
    code, out, err = run(capsys, "compare", a, b)
    assert code == 0, err
    rows = table(out)
    assert rows["encoder2"][2] == "nan" and rows["encoder2"][3] == "dead in b"
    assert rows["encoder1"][2] != "nan"
    assert f"warning: encoder2 of {b} tells no probe images apart" in err
    code, out, err = run(capsys, "compare", a, b, "--matrix", "--out", tmp_path / "m.csv")
    assert code == 0, err
    m = pd.read_csv(tmp_path / "m.csv").fillna({"dead": ""})
    column = m[m["layer_b"] == "encoder2"]
    assert column["value"].isna().all() and set(column["dead"]) == {"b"}
    assert m[m["layer_b"] != "encoder2"]["value"].notna().all()


def test_compare_errors(two_seeds, digits_file, tmp_path, capsys):
    a, b = (two_seeds / f"seed{s}" / "activations" / "final.h5" for s in (0, 1))
    code, _, err = run(capsys, "compare", a, b, "--measure", "cosine")
    assert code == 1
    assert err.startswith("hourglass compare: error: unknown measure 'cosine'; known: ")
    assert all(name in err for name in MEASURES)
    code, _, err = run(capsys, "compare", a, b, "--measure", "linear_cka", "--option", "unbiased=true")
    assert code == 1 and "takes the options (debiased: bool = False)" in err
    code, _, err = run(capsys, "compare", a, b, "--option", "debiased")
    assert code == 1 and "is not KEY=VALUE" in err
    for value, shown in (("'false'", "'false' (str)"), ("0", "0 (int)")):  # no truthy guesses
        code, _, err = run(capsys, "compare", a, b, "--option", f"debiased={value}")
        assert code == 1 and f"debiased of measure 'linear_cka' must be true or false, got {shown}" in err
    code, _, err = run(capsys, "compare", a, b, "--measure", "rbf_cka", "--option", "threshold=.inf")
    assert code == 1 and "threshold of measure 'rbf_cka' must be a finite number, got inf" in err
    code, _, err = run(capsys, "compare", a, b, "--layer", "encoder9")
    assert code == 1 and f"{a} has no layer 'encoder9'; its layers: {', '.join(LAYERS)}" in err
    code, _, err = run(capsys, "compare", a, digits_file)
    assert code == 1 and str(digits_file) in err

    other = tmp_path / "digits50.h5"
    prepare("digits", root="unused", download=False, val_fraction=0.1, train_size=None,
            probe_size=50, split_seed=0, out=other)
    fewer = tmp_path / "fewer.h5"
    record(two_seeds / "seed1" / "checkpoints" / "final.pt", other, fewer)
    result = hourglass("compare", a, fewer)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        f"hourglass compare: error: {a} holds 100 probe stimuli and {fewer} 50")


@pytest.fixture
def pair(two_seeds, tmp_path):
    """Copies of two seeds' activation files in a folder of their own, to write beside."""
    folder = tmp_path / "pair"
    folder.mkdir()
    for s in (0, 1):
        shutil.copy2(two_seeds / f"seed{s}" / "activations" / "final.h5", folder / f"seed{s}.h5")
    return folder / "seed0.h5", folder / "seed1.h5"


def test_compare_never_writes_over_its_inputs(pair, capsys, monkeypatch):
    a, b = pair
    folder = a.parent
    (folder / "link.h5").symlink_to(b)
    monkeypatch.chdir(folder)
    before = files(folder)
    for out, input in [(a, a), (f"./{b.name}", b), (folder / "link.h5", b)]:
        for force in ([], ["--force"]):
            code, _, err = run(capsys, "compare", a, b, "--out", out, *force)
            assert code == 1, err
            assert err.startswith(f"hourglass compare: error: --out {Path(out)} is the input "
                                  f"{input}; nothing was written. Choose another path"), err
            assert files(folder) == before


def test_compare_replaces_an_existing_out_only_with_force(pair, capsys):
    a, b = pair
    out = a.parent / "cka.csv"
    out.write_text("mine\n")
    before = files(a.parent)
    code, _, err = run(capsys, "compare", a, b, "--out", out)
    assert code == 1
    assert err.startswith(f"hourglass compare: error: {out} already exists; nothing was written. "
                          "Choose another path, or pass --force to replace it"), err
    assert files(a.parent) == before
    code, stdout, err = run(capsys, "compare", a, b, "--out", out, "--force")
    assert code == 0, err
    assert f"wrote {out}" in stdout and list(pd.read_csv(out)["layer"]) == LAYERS


def test_a_stage_starts_no_more_threads_than_its_rule_holds(tmp_path):
    # The config stage fails on empty settings, after the pools are limited;
    # the child then reports the pools NumPy and torch started.
    code = ("import sys\nfrom hourglass.cli import main\n"
            "try:\n    main(['config', '--out', sys.argv[1], '--threads', '1', '--settings', '{}'])\n"
            "except (SystemExit, KeyError):\n    pass\n"
            "import numpy, torch\nfrom threadpoolctl import threadpool_info\n"
            "print(sorted({pool['num_threads'] for pool in threadpool_info()}), torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(REPO / "src")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "config.yaml")],
                          capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["[1]", "1"], done.stdout
