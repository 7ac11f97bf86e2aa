"""Checks of a stage's input files, done before any compute.

A stage that reads files (a dataset, checkpoints, activation files, a
similarity matrix) checks all of them first: that each opens, was written in
this package's file format (`hourglass.io.FORMAT_VERSION`), holds what its
attributes promise, and agrees with the others. A problem raises InputError
naming the file, what is wrong, and what to do; the stage then writes
nothing. Checkpoints are read with `torch.load(weights_only=True)`, which
refuses pickled objects, so a crafted file cannot run code when loaded.
"""

import json
import pickle
import zipfile
from collections import defaultdict
from pathlib import Path

from hourglass import __version__
from hourglass.io import FORMAT_VERSION, open_h5

REWRITE = "delete it and re-run snakemake, which writes it again"
ACTIVATION_ATTRS = ("layer_names", "layer_roles", "shapes", "seed", "epoch", "variant",
                    "checkpoint", "model", "diverged")
CHECKPOINT_KEYS = ("state_dict", "model", "variant", "input_shape", "seed", "epoch", "diverged")
DATASET_SPLITS = ("train", "val", "test", "probe")


class InputError(ValueError):
    """An input file that a stage cannot use; the message says which and why."""


def _plain(value):
    """An HDF5 attribute or checkpoint field as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if hasattr(value, "item") else value


def check_format(path, attrs, what):
    """Raise InputError unless `attrs` (HDF5 attributes or a checkpoint's
    record) say the file was written in this package's file format."""
    found = _plain(attrs.get("format_version")) if "format_version" in attrs else None
    if found == FORMAT_VERSION:
        return
    writer = _plain(attrs.get("hourglass_version", "an unknown version"))
    layout = ("a file format from before format versions (no format_version)"
              if found is None else f"file format {found}")
    other = (f", or read these results with hourglass {writer}"
             if writer not in (__version__, "an unknown version") else "")
    raise InputError(
        f"{what} file {path} was written by hourglass {writer} in {layout}; this is "
        f"hourglass {__version__}, which reads file format {FORMAT_VERSION} only. Re-run the "
        f"study with this version (`snakemake --forceall`, or delete the study's results "
        f"folder and run snakemake){other}.")


def _problems(check, path, what):
    """Run `check()`, turning the errors it raises into a list of messages."""
    try:
        return check() or []
    except (InputError, OSError) as error:
        return [str(error)]
    except (KeyError, TypeError, AttributeError, RuntimeError) as error:  # odd metadata
        return [f"cannot read {what} {path} ({type(error).__name__}: {error}); {REWRITE}"]


# ---------------------------------------------------------------- activations


def activation_file(path):
    """The decoded attributes of one activation file and the number of probe
    images it holds (None for a diverged run's file, which holds no layers);
    raises InputError naming the file and the problem."""
    with open_h5(path, "activations") as f:
        check_format(path, f.attrs, "activations")
        missing = [k for k in ACTIVATION_ATTRS if k not in f.attrs]
        if missing:
            raise InputError(f"activations file {path} lacks the attributes "
                             f"{', '.join(missing)}; {REWRITE}")
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        try:
            for key in ("layer_names", "layer_roles", "shapes", "model"):
                attrs[key] = json.loads(attrs[key])
        except (TypeError, ValueError) as error:
            raise InputError(f"activations file {path}: attribute {key!r} is not valid "
                             f"JSON ({error}); {REWRITE}") from error
        roles_problem = _roles_problem(attrs["layer_names"], attrs["layer_roles"])
        if roles_problem:
            raise InputError(f"activations file {path}: {roles_problem}; {REWRITE}")
        if "layers" not in f:
            raise InputError(f"activations file {path} has no group 'layers'; {REWRITE}")
        problems, counts = [], {}
        for name in attrs["layer_names"]:
            if name not in f["layers"]:
                problems.append(f"activations file {path} has no layer {name!r}, though its "
                                f"attributes list it; {REWRITE}")
                continue
            shape = f["layers"][name].shape
            counts[name] = shape[0]
            expected = attrs["shapes"].get(name)
            if list(shape[1:]) != list(expected or []):
                problems.append(
                    f"activations file {path}: layer {name!r} holds {list(shape[1:])} values "
                    f"per probe image, its attributes say {expected}; {REWRITE}")
        if len(set(counts.values())) > 1:
            problems.append(f"activations file {path}: its layers hold different numbers of "
                            f"probe images ({counts}); {REWRITE}")
    if problems:
        raise InputError("\n  - ".join(problems))
    return attrs, None if attrs["diverged"] else next(iter(counts.values()), 0)


def _roles_problem(names, roles):
    """What is wrong with an activation file's layer roles ('' if nothing)."""
    from hourglass.models import ROLES

    if len(roles) != len(names):
        return f"it lists {len(names)} layers but {len(roles)} layer roles"
    unknown = sorted({str(r) for r in roles if r not in ROLES})
    if unknown:
        return f"unknown layer role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})"
    return ""


def check_activation_files(paths, layers=(), one_variant=False):
    """Check every activation file a stage reads, before it computes anything.

    Each must open, be in this file format, hold every layer its attributes
    list (and `layers`) with the shapes they give, and all must hold the same
    number of probe images. With `one_variant` (the consistency stage) they
    must be one variant's, at least 2 seeds per checkpoint, with the same
    layers. Returns the decoded attributes of each file, in order.
    """
    problems, described = [], {}
    for path in paths:
        def one(path=path):
            attrs, n = activation_file(path)
            described[path] = (attrs, n)
            absent = [layer for layer in layers
                      if layer not in attrs["layer_names"] and not attrs["diverged"]]
            if absent:
                return [f"activations file {path} has no layer {', '.join(absent)}, which this "
                        f"stage needs; {REWRITE}"]
        problems += _problems(one, path, "activations file")
    counts = defaultdict(list)
    for path, (_, n) in described.items():
        if n is not None:
            counts[n].append(str(path))
    if len(counts) > 1:
        usual = max(counts, key=lambda n: len(counts[n]))
        odd = "; ".join(f"{', '.join(p)}: {n}" for n, p in counts.items() if n != usual)
        problems.append(
            f"the activation files disagree on the number of probe images: most hold {usual}, "
            f"but {odd}. They were recorded on different dataset files: delete the odd ones "
            "and re-run snakemake")
    if one_variant and described and not problems:
        problems += _one_variant(described)
    if problems:
        raise InputError(f"{len(problems)} problem(s) with the {len(paths)} activation files "
                         "this stage reads; nothing was computed or written:\n  - "
                         + "\n  - ".join(problems))
    return [described[p][0] for p in paths]


def _one_variant(described):
    problems = []
    variants = {attrs["variant"] for attrs, _ in described.values()}
    if len(variants) > 1:
        return [f"the activation files are of several variants ({', '.join(sorted(variants))}); "
                "the consistency stage compares the seeds of one variant"]
    # A seed that diverged at any checkpoint is left out of all (the stage says so).
    diverged = {attrs["seed"] for attrs, _ in described.values() if attrs["diverged"]}
    runs = defaultdict(list)
    for path, (attrs, _) in described.items():
        if attrs["seed"] not in diverged:
            runs[attrs["checkpoint"]].append((attrs["seed"], path, attrs["layer_names"]))
    for checkpoint, seeds in runs.items():
        if len({s for s, _, _ in seeds}) < 2 and not diverged:
            problems.append(f"checkpoint {checkpoint!r} has activations of "
                            f"{len({s for s, _, _ in seeds})} seed(s); consistency needs at least "
                            "2 (config key seeds)")
        if len({s for s, _, _ in seeds}) < len(seeds):
            problems.append(f"checkpoint {checkpoint!r}: several files hold the same seed "
                            f"({', '.join(str(p) for _, p, _ in seeds)})")
        first = seeds[0]
        for seed, path, names in seeds[1:]:
            if names != first[2]:
                problems.append(f"activations file {path} has the layers {names}, but {first[1]} "
                                f"of the same checkpoint has {first[2]}; {REWRITE}")
    return problems


# ------------------------------------------------------------------- datasets


def check_dataset(path, f):
    """Raise InputError unless the open dataset file `f` (at `path`) is in this
    file format and holds every split with as many labels as images, each a
    label of one of its `classes` (0..k-1: those it keeps, relabelled)."""
    check_format(path, f.attrs, "dataset")
    problems = []
    for attr in ("scale", "classes"):
        if attr not in f.attrs:
            problems.append(f"it has no {attr!r} attribute")
    n_classes = len(json.loads(f.attrs["classes"])) if "classes" in f.attrs else None
    for split in DATASET_SPLITS:
        if split not in f or "x" not in f[split] or "y" not in f[split]:
            problems.append(f"it has no split {split!r} (images x and labels y)")
        elif len(f[split]["x"]) != len(f[split]["y"]):
            problems.append(f"split {split!r} has {len(f[split]['x'])} images but "
                            f"{len(f[split]['y'])} labels")
        elif n_classes is not None:
            y = f[split]["y"][()]
            if len(y) and (y.min() < 0 or y.max() >= n_classes):
                problems.append(f"split {split!r} holds labels from {y.min()} to {y.max()}, but "
                                f"its {n_classes} classes are labelled 0 to {n_classes - 1}")
    if problems:
        raise InputError(f"dataset file {path}: {'; '.join(problems)}; {REWRITE}")


# ---------------------------------------------------------------- checkpoints


def read_checkpoint(path):
    """A checkpoint's record (weights and settings), read without running
    pickled code, checked for its keys and file format."""
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"there is no checkpoint {path}; run snakemake, which makes it")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = str(error).strip().splitlines()
        reason = next((line.strip() for line in lines if "unsupported" in line.lower()),
                      lines[0].split(".")[0] if lines else "")
        raise InputError(
            f"checkpoint {path} holds objects other than tensors and plain data, which "
            "hourglass refuses to load since unpickling them could run code hidden in the "
            f"file (torch.load with weights_only=True: {reason}). hourglass never writes such "
            f"files: if it came from elsewhere, do not trust it; else {REWRITE}") from error
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"cannot read checkpoint {path} ({type(error).__name__}: {error}); it "
                         f"is damaged or truncated: {REWRITE}") from error
    if not isinstance(state, dict):
        raise InputError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint "
                         f"record; {REWRITE}")
    check_format(path, state, "checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise InputError(f"checkpoint {path} lacks {', '.join(missing)}; {REWRITE}")
    return state


def weights_mismatch(expected, found):
    """What differs between the weights a model has and those a checkpoint holds."""
    lines = [f"{k}: model {tuple(expected[k].shape)}, checkpoint {tuple(found[k].shape)}"
             for k in expected if k in found and expected[k].shape != found[k].shape]
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    if missing:
        lines.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    if extra:
        lines.append(f"unexpected {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
    return "; ".join(lines[:6])


def load_checkpoint(path):
    """A trained model and its checkpoint record; the weights must fit the
    model its settings describe."""
    from hourglass.models import build_model

    state = read_checkpoint(path)
    if state["diverged"]:  # a run that diverged: no weights, only why
        return None, state
    try:
        model = build_model(state["model"], state["input_shape"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"checkpoint {path}: its model settings {state['model']} do not "
                         f"describe a model ({type(error).__name__}: {error}); {REWRITE}") from error
    expected = model.state_dict()
    mismatch = weights_mismatch(expected, state["state_dict"])
    if mismatch:
        raise InputError(
            f"checkpoint {path} holds the weights of another architecture than its settings "
            f"describe ({state['model'].get('architecture')} {state['model']}, input "
            f"{state['input_shape']}): {mismatch}. It was not written with these settings "
            f"(copied from another study or variant?): {REWRITE}")
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model, state


def check_checkpoints(paths, data):
    """Check every checkpoint the activations stage reads, against the
    dataset file whose probe images it runs through them."""
    with open_h5(data, "dataset") as f:
        check_dataset(data, f)
        image_shape = list(f["probe"]["x"].shape[1:])
    problems = []
    for path in paths:
        def one(path=path):
            _, state = load_checkpoint(path)
            if list(state["input_shape"]) != image_shape:
                return [f"checkpoint {path} is a model of {state['input_shape']} inputs, but the "
                        f"probe images of {data} are {image_shape}: it belongs to another "
                        f"study or dataset; {REWRITE}"]
        problems += _problems(one, path, "checkpoint")
    if problems:
        raise InputError(f"{len(problems)} problem(s) with the {len(paths)} checkpoints this "
                         "stage reads; nothing was written:\n  - " + "\n  - ".join(problems))
