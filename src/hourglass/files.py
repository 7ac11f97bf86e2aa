"""Which of the workflow's files a path is, and what it holds (`hourglass inspect`).

`describe_file` recognises a file by its content, not its name, and returns a
plain dict (JSON-ready) whose `kind` is one of `KINDS`; `format_description`
turns it into text for people.
"""

import json
import math
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

KINDS = {
    "activations": "{variant}/seed{s}/activations/{checkpoint}.h5: every layer on the probe stimuli",
    "checkpoint": "{variant}/seed{s}/checkpoints/{checkpoint}.pt: trained weights and their settings",
    "training progress": "{variant}/seed{s}/.resume/state.pt: where a killed training run resumes",
    "stacked training progress": "{variant}/.resume/stacked.pt: where a killed run of a "
                                 "variant's stacked seeds resumes, each seed's progress",
    "similarity matrix": "similarity/{measure}.h5: a measure between every pair of representations",
    "dataset": "data/{dataset}-{hash}.h5: train/val/test splits and the probe set",
}


class UnknownFile(ValueError):
    pass


def unknown(path, why):
    kinds = "\n".join(f"  {kind}: {what}" for kind, what in KINDS.items())
    return UnknownFile(f"{path} is not a file hourglass understands ({why}). "
                       f"It reads the files the workflow writes:\n{kinds}")


def describe_file(path) -> dict:
    """What `path` holds: a dict with `kind` (a key of KINDS), `path` and its fields."""
    path = Path(path)
    if not path.is_file():
        raise UnknownFile(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    if h5py.is_hdf5(path):
        return {"kind": None, "path": str(path)} | _describe_h5(path)
    if zipfile.is_zipfile(path):  # torch.save's format
        return {"kind": None, "path": str(path)} | _describe_torch(path)
    raise unknown(path, "neither HDF5 nor a PyTorch file")


def _attrs(obj):
    """An HDF5 object's attributes, JSON text decoded and NumPy scalars as Python values."""
    out = {}
    for key, value in obj.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    return out


def _describe_h5(path):
    try:
        with h5py.File(path, "r") as f:
            attrs = _attrs(f)
            if isinstance(f.get("layers"), h5py.Group) and "layer_names" in attrs:
                return _activations(f, attrs)
            if isinstance(f.get("matrix"), h5py.Dataset) and isinstance(f.get("labels"), h5py.Group):
                return _matrix(f, attrs)
            if all(isinstance(f.get(s), h5py.Group) for s in ("train", "probe")):
                return _dataset(f, attrs)
            contents = ", ".join(f.keys()) or "nothing"
    except OSError as error:
        raise unknown(path, f"an HDF5 file that cannot be read: {error}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise unknown(path, f"an HDF5 file with a damaged layout: {error!r}") from None
    raise unknown(path, f"an HDF5 file holding {contents}")


def _activations(f, attrs):
    layers = f["layers"]
    rows = []
    for name in attrs["layer_names"]:
        data = layers[name]
        rows.append({"name": name, "shape": list(data.shape[1:]), "units": math.prod(data.shape[1:]),
                     "dtype": str(data.dtype)})
    first = layers[attrs["layer_names"][0]] if attrs["layer_names"] else None
    return {"kind": "activations", "variant": attrs.get("variant"), "seed": attrs.get("seed"),
            "checkpoint": attrs.get("checkpoint"), "epoch": attrs.get("epoch"),
            "stimuli": None if first is None else first.shape[0], "layers": rows,
            "model": attrs.get("model"), "hourglass_version": attrs.get("hourglass_version")}


def _matrix(f, attrs):
    matrix = f["matrix"]
    labels = f["labels"]
    summary = {}
    for column in attrs.get("labels", list(labels)):
        values = labels[column][()]
        if values.dtype.kind == "S":
            values = np.char.decode(values, "utf-8")
        unique = pd.unique(values)  # in order of appearance: layers in network order
        summary[column] = {"distinct": len(unique),
                           "values": [v.item() if isinstance(v, np.generic) else v for v in unique[:12]],
                           "more": max(0, len(unique) - 12)}
    m = matrix[()]
    return {"kind": "similarity matrix", "measure": attrs.get("measure"),
            "options": attrs.get("options"), "representations": matrix.shape[0],
            "shape": list(matrix.shape), "nan": int(np.isnan(m).sum()),
            "range": [float(np.nanmin(m)), float(np.nanmax(m))] if np.isfinite(m).any() else None,
            "labels": summary, "hourglass_version": attrs.get("hourglass_version")}


def _dataset(f, attrs):
    splits = {}
    for split in ("train", "val", "test", "probe"):
        if split in f:
            y = f[split]["y"][()]
            counts = np.bincount(y) if len(y) else np.array([0])
            splits[split] = {"images": len(y), "shape": list(f[split]["x"].shape[1:]),
                             "per_class": [int(counts.min()), int(counts.max())]}
    return {"kind": "dataset", "dataset": attrs.get("dataset"), "classes": attrs.get("classes"),
            "class_ids": attrs.get("class_ids"), "image_shape": attrs.get("image_shape"), "scale": attrs.get("scale"),
            "settings": attrs.get("settings"), "splits": splits,
            "hourglass_version": attrs.get("hourglass_version")}


def _describe_torch(path):
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise unknown(path, f"a PyTorch file that cannot be read safely: {first}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict) and "model" in state:
        params = {name: list(t.shape) for name, t in state["state_dict"].items()}
        return {"kind": "checkpoint", "variant": state.get("variant"), "seed": state.get("seed"),
                "epoch": state.get("epoch"), "input_shape": state.get("input_shape"),
                "model": state.get("model"), "parameters": params,
                "parameter_count": sum(math.prod(s) for s in params.values()),
                "hourglass_version": state.get("hourglass_version")}
    if isinstance(state, dict) and "identity" in state and "seeds" in state:  # hourglass.stacked's
        settings = state["identity"].get("settings", {})
        return {"kind": "stacked training progress", "variant": settings.get("variant"),
                "epoch": state.get("epoch"), "training": state.get("active"),
                "seeds": {str(seed): {"epoch": p.get("epoch"), "best_epoch": p.get("best_epoch"),
                                      "done": p.get("done"),
                                      **({"diverged": p["diverged"]} if p.get("diverged") else {})}
                          for seed, p in state["seeds"].items()},
                "device": state["identity"].get("device"), "settings": settings}
    if isinstance(state, dict) and "identity" in state and "epoch" in state:
        settings = state["identity"].get("settings", {})
        return {"kind": "training progress", "variant": settings.get("variant"),
                "seed": state["identity"].get("seed"), "epoch": state["epoch"],
                "done": state.get("done"), "best_epoch": state.get("best_epoch"),
                "device": state["identity"].get("device"), "settings": settings}
    keys = ", ".join(map(str, state)) if isinstance(state, dict) else type(state).__name__
    raise unknown(path, f"a PyTorch file holding {keys}")


def _value(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def _fields(d, keys):
    width = max(len(k) for k in keys)
    return [f"{k + ':':<{width + 1}} {_value(d[k])}" for k in keys if d.get(k) is not None]


def format_description(d: dict) -> str:
    """`describe_file`'s dict as lines of text."""
    kind = d["kind"]
    lines = [f"{d['path']}: {kind}"]
    if kind == "activations":
        lines += _fields(d, ["variant", "seed", "checkpoint", "epoch", "stimuli", "model",
                             "hourglass_version"])
        lines.append(f"layers ({len(d['layers'])}, in order; stimuli x shape):")
        width = max((len(r["name"]) for r in d["layers"]), default=0)
        lines += [f"  {r['name']:<{width}}  {' x '.join(map(str, r['shape'])) or 'scalar':<12} "
                  f"{r['units']:>7} units  {r['dtype']}" for r in d["layers"]]
    elif kind == "checkpoint":
        lines += _fields(d, ["variant", "seed", "epoch", "input_shape", "model", "parameter_count",
                             "hourglass_version"])
        lines.append(f"parameters ({len(d['parameters'])} tensors):")
        width = max((len(n) for n in d["parameters"]), default=0)
        lines += [f"  {name:<{width}}  {' x '.join(map(str, shape))}"
                  for name, shape in d["parameters"].items()]
    elif kind == "training progress":
        lines += _fields(d, ["variant", "seed", "epoch", "best_epoch", "done", "device", "settings"])
    elif kind == "stacked training progress":
        lines += _fields(d, ["variant", "epoch", "training", "device", "settings"])
        lines.append("seeds (each one's epoch, best epoch, whether it is done):")
        lines += [f"  seed {seed}: {_value(p)}" for seed, p in d["seeds"].items()]
    elif kind == "similarity matrix":
        shown = d | {"range": d["range"] and f"{d['range'][0]:.4g} to {d['range'][1]:.4g}",
                     "nan": f"{d['nan']} entries (pairs with a dead layer)"}
        lines += _fields(shown, ["measure", "options", "representations", "range", "nan",
                                 "hourglass_version"])
        lines.append("labels (one per representation; distinct values):")
        width = max((len(c) for c in d["labels"]), default=0)
        for column, s in d["labels"].items():
            values = ", ".join(map(str, s["values"])) + (f", ... ({s['more']} more)" if s["more"] else "")
            lines.append(f"  {column:<{width}}  {s['distinct']:>4}: {values}")
    elif kind == "dataset":
        lines += _fields(d, ["dataset", "classes", "class_ids", "image_shape", "scale", "settings",
                             "hourglass_version"])
        lines.append("splits (images, image shape, images per class min-max):")
        lines += [f"  {name:<5}  {s['images']:>6}  {' x '.join(map(str, s['shape']))}  "
                  f"{s['per_class'][0]}-{s['per_class'][1]}" for name, s in d["splits"].items()]
    return "\n".join(lines)
