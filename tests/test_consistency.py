"""RDM and representational-consistency math against cases worked by hand."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hourglass.analyses.consistency import (
    bootstrap_rc, cluster_distances, layer_consistency, run, second_order, seed_pair_means)
from hourglass.findings import next_layer_closer
from hourglass.io import read_table
from hourglass.similarity.rdm import rdm, upper_triangle

RC = ["rc", "rc_sq", "rc_low", "rc_high"]


def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def rdm_from_triangle(t, n):
    D = np.zeros((n, n))
    D[np.triu_indices(n, 1)] = t
    return D + D.T


def test_correlation_rdm_by_hand():
    X = np.array([[1.0, 2, 3], [3, 2, 1], [1, 2, 4]])
    D = rdm(X)
    assert D[0, 1] == pytest.approx(2.0)  # perfectly anti-correlated
    # a = (1,2,3) centred (-1,0,1); c = (1,2,4) centred (-4/3,-1/3,5/3): r = 3 / (sqrt2 * sqrt(42)/3)
    assert D[0, 2] == pytest.approx(1 - 9 / math.sqrt(84))
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0)


def test_constant_pattern_is_uncorrelated_with_everything():
    X = np.array([[0.0, 0, 0], [1, 2, 3], [3, 1, 2]])
    D = rdm(X)
    assert D[0, 1] == D[0, 2] == 1.0
    assert D[1, 2] == pytest.approx(1 - pearson([1, 2, 3], [3, 1, 2]))


def test_rc_of_three_seeds_by_hand():
    tri = [[1.0, 2, 3], [1.0, 2, 3], [3.0, 2, 1]]  # r12 = 1, r13 = r23 = -1
    rdms = torch.tensor(np.stack([rdm_from_triangle(t, 3) for t in tri]))
    r = second_order(rdms)
    assert r[0, 1] == pytest.approx(1) and r[0, 2] == pytest.approx(-1)
    rc, rc_sq = seed_pair_means(r)
    assert rc.item() == pytest.approx(-1 / 3)
    assert rc_sq.item() == pytest.approx(1.0)


def test_rc_matches_pairwise_pearson_of_rdm_triangles():
    rng = np.random.default_rng(0)
    acts = [rng.normal(size=(12, 5)) for _ in range(4)]
    stats, *_ = layer_consistency(acts, n_boot=20)
    tris = [upper_triangle(rdm(a)) for a in acts]
    rs = [pearson(tris[s], tris[t]) for s in range(4) for t in range(s + 1, 4)]
    assert stats["rc"] == pytest.approx(np.mean(rs))
    assert stats["rc_sq"] == pytest.approx(np.mean(np.square(rs)))
    assert stats["rc_low"] <= stats["rc_high"]


def test_identical_seeds_are_perfectly_consistent():
    X = np.random.default_rng(1).normal(size=(15, 6))
    stats, *_ = layer_consistency([X, X.copy(), 2 * X + 1], n_boot=30)
    assert stats["rc"] == pytest.approx(1) and stats["rc_sq"] == pytest.approx(1)
    assert stats["rc_low"] == pytest.approx(1) and stats["rc_high"] == pytest.approx(1)
    assert stats["undefined"] == ""


def test_bootstrap_equals_rebuilding_the_resampled_rdms():
    """The quadratic-form bootstrap against resampling stimuli explicitly."""
    rng = np.random.default_rng(2)
    n, seeds = 9, 3
    rdms = torch.tensor(np.stack([rdm(rng.normal(size=(n, 4))) for _ in range(seeds)]))
    draws = rng.integers(0, n, size=(5, n))
    counts = torch.tensor(np.stack([np.bincount(d, minlength=n) for d in draws]), dtype=torch.float64)
    rc, rc_sq = bootstrap_rc(rdms, counts)
    for b, idx in enumerate(draws):
        # every pair of drawn stimuli, except a stimulus paired with its own copy
        pairs = [(i, j) for p, i in enumerate(idx) for j in idx[p + 1:] if i != j]
        vecs = [[rdms[s, i, j].item() for i, j in pairs] for s in range(seeds)]
        rs = [pearson(vecs[s], vecs[t]) for s in range(seeds) for t in range(s + 1, seeds)]
        assert rc[b].item() == pytest.approx(np.mean(rs), abs=1e-10)
        assert rc_sq[b].item() == pytest.approx(np.mean(np.square(rs)), abs=1e-10)


def test_one_seed_is_refused():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        layer_consistency([np.ones((5, 3))])


def test_a_constant_rdm_has_no_r_with_any_other():
    tri = [[1.0, 2, 3], [1.0, 1, 1], [3.0, 2, 1]]
    r = second_order(torch.tensor(np.stack([rdm_from_triangle(t, 3) for t in tri])))
    assert r[0, 2] == pytest.approx(-1)
    assert r[1].isnan().all() and r[:, 1].isnan().all(), "undefined, not 0"


@pytest.mark.parametrize("dead", ["zeros", "same pattern"])
def test_a_dead_seed_leaves_the_layer_without_rc(dead):
    """A seed whose layer maps every stimulus alike has a constant RDM: no r
    with any other, so the layer has no RC (not one over the other seeds)."""
    rng = np.random.default_rng(3)
    alive = [rng.normal(size=(8, 4)) for _ in range(2)]
    # the same non-constant pattern for every stimulus: an RDM constant only up to rounding
    dead = np.zeros((8, 4)) if dead == "zeros" else np.tile(rng.normal(size=4), (8, 1))
    stats, _, constant = layer_consistency([*alive, dead], n_boot=10)
    assert np.isnan([stats[k] for k in RC]).all()
    assert stats["undefined"] == "1 of 3 seeds' RDMs constant (dead layer)"
    assert constant.tolist() == [False, False, True]


def test_a_one_unit_layer_has_no_rc():
    """One unit: a stimulus's pattern is one number, which correlates with
    nothing; every seed's correlation RDM is constant and RC undefined, not 0."""
    rng = np.random.default_rng(4)
    stats, _, constant = layer_consistency([rng.normal(size=(10, 1)) for _ in range(3)], n_boot=10)
    assert np.isnan([stats[k] for k in RC]).all()
    assert stats["undefined"] == "1 unit: correlation RDM undefined"
    assert constant.all()


def test_a_resample_with_a_constant_rdm_has_no_rc():
    """Seed 0's RDM varies only through stimulus 0: without it, a resample's RDM is constant."""
    rng = np.random.default_rng(5)
    n = 12
    D = np.full((n, n), 0.7)
    D[0, 1:] = D[1:, 0] = rng.random(n - 1)
    other = rdm(rng.normal(size=(n, 4)))
    rdms = torch.tensor(np.stack([D * (1 - np.eye(n)), other]))
    counts = torch.tensor(np.stack([np.bincount(rng.integers(1, n, n), minlength=n),
                                    np.ones(n)]), dtype=torch.float64)
    rc, rc_sq = bootstrap_rc(rdms, counts)
    assert rc[0].isnan() and rc_sq[0].isnan()
    assert rc[1].item() == pytest.approx(pearson(upper_triangle(D), upper_triangle(other)))


def test_undefined_layers_are_nan_with_a_reason_in_the_tables(undefined_layers, tmp_path):
    settings = {"bootstrap": 20, "ci": 0.95, "seed": 0}
    run(undefined_layers, settings,
        {"consistency": tmp_path / "rc.csv", "mds": tmp_path / "mds.csv",
         "clusters": tmp_path / "clusters.csv", "instance_mds": tmp_path / "instance_mds.csv",
         "mirrors": tmp_path / "mirrors.csv"})
    rc = read_table(tmp_path / "rc.csv").set_index("layer")
    assert rc.loc[["encoder1", "bottleneck1"], RC].isna().all().all(), "undefined, not 0"
    assert rc.loc[["input", "output"], RC].notna().all().all()
    assert rc["undefined"].fillna("").to_dict() == {  # an empty reason reads as NaN
        "input": "", "encoder1": "1 of 3 seeds' RDMs constant (dead layer)",
        "bottleneck1": "1 unit: correlation RDM undefined", "output": ""}
    assert rc.loc["encoder1", "constant_rdms"] == 1 and rc.loc["bottleneck1", "constant_rdms"] == 3
    mds = read_table(tmp_path / "mds.csv")
    left_out = mds["undefined"].notna()  # an empty reason reads as NaN
    assert list(mds.loc[left_out, "layer"]) == ["encoder1"] + ["bottleneck1"] * 3
    assert mds.loc[left_out, ["x", "y"]].isna().all().all()
    assert mds.loc[~left_out, ["x", "y"]].notna().all().all()
    clusters = read_table(tmp_path / "clusters.csv").set_index("layer")
    assert clusters["undefined"].fillna("").to_dict() == {
        "input": "a constant RDM in encoder1",
        "encoder1": "a constant RDM in encoder1, bottleneck1",
        "bottleneck1": "a constant RDM in bottleneck1", "output": ""}
    assert clusters.loc["input", "cluster_spread"] == pytest.approx(0, abs=1e-12)
    assert np.isnan(clusters.loc["input", "next_distance"]), "undefined, not 0"


def test_cluster_spread_and_next_layer_distance_by_hand():
    # 2 layers x 2 seeds, layer-major: (l0 s0, l0 s1, l1 s0, l1 s1)
    D = np.array([[0.0, 0.2, 0.5, 0.7],
                  [0.2, 0.0, 0.3, 0.1],
                  [0.5, 0.3, 0.0, 0.4],
                  [0.7, 0.1, 0.4, 0.0]])
    spread, to_next = cluster_distances(D, n_layers=2, n_seeds=2)
    assert spread == pytest.approx([0.2, 0.4])
    assert to_next[0] == pytest.approx((0.5 + 0.7 + 0.3 + 0.1) / 4) and np.isnan(to_next[1])


def test_next_layer_closer_holds_where_every_inner_layer_is_nearer_its_next():
    def table(spread, to_next):
        return pd.DataFrame({"variant": "v", "epoch": "final", "layer": list("abcde"),
                             "layer_index": range(5), "cluster_spread": spread,
                             "next_distance": to_next})

    # the first (input) and last layers are not judged
    measured, held = next_layer_closer(table([0, 0.5, 0.6, 0.4, 0.2],
                                             [0.3, 0.4, 0.3, 0.3, np.nan]))
    assert held is True and measured == "v: next layer closer at 3 of 3 layers"
    measured, held = next_layer_closer(table([0, 0.5, 0.2, 0.4, 0.2],
                                             [0.3, 0.4, 0.3, np.nan, np.nan]))
    assert held is False and "(not at c), 1 undefined" in measured


def test_diverged_activations_are_refused():
    bad = np.ones((5, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="seed #1 hold NaN or inf"):
        layer_consistency([np.eye(5, 3), bad], n_boot=5)


def test_the_region_of_each_layer_is_its_recorded_role(tmp_path):
    """Names that say nothing of where a layer sits ('pixels', 'z', 'recon'):
    the table's region comes from the roles the activation files record."""
    import h5py

    from hourglass.io import write_attrs

    rng = np.random.default_rng(0)
    names, roles = ["pixels", "h", "z", "recon"], ["input", "encoder", "bottleneck", "output"]
    files = []
    for seed in range(2):
        path = tmp_path / f"seed{seed}.h5"
        with h5py.File(path, "w") as f:
            for name in names:
                f.create_dataset(f"layers/{name}", data=rng.random((8, 3)).astype(np.float32))
            write_attrs(f, layer_names=names, layer_roles=roles, seed=seed, epoch=1,
                        variant="v", shapes={n: [3] for n in names}, model={},
                        checkpoint="final", diverged="")
        files.append(path)
    run(files, {"bootstrap": 20, "ci": 0.5, "seed": 0},
        {"consistency": tmp_path / "rc.csv", "mds": tmp_path / "mds.csv",
         "clusters": tmp_path / "clusters.csv", "instance_mds": tmp_path / "instance_mds.csv",
         "mirrors": tmp_path / "mirrors.csv"})
    rc = read_table(tmp_path / "rc.csv")
    assert dict(zip(rc["layer"], rc["region"])) == dict(zip(names, roles))
