"""The pipeline's all-pairs stage on real activation files of a trained model."""

import re

import h5py
import numpy as np
import pandas as pd
import pytest

from hourglass.activations import read_layer
from hourglass.analyses.comparisons import compare, run
from hourglass.io import read_matrix
from hourglass.similarity import linear_cka


@pytest.fixture(scope="module")
def activation_files(two_seeds):
    return [two_seeds / f"seed{seed}" / "activations" / f"{name}.h5"
            for seed in (0, 1) for name in ("epoch0", "final")]


def test_matrix_equals_the_measure_pair_by_pair(activation_files, tmp_path):
    settings = {"options": {}, "dtype": "float64", "device": "cpu", "max_memory_gb": 2e-4}  # blocks of a few summaries
    run(activation_files, "linear_cka", settings, tmp_path / "m.h5", tmp_path / "m.csv")
    matrix, labels = read_matrix(tmp_path / "m.h5")
    assert list(labels.columns) == ["variant", "seed", "epoch", "trained_epochs", "layer",
                                   "layer_index", "region", "constant", "undefined"]
    assert list(labels["region"][:7]) == ["input", "encoder", "encoder", "bottleneck", "decoder",
                                          "decoder", "output"]  # the layers' roles
    assert len(labels) == 4 * 7 and set(labels["epoch"]) == {"0", "final"}
    acts = [read_layer(activation_files[2 * r.seed + (r.epoch == "final")], r.layer)
            for r in labels.itertuples()]
    for i in range(0, len(labels), 5):
        for j in range(0, len(labels), 3):
            if labels["constant"][i] or labels["constant"][j]:
                assert np.isnan(matrix[i, j])
            else:
                assert matrix[i, j] == pytest.approx(linear_cka(acts[i], acts[j]), abs=1e-12)
    pairs = pd.read_csv(tmp_path / "m.csv", dtype={"a_epoch": str, "b_epoch": str})
    assert len(pairs) == len(labels) * (len(labels) - 1) // 2
    first = pairs.iloc[0]
    assert (first["a_layer"], first["b_layer"]) == ("input", "encoder1")
    assert first["value"] == pytest.approx(matrix[0, 1])


def test_a_dead_layer_is_left_out_and_marked(activation_files, tmp_path):
    dead = tmp_path / "dead.h5"
    dead.write_bytes(activation_files[1].read_bytes())
    with h5py.File(dead, "r+") as f:
        f["layers/bottleneck1"][...] = 0
        f.attrs["seed"] = 7
    messages = []
    matrix, labels = compare([activation_files[1], dead], "linear_cka", {}, log=messages.append)
    row = labels.index[(labels["seed"] == 7) & (labels["layer"] == "bottleneck1")][0]
    assert labels["constant"][row] and labels["constant"].sum() == 1
    assert labels["undefined"][row] == "dead layer (every probe image alike)"
    assert np.isnan(matrix[row]).all() and np.isnan(matrix[:, row]).all()
    assert np.isfinite(np.delete(np.delete(matrix, row, 0), row, 1)).all()
    assert any("seed 7" in m and "bottleneck1" in m and "dead layer" in m for m in messages)
    kept = int((~labels["constant"]).sum())
    # the log ends with the forms linear CKA's summaries took, one each
    assert f"every pair done: {kept} summaries made (" in messages[-1]
    assert sum(int(count) for count in re.findall(r"(\d+) in (?:feature|Gram) form", messages[-1])) == kept


@pytest.mark.parametrize("measure", ["rsa", "linear_cka"])
def test_undefined_values_say_why_in_the_pairs_table(undefined_layers, measure, tmp_path):
    """Seed 2's encoder1 is dead; bottleneck1 has one unit, whose correlation
    RDM is undefined (RSA) though CKA is defined for it."""
    settings = {"options": {}, "dtype": "float64", "device": "cpu", "max_memory_gb": None}
    run(undefined_layers, measure, settings, tmp_path / "m.h5", tmp_path / "m.csv")
    _, labels = read_matrix(tmp_path / "m.h5")
    one_unit = "1 unit: correlation RDM undefined" if measure == "rsa" else ""
    dead = "dead layer (every probe image alike)"
    assert labels.set_index(["seed", "layer"])["undefined"].to_dict() == {
        (s, layer): dead if (s, layer) == (2, "encoder1") else one_unit if layer == "bottleneck1"
        else "" for s in range(3) for layer in ("input", "encoder1", "bottleneck1", "output")}
    pairs = pd.read_csv(tmp_path / "m.csv").set_index(["a_seed", "a_layer", "b_seed", "b_layer"])
    why = pairs["undefined"].fillna("")  # an empty reason reads as NaN
    assert (pairs["value"].isna() == (why != "")).all(), "NaN exactly where a reason is given"
    assert why[0, "input", 2, "encoder1"] == f"b: {dead}"
    assert why[0, "bottleneck1", 2, "encoder1"] == (f"a: {one_unit}; b: {dead}" if one_unit
                                                    else f"b: {dead}")
    assert why[0, "bottleneck1", 1, "bottleneck1"] == (f"a: {one_unit}; b: {one_unit}" if one_unit
                                                       else "")
