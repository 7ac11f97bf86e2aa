"""The consistency paper's figures beyond RC per layer (Durbha et al. 2022):
repeated layers and a classifier in the model registry, binarised images,
one seed's MDS and its mirrored layers, the claims of Figs. 3-8 on
hand-made tables, the config's checks, and the tiny study end to end
(tests/consistency_tiny.yaml)."""

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from conftest import REPO, config_problems, snakemake
from hourglass.activations import read_layer
from hourglass.analyses.consistency import (instance_layouts, mds_2d, mirror_distances,
                                            one_instance)
from hourglass.data import binarised, load_split
from hourglass.findings import FINDINGS
from hourglass.io import open_h5, read_json_attr
from hourglass.losses import Batch
from hourglass.models import build_model
from hourglass.objectives import objective_loss
from hourglass.plots import merged_layers
from hourglass.similarity.rdm import rdm, upper_triangle

FC = dict(architecture="fc", widths=[12, 6], latent=3, bottleneck_layers=1, activation="relu",
          latent_activation="relu", init="glorot_uniform")
CONV = dict(architecture="conv", channels=[2, 4, 4], latent=3, bottleneck_layers=1,
            init="glorot_uniform")


def test_repeated_layers_follow_their_layer_with_its_shape_and_role():
    model = build_model({**FC, "repeat": {"encoder2": 2, "decoder1": 1}}, (1, 8, 8))
    assert model.layer_names == ["input", "encoder1", "encoder2", "encoder2r1", "encoder2r2",
                                 "bottleneck1", "decoder1", "decoder1r1", "decoder2", "output"]
    assert model.layer_roles[3:5] == ["encoder", "encoder"] and model.layer_roles[7] == "decoder"
    layers = model.layers(torch.rand(5, 1, 8, 8))
    assert layers["encoder2r2"].shape == layers["encoder2"].shape == (5, 6)
    assert layers["output"].shape == (5, 1, 8, 8)
    conv = build_model({**CONV, "repeat": {"encoder2": 1, "decoder1": 1, "decoder3": 1}}, (1, 8, 8))
    layers = conv.layers(torch.rand(2, 1, 8, 8))
    for layer in ("encoder2", "decoder1", "decoder3"):  # after the pooling or upsampling
        assert layers[f"{layer}r1"].shape == layers[layer].shape
    with pytest.raises(ValueError, match="bottleneck1, not an encoder or decoder layer.*"
                                         "model.bottleneck_layers"):
        build_model({**FC, "repeat": {"bottleneck1": 1}}, (1, 8, 8))


def test_a_classifier_is_the_encoder_and_bottleneck_with_a_head_of_class_scores():
    model = build_model({**FC, "bottleneck_layers": 2, "classes": 10}, (1, 8, 8))
    assert model.layer_names == ["input", "encoder1", "encoder2", "bottleneck1", "bottleneck2",
                                 "classes"]
    assert "output" not in model.layer_roles and "classes" in model.single_roles
    assert model(torch.rand(4, 1, 8, 8)).shape == (4, 10)
    assert build_model({**CONV, "classes": 3}, (1, 8, 8)).layer_names[-2:] == ["bottleneck1",
                                                                                "classes"]


def test_the_classifier_objective_is_the_cross_entropy_of_the_scores():
    torch.manual_seed(0)
    scores, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    batch = Batch(torch.rand(6, 1, 2, 2), y, 0, "mse", torch.Generator(), 6)
    terms = objective_loss({"name": "classifier"}).terms({"classes": scores}, batch)
    assert terms["loss"].item() == pytest.approx(F.cross_entropy(scores, y).item())
    assert terms["accuracy"].item() == pytest.approx((scores.argmax(1) == y).float().mean().item())


def test_binarised_pixels_are_black_or_white_at_the_threshold():
    x = np.array([[[[0, 7, 8, 16]]]], dtype=np.uint8)  # the digits' 0..16
    assert binarised(x, 1 / 16, 0.5).tolist() == [[[[0, 0, 16, 16]]]]
    assert binarised(np.array([127, 128], dtype=np.uint8), 1 / 255, 0.5).tolist() == [0, 255]


def seed_matrix():
    """Second-order dissimilarities of 5 layers x 2 seeds (layer-major) whose
    seed 1 is the seed-0 matrix `inner` doubled."""
    inner = np.array([[0.0, 0.1, 0.5, 0.7, 0.9],
                      [0.1, 0.0, 0.2, 0.4, 0.6],
                      [0.5, 0.2, 0.0, 0.3, 0.8],
                      [0.7, 0.4, 0.3, 0.0, 0.2],
                      [0.9, 0.6, 0.8, 0.2, 0.0]])
    D = np.full((10, 10), 0.95)
    D[0::2, 0::2], D[1::2, 1::2] = inner, 2 * inner
    return inner, D


def test_one_seeds_layers_are_its_block_of_the_second_order_matrix():
    inner, D = seed_matrix()
    assert np.array_equal(one_instance(D, 5, 2, 0), inner)
    assert np.array_equal(one_instance(D, 5, 2, 1), 2 * inner)


def test_mirrored_layers_pair_outwards_from_the_bottleneck_with_their_neighbours():
    inner, _ = seed_matrix()
    layers = ["e1", "e2", "b", "d1", "d2"]
    regions = ["encoder", "encoder", "bottleneck", "decoder", "decoder"]
    rows = mirror_distances(inner, layers, regions)
    assert [(r["step"], r["encoder"], r["decoder"]) for r in rows] == [(1, "e2", "d1"),
                                                                        (2, "e1", "d2")]
    assert [r["mirror_distance"] for r in rows] == [0.4, 0.9]
    assert [(r["encoder_next"], r["decoder_previous"]) for r in rows] == [(0.2, 0.3), (0.1, 0.2)]


def test_repeats_and_unequal_depths_have_no_mirrors():
    distances = np.ones((6, 6))
    layers = ["input", "encoder1", "encoder1r1", "bottleneck1", "decoder1", "output"]
    regions = ["input", "encoder", "encoder", "bottleneck", "decoder", "output"]
    assert [(r["encoder"], r["decoder"]) for r in mirror_distances(distances, layers, regions)] \
        == [("encoder1", "decoder1")]
    regions[2], layers[2] = "encoder", "encoder2"  # two encoder layers, one decoder layer: none
    assert mirror_distances(distances, layers, regions) == []


def test_the_common_axis_puts_repeats_after_their_layer_and_a_head_with_the_outputs():
    def rows(variant, layers, regions):
        return [dict(variant=variant, layer=layer, layer_index=i, region=region)
                for i, (layer, region) in enumerate(zip(layers, regions))]

    plain = rows("plain", ["input", "encoder1", "encoder2", "bottleneck1", "output"],
                 ["input", "encoder", "encoder", "bottleneck", "output"])
    repeated = rows("repeated", ["input", "encoder1", "encoder1r1", "encoder1r2", "encoder2",
                                 "bottleneck1", "output"],
                    ["input", "encoder", "encoder", "encoder", "encoder", "bottleneck", "output"])
    head = rows("classifier", ["input", "encoder1", "encoder2", "bottleneck1", "classes"],
                ["input", "encoder", "encoder", "bottleneck", "output"])
    layers, _ = merged_layers(pd.DataFrame(plain + repeated + head))
    assert layers == ["input", "encoder1", "encoder1r1", "encoder1r2", "encoder2", "bottleneck1",
                      "classes", "output"]


def test_mds_lays_out_what_a_classical_start_cannot():
    # 1 - r between three layers need not be distances: the centred matrix
    # has one positive eigenvalue, and sklearn's classical start is NaN
    D = np.array([[0.0, 1.0, 0.1], [1.0, 0.0, 0.2], [0.1, 0.2, 0.0]])
    xy = mds_2d(D)
    assert np.isfinite(xy).all()
    far = np.linalg.norm(xy[0] - xy[1])
    assert far > np.linalg.norm(xy[0] - xy[2]) and far > np.linalg.norm(xy[1] - xy[2])
    assert mds_2d(np.array([[0.0, 0.4], [0.4, 0.0]])) == pytest.approx(np.array([[-0.2, 0], [0.2, 0]]))
    assert mds_2d(np.zeros((1, 1))).tolist() == [[0.0, 0.0]]


def test_one_seeds_layout_keeps_its_distances_and_leaves_out_the_ends():
    # four layers at the corners of a 3 x 4 rectangle: Euclidean, so MDS keeps them
    points = np.array([[0, 0], [3, 0], [3, 4], [0, 4]], dtype=float)
    D = np.linalg.norm(points[:, None] - points[None], axis=-1)
    rows = instance_layouts(D, ["input", "a", "b", "output"],
                            ["input", "encoder", "decoder", "output"])
    every = pd.DataFrame([r for r in rows if r["layers"] == "all"])
    xy = every[["x", "y"]].to_numpy()
    assert np.linalg.norm(xy[:, None] - xy[None], axis=-1) == pytest.approx(D, abs=1e-3)
    inner = [r["layer"] for r in rows if r["layers"] == "inner"]
    assert inner == ["a", "b"]


def table(rc, variant="v", epoch="final", regions=None):
    regions = regions or ["input", "encoder", "bottleneck", "decoder", "output"]
    return pd.DataFrame([dict(variant=variant, epoch=epoch, layer=f"l{i}", layer_index=i,
                              region=region, rc=value)
                         for i, (region, value) in enumerate(zip(regions, rc))])


def verdict(name, *tables, **params):
    return FINDINGS[name].function(*tables, **params)[1]


def test_the_bottleneck_rc_must_rise_with_the_latent_size():
    rc = pd.concat([table([1, 0.8, low, 0.8, 0.9], v) for v, low in
                    (("l10", 0.2), ("l20", 0.3), ("l30", 0.5))])
    assert verdict("rc_rises_with_latent", rc, variants=["l10", "l20", "l30"]) is True
    assert verdict("rc_rises_with_latent", rc, variants=["l10", "l30", "l20"]) is False
    measured, held = FINDINGS["rc_rises_with_latent"].function(rc, variants=["l10", "l40"])
    assert held is None and "no variant l40" in measured


def test_more_and_equally_consistent_compare_mean_rc_over_a_region():
    deep = ["input", "encoder", "bottleneck", "bottleneck", "bottleneck", "decoder", "output"]
    rc = pd.concat([table([1, 0.8, 0.5, 0.9, 1], "k1"),
                    table([1, 0.8, 0.4, 0.3, 0.4, 0.9, 1], "k3", regions=deep),
                    table([1, 0.8, 0.35, 0.3, 0.35, 0.9, 1], "k5", regions=deep)])
    assert verdict("more_consistent", rc, variant="k1", than=["k3", "k5"],
                   region="bottleneck") is True
    assert verdict("more_consistent", rc, variant="k3", than=["k1"], region="bottleneck") is False
    assert verdict("equally_consistent", rc, variants=["k3", "k5"], tolerance=0.05) is True
    assert verdict("equally_consistent", rc, variants=["k1", "k3"], region="bottleneck",
                   tolerance=0.05) is False
    rc.loc[rc["variant"] == "k5", "rc"] = math.nan
    assert verdict("more_consistent", rc, variant="k1", than=["k5"]) is None


def test_the_dip_must_lie_in_the_middle_bottleneck_layer():
    deep = ["input", "encoder", "bottleneck", "bottleneck", "bottleneck", "decoder", "output"]
    assert verdict("dip_in_middle_bottleneck", table([1, 0.8, 0.4, 0.3, 0.4, 0.9, 1],
                                                     regions=deep), variants=["v"]) is True
    assert verdict("dip_in_middle_bottleneck", table([1, 0.8, 0.4, 0.5, 0.3, 0.9, 1],
                                                     regions=deep), variants=["v"]) is False
    measured, held = FINDINGS["dip_in_middle_bottleneck"].function(
        table([1, 0.8, 0.4, 0.9, 1]), variants=["v"])
    assert held is None and "1 bottleneck layers (need 3 or more)" in measured


def test_rc_must_rise_over_the_epochs_and_settle():
    rc = pd.concat([table([1, 0.5, 0.2, 0.5, 0.8], epoch="0"),
                    table([1, 0.6, 0.3, 0.6, 0.8], epoch="1"),
                    table([1, 0.7, 0.4, 0.7, 0.9], epoch="64"),
                    table([1, 0.7, 0.41, 0.7, 0.9], epoch="128"),
                    table([1, 0.7, 0.41, 0.7, 0.9])])
    assert verdict("rc_rises_with_epochs", rc) is True
    assert verdict("rc_rises_with_epochs", rc, tolerance=0.001) is False
    assert verdict("rc_dips_at_bottleneck", rc, epoch=1) is True  # YAML's 1 is checkpoint '1'
    rc.loc[(rc["epoch"] == "1") & (rc["layer"] == "l2"), "rc"] = math.nan
    assert verdict("rc_rises_with_epochs", rc) is None
    a_classifiers = table([1, 0.6, 0.4, 0.3, 0.2], epoch="final")
    assert verdict("rc_falls", a_classifiers, epoch="final") is True


def mirrors(distances, neighbours=0.1):
    """A mirrors table of seeds x steps of mirror distances."""
    return pd.DataFrame([dict(variant="v", epoch="final", seed=seed, step=step, encoder=f"e{step}",
                              decoder=f"d{step}", mirror_distance=value, encoder_next=neighbours,
                              decoder_previous=neighbours)
                         for seed, row in enumerate(distances) for step, value in enumerate(row, 1)])


def test_a_v_shape_needs_mirrors_farther_apart_step_by_step():
    measured, held = FINDINGS["mirrors_v_shape"].function(mirrors([[0.2, 0.4, 0.6],
                                                                   [0.3, 0.2, 0.7]]))
    assert held is True and "rising in 1 of 2 seeds" in measured
    assert verdict("mirrors_v_shape", mirrors([[0.2, 0.6, 0.5], [0.3, 0.5, 0.4]])) is False
    assert verdict("neighbours_closer_than_mirrors", mirrors([[0.2, 0.4]])) is True
    measured, held = FINDINGS["neighbours_closer_than_mirrors"].function(
        mirrors([[0.05, 0.4]]))
    assert held is False and "not from e1" in measured
    # a seed without a distance leaves the mean undefined, not the mean of the others
    assert verdict("mirrors_v_shape", mirrors([[0.2, 0.4], [0.3, math.nan]])) is None
    assert verdict("neighbours_closer_than_mirrors", mirrors([[0.2, 0.4]], math.nan)) is None
    measured, held = FINDINGS["mirrors_v_shape"].function(mirrors([[0.2, 0.4]]),
                                                          variants=["v", "classifier"])
    assert held is None and "no mirrored layers of classifier" in measured


def data_settings(path):
    with open_h5(path, "data") as f:
        return read_json_attr(f, "settings")


def problems(config):
    """check_config's message for the tiny consistency study changed by `config`."""
    return config_problems("consistency_tiny.yaml", config)


def test_the_config_names_what_a_model_or_objective_lacks():
    def variants(**extra):
        return {"variants": {"latent4": {}, **extra}}

    assert "model.repeat names decoder9" in problems(
        variants(v={"model": {"repeat": {"decoder9": 1}}}))
    assert "model.classes: 5, but its data have 10 classes" in problems(
        variants(v={"model": {"classes": 5}, "training": {"objective": {"name": "classifier"}}}))
    assert "train it with training.objective {name: classifier}" in problems(
        variants(v={"model": {"classes": 10}}))
    assert "model.classes: the number of classes" in problems(
        variants(v={"training": {"objective": {"name": "classifier"}}}))
    assert "figures.instance_mds.seed: 7 is not one of the seeds" in problems(
        {"figures": {"instance_mds": {"seed": 7}}})
    # a classifier has no reconstruction to score as an outlier
    assert "the outliers analysis reads the output layers of variant 'classifier'" in \
        problems({"analyses": {"consistency": {}, "outliers": {
            "ood": {"dataset": "digits", "probe_size": 20}}}})


def test_the_config_names_findings_params_of_the_wrong_type_or_variants_it_lacks():
    claims = {"findings": [{"claim": "c", "check": "rc_rises_with_latent",
                            "params": {"variants": "latent2"}}]}
    assert "params.variants is 'latent2', not list" in problems(claims)
    claims["findings"][0]["params"]["variants"] = ["latent2", "latent8"]
    assert "names latent8, not a variant of the study" in problems(claims)


@pytest.mark.slow
def test_the_tiny_study_draws_every_figure_and_judges_every_claim(workflow_copy):
    root = workflow_copy("consistency_tiny")
    shutil.copy(REPO / "tests" / "consistency_tiny.yaml", root)
    snakemake(root, "--configfile", "consistency_tiny.yaml")
    study = root / "results" / "consistency_tiny"
    layouts = pd.read_csv(study / "similarity" / "instance_mds.csv", dtype={"epoch": str})
    final = layouts[(layouts["epoch"] == "final") & (layouts["variant"] == "repeated")]
    assert set(final["seed"]) == {0, 1}
    assert list(final.loc[(final["seed"] == 0) & (final["layers"] == "inner"), "layer"]) == [
        "encoder1", "encoder2", "encoder2r1", "bottleneck1", "decoder1", "decoder1r1",
        "decoder1r2", "decoder2"]
    pairs = pd.read_csv(study / "similarity" / "mirrors.csv", dtype={"epoch": str})
    assert "classifier" not in set(pairs["variant"])  # no decoder, no mirrors
    assert pairs[["mirror_distance", "encoder_next", "decoder_previous"]].notna().all().all()
    # repeats are left out of the pairs, and a pair's distance is 1 - r of the two RDMs
    one = pairs[(pairs["variant"] == "repeated") & (pairs["seed"] == 0) & (pairs["epoch"] == "final")]
    assert list(zip(one["encoder"], one["decoder"])) == [("encoder2", "decoder1"),
                                                          ("encoder1", "decoder2")]
    final_h5 = study / "repeated" / "seed0" / "activations" / "final.h5"
    a, b = (upper_triangle(rdm(torch.as_tensor(read_layer(final_h5, layer), dtype=torch.float64)))
            for layer in ("encoder2", "decoder1"))
    assert one["mirror_distance"].iloc[0] == pytest.approx(1 - np.corrcoef(a, b)[0, 1], abs=1e-8)
    metrics = pd.read_csv(study / "classifier" / "seed0" / "metrics.csv")
    assert metrics["val_accuracy"].max() > 0.3  # 10 digits: chance is 0.1
    binary = [path for path in (study / "data").glob("*.h5") if data_settings(path).get("binarise")]
    assert len(binary) == 1 and set(np.unique(load_split(binary[0], "probe")[0])) == {0.0, 1.0}
    findings = pd.read_csv(study / "findings.csv")
    # every claim judged (yes or no) on numbers that are all there
    assert len(findings) == 9 and set(findings["held"]) <= {"yes", "no"}, findings.to_string()
    for figure in ("overview", "instance_mds", "clusters", "reconstructions"):
        assert (study / "figures" / f"{figure}.png").stat().st_size > 5000
    dry = snakemake(root, "-n", "--configfile", "consistency_tiny.yaml").stdout
    assert "Nothing to be done" in dry
