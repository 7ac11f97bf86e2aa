"""File layout helpers: atomic writes and self-describing HDF5 attributes."""

import contextlib
import json
import os
from pathlib import Path

import h5py
import pandas as pd

from hourglass import __version__

# The layout of every file hourglass writes (HDF5 files and checkpoints). Bump
# it whenever a reader of this version could not read what an older version
# wrote, or the reverse; files of another format are refused with a message
# naming the file, its writer and what to do (hourglass.checks.check_format).
# 2: activation files record each layer's role (layer_roles); checkpoints'
# model settings hold every key of their architecture (fc: activation,
# latent_activation).
FORMAT_VERSION = 2


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` on success.

    A killed or failing writer leaves only a hidden `.name.tmp` file, never a
    file that looks complete; the temporary is removed on an exception, and a
    leftover of a killed earlier writer is removed before writing again (see
    remove_temporaries for those whose target is never written again).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_out(out, inputs=(), force=False):
    """FileExistsError, before anything is computed or written, where a user
    command's output `out` is one of its `inputs` (the same file however it
    is spelt: ./A.h5, a link to it), or an existing file and not `force`."""
    out = Path(out)
    if not out.exists():
        return
    for path in inputs:
        if Path(path).exists() and os.path.samefile(out, path):
            raise FileExistsError(f"--out {out} is the input {path}; nothing was written. "
                                  "Choose another path")
    if not force:
        raise FileExistsError(f"{out} already exists; nothing was written. Choose another path, "
                              "or pass --force to replace it")


def remove_temporaries(folder):
    """Delete every temporary atomic_path left under `folder` (a writer killed
    with SIGKILL cannot remove its own); return their paths.

    Only safe while nothing writes under `folder`: the workflow calls it when
    it starts, unless another Snakemake is running in the same directory.
    Resumable training state (`.resume/`) is kept; only the temporaries of its
    files go.
    """
    removed = sorted(p for p in Path(folder).rglob(".*.tmp") if p.is_file())
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def write_attrs(obj, **attrs):
    """Store attributes on an HDF5 object; dicts and lists as JSON text."""
    obj.attrs["hourglass_version"] = __version__
    obj.attrs["format_version"] = FORMAT_VERSION
    for key, value in attrs.items():
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, sort_keys=True)
        obj.attrs[key] = value


def read_json_attr(obj, key):
    return json.loads(obj.attrs[key])


def open_h5(path, what: str) -> h5py.File:
    """Open an HDF5 file read-only, saying which file and what to do if it is broken."""
    if not Path(path).exists():
        raise FileNotFoundError(
            f"there is no {what} file {path}; run snakemake, which makes it (or check the path)")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise OSError(
            f"cannot read {what} file {path}: {error}. It is damaged or truncated "
            "(a copy or a disk that failed?): delete it and re-run snakemake so that "
            "it is written again."
        ) from error


def write_table(rows, path):
    """Write a table (a DataFrame or a list of dicts) as CSV, atomically."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.10g")


def read_table(path):
    """A CSV table; `epoch` (and a pair's `epoch_a`, `epoch_b`) stays text
    since it holds checkpoint labels ('final')."""
    return pd.read_csv(path, dtype={"epoch": str, "epoch_a": str, "epoch_b": str})


def concat_tables(paths, out):
    """Tables of the same columns, one after the other."""
    write_table(pd.concat([read_table(p) for p in paths]), out)


# The attributes of an image file stored as JSON (write_attrs' lists and dicts).
IMAGE_JSON = ("seeds", "grid", "columns", "diverged", "rows")


def write_images(path, images, **attrs):
    """One variant's image grids: `images` {seed: array (rows x columns x C x
    H x W) in [0, 1], or None where its model diverged}, stored clipped as
    uint8 (what a figure shows), with `attrs` (the variant, its grid
    settings, what the columns are)."""
    import numpy as np

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for seed, grid in images.items():
            if grid is not None:
                f.create_dataset(f"seed{seed}", compression="gzip",
                                 data=np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8))
        write_attrs(f, **attrs, seeds=list(images))


def concat_images(paths, out):
    """The image files of each variant (write_images) as one file, a group
    per variant holding its file's grids and attributes."""
    from hourglass.checks import check_format

    variants = []
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for path in paths:
            with open_h5(path, "images") as src:
                check_format(path, src.attrs, "images")
                variants.append(src.attrs["variant"])
                group = f.create_group(variants[-1])
                group.attrs.update(src.attrs)
                for name in src:
                    src.copy(src[name], group, name)
        write_attrs(f, variants=variants)  # HDF5 lists groups by name, not in this order


def read_images(path):
    """The grids of a gathered image file: per variant, in the file's order,
    (its attributes, {seed: uint8 array, or None where it diverged})."""
    from hourglass.checks import check_format

    with open_h5(path, "images") as f:
        check_format(path, f.attrs, "images")
        return [({k: json.loads(v) if k in IMAGE_JSON else v for k, v in group.attrs.items()},
                 {seed: group[f"seed{seed}"][()] if f"seed{seed}" in group else None
                  for seed in json.loads(group.attrs["seeds"])})
                for group in map(f.get, read_json_attr(f, "variants"))]


def read_output(path):
    """An analysis's gathered output: a table (.csv) or image grids (.h5)."""
    return read_images(path) if Path(path).suffix == ".h5" else read_table(path)


def concat_outputs(paths, out):
    """Gather an analysis's per-variant tables or image files into `out`."""
    (concat_images if Path(out).suffix == ".h5" else concat_tables)(paths, out)


def write_matrix(path, matrix, labels, measure, options):
    """A measure's all-pairs matrix and one label column per representation."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("matrix", data=matrix, compression="gzip")
        group = f.create_group("labels")
        for column in labels:
            values = labels[column].to_numpy()
            group[column] = values.astype("S") if values.dtype == object else values
        write_attrs(f, measure=measure, options=options, labels=list(labels))


def read_matrix(path):
    """The all-pairs matrix of a measure's file and its labels."""
    from hourglass.checks import check_format

    with open_h5(path, "similarity matrix") as f:
        check_format(path, f.attrs, "similarity matrix")
        labels = pd.DataFrame({c: f["labels"][c][()] for c in read_json_attr(f, "labels")})
        matrix = f["matrix"][()]
    for column in labels:
        if labels[column].dtype == object:
            labels[column] = labels[column].str.decode("utf-8")
    return matrix, labels
