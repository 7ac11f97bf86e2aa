"""Every config value typed and in range at start-up (check_config and
check_measures, which the Snakefile runs before anything else), and each
variant's settings resolved in full."""

import pytest
import yaml

from conftest import REPO, SCHEMA
from hourglass.config import (ConfigError, check_config, check_measures, data_key,
                              load_schema, merge, probe_key, resolve_variants)

TINY = yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text())


def problems(override):
    """check_config's message for tiny.yaml with `override` (YAML) merged in."""
    config = merge(TINY, yaml.safe_load(override))
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
        check_measures(config.get("similarity", {}).get("measures"))
    return str(error.value)


def test_the_strict_loader_is_a_safe_loader():
    from hourglass.config import StrictLoader

    assert issubclass(StrictLoader, yaml.SafeLoader)


def test_checking_a_config_imports_no_torch_unless_a_model_must_be_built():
    """Every Snakemake run and dry run checks the config first: torch takes
    seconds to import, and only VAE heads and cae bottlenecks need a model
    built to check."""
    import subprocess
    import sys

    code = ("import sys, yaml; from hourglass.config import check_config; "
            f"check_config(yaml.safe_load(open({str(REPO / 'tests' / 'tiny.yaml')!r})), "
            f"{str(SCHEMA)!r}); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={"PYTHONPATH": str(REPO / "src")})
    assert result.stdout.strip() == "False"


def test_tiny_config_passes():
    check_config(TINY, SCHEMA)
    check_measures(TINY["similarity"]["measures"])


@pytest.mark.parametrize("override,message", [
    # a float where a count belongs passed JSON Schema's "integer" and failed late
    ("seeds: [0, 1.0]", "seeds.1: 1.0 is not of type 'integer'"),
    ("checkpoints: [0, 2.0]", "checkpoints.1: 2.0 is not of type 'integer'"),
    ("variants: {latent4: {model: {latent: 4.0}}}",
     "variants.latent4.model.latent: 4.0 is not of type 'integer'"),
    ("training: {batch_size: 64.0}", "training.batch_size: 64.0 is not of type 'integer'"),
    ("seeds: [0, true]", "seeds.1: True is not of type 'integer'"),
    ("training: {lr: .inf}", "training.lr: inf is not of type 'number'"),
    ("training: {lr: .nan}", "training.lr: nan is not of type 'number'"),
    # out of range values that reached scikit-learn or torch
    ("data: {split_seed: -1}", "data.split_seed: -1 is less than the minimum of 0"),
    ("data: {val_fraction: 0}", "data.val_fraction: 0 is less than or equal to the minimum of 0"),
    ("data: {train_size: 5}", "data.train_size: 5 is less than the minimum of 10"),
    ("similarity: {seed: -1}", "similarity.seed: -1 is less than the minimum of 0"),
    ("figures: {dpi: 3000}", "figures.dpi: 3000 is greater than the maximum of 600"),
    # too few resamples for a percentile interval
    ("similarity: {bootstrap: 1}", "similarity.bootstrap: 1 resamples leave fewer than 10 beyond "
     "each end of a 0.95 interval; use at least 400"),
    ("similarity: {bootstrap: 1000, ci: 0.99}", "use at least 2000"),
    # measure options typed from the plans' annotations
    ("similarity: {measures: {linear_cka: {debiased: 'false'}}}",
     "similarity.measures.linear_cka: option debiased of measure 'linear_cka' must be true or "
     "false, got 'false' (str)"),
    ("similarity: {measures: {rbf_cka: {threshold: .inf}}}",
     "option threshold of measure 'rbf_cka' must be a finite number, got inf"),
    ("similarity: {measures: {svcca: {keep: '0.9'}}}",
     "option keep of measure 'svcca' must be a finite number, got '0.9' (str)"),
    ("similarity: {measures: {rsa: {metric: 1}}}",
     "option metric of measure 'rsa' must be a string, got 1 (int)"),
])
def test_a_value_of_the_wrong_type_or_range_is_named(override, message):
    assert message in problems(override)


# tiny.yaml asks for two measures: variants must share their probe images
NO_MEASURES = "similarity: {measures: {}}\n"


@pytest.mark.parametrize("override,message", [
    ("data: {classes: [1, 12]}", "data.classes: 12 is not a class of 'digits'; its classes are "
     "0 (0), 1 (1)"),
    (NO_MEASURES + "variants: {latent4: {data: {dataset: fashion_mnist, classes: [10, 11]}}}",
     "variants.latent4.data.classes: 10, 11 are not classes of 'fashion_mnist'; its classes are "
     "0 (T-shirt/top), 1 (Trouser)"),
    ("data: {classes: [3]}", "data.classes: [3] is too short (the labels to keep, at least two"),
    ("data: {classes: [3, 3]}", "data.classes: [3, 3] has non-unique elements (the labels to "
     "keep, at least two different ones"),
    ("data: {classes: [1, 7], probe_size: 100}", "data.probe_size: 100 probe images asked for, "
     "but classes [1, 7] of 'digits' have at most 73 test images; set data.probe_size to at "
     "most 73 (null: all of them)"),
    ("data: {probe_size: 500}", "data.probe_size: 500 probe images asked for, but 'digits' has "
     "at most 364 test images; set data.probe_size to at most 364"),
    ("data: {probe_size: null}", "data.probe_size: null asks for 1000 probe images (no classes "
     "given), but 'digits' has at most 364"),
    ("variants: {latent4: {data: {root: /elsewhere}}}", "unknown key variants.latent4.data.root; "
     "allowed here: dataset, classes, val_fraction, train_size, probe_size, first, split_seed, "
     "test_size, resize, pad, binarise (overrides of the study's data setting; where the data is read from (root, download) is the study's, "
     "set under data)"),
    ("variants: {latent8: {data: {classes: [1, 7]}}}", "similarity.measures: linear_cka, "
     "procrustes compare every variant's layers on the same probe images, but the variants "
     "record different ones (latent4; latent8: their data settings differ in dataset, classes, "
     "probe_size, split_seed, resize, test_size, pad, binarise)"),
    ("data: {test_size: 50, probe_size: 60}", "data.probe_size: 60 probe images asked for, but "
     "'digits' has at most 50 test images"),
    ("variants: {latent8: {data: {resize: 16}}}", "but the variants record different ones "
     "(latent4; latent8: their data settings differ in"),
    ("analyses: {outliers: {ood: {dataset: digits}}}", "analyses.outliers.ood.probe_size: null "
     "asks for 1000 probe images"),
    ("analyses: {outliers: {ood: {dataset: digits, probe_size: 60, resize: 16}}}",
     "analyses.outliers.ood: its images are 1x16x16 (C x H x W) but variants.latent4.data's are "
     "1x8x8, which the model cannot read"),
    ("analyses: {probes: {data: {dataset: digits, probe_size: 60, pad: 1}}}",
     "analyses.probes.data: its images are 1x10x10 (C x H x W) but variants.latent8.data's are "
     "1x8x8"),
    ("analyses: {probes: {data: {dataset: digits, classes: [11]}}}",
     "analyses.probes.data.classes"),
    ("analyses: {losses: {}}", "analyses.losses.grid: variant 'latent4' has no setting area, "
     "compression (its model is fc); name settings of its model or data"),
    # pad has no default: a variant that does not set it has no level of it
    ("variants: {latent8: {data: {pad: 2}}}\nanalyses: {losses: {grid: [pad, latent]}}",
     "analyses.losses.grid: variant 'latent4' has no setting pad (its model is fc)"),
])
def test_a_data_setting_the_dataset_cannot_meet_is_named(override, message):
    assert message in problems(override)


def test_a_data_file_is_named_by_its_whole_setting():
    setting = {"dataset": "digits", "classes": [1, 7], "probe_size": None}
    assert data_key(setting) == data_key(dict(reversed(setting.items())))
    assert data_key(setting).startswith("digits-")
    assert data_key({**setting, "classes": [7, 1]}) != data_key(setting)  # relabelled otherwise


def test_data_settings_per_variant_pass():
    """Classes the dataset has, and measures across variants that differ only in
    what they train on (the probe images are the same)."""
    check_config({
        **TINY, "similarity": {}, "variants": {"a": {"data": {"classes": [1, 7]}},
                             "b": {"data": {"classes": [0, 9, 4], "probe_size": 30}}}}, SCHEMA)
    check_config({**TINY, "variants": {"a": {}, "b": {"data": {"train_size": 500,
                                                              "val_fraction": 0.2}}}}, SCHEMA)


def test_the_fewest_resamples_pass():
    check_config({**TINY, "similarity": {"bootstrap": 400, "ci": 0.95}}, SCHEMA)
    check_config({**TINY, "similarity": {"bootstrap": 100, "ci": 0.8}}, SCHEMA)


def test_typed_options_pass_and_the_string_false_is_not_debiased():
    from hourglass.similarity.measures import measure_plan

    check_measures({"linear_cka": {"debiased": False}, "rbf_cka": {"threshold": 1},
                    "svcca": {"keep": 0.9}, "rsa": {"compare": "spearman"}})
    with pytest.raises(ValueError, match="must be true or false"):
        measure_plan("linear_cka", debiased="false")
    with pytest.raises(ValueError, match="must be true or false"):
        measure_plan("linear_cka", debiased=0)


def test_every_measure_option_is_annotated_with_a_checked_type():
    import inspect

    from hourglass.similarity.measures import MEASURES, TYPE_NAMES

    for name, entry in MEASURES.items():
        for option in inspect.signature(entry.plan).parameters.values():
            assert option.annotation in TYPE_NAMES, f"{name}: {option}"


def test_variants_resolve_to_their_full_settings_and_to_themselves():
    schema = load_schema(SCHEMA)
    config = {"model": {"widths": [64, 48], "latent": 16}, "training": {"lr": 0.001},
              "data": {"dataset": "digits", "classes": None, "root": "data", "download": False},
              "variants": {"a": {"model": {"latent": 4}},
                           "b": {"training": {"lr": 0.1}, "data": {"classes": [1, 7]}}}}
    resolved = resolve_variants(config, schema)
    # where the data is read from is the study's, not a variant's
    assert resolved == {
        "a": {"model": {"widths": [64, 48], "latent": 4}, "training": {"lr": 0.001},
              "data": {"dataset": "digits", "classes": None}},
        "b": {"model": {"widths": [64, 48], "latent": 16}, "training": {"lr": 0.1},
              "data": {"dataset": "digits", "classes": [1, 7]}}}
    assert resolve_variants({**config, "variants": resolved}, schema) == resolved


def test_a_variant_of_another_architecture_keeps_only_the_keys_it_takes():
    config = {"model": {"widths": [128, 32], "latent": 2, "activation": "tanh",
                        "init": "glorot_normal"},
              "variants": {"linear": {"model": {"architecture": "linear"}},
                           "pca": {"model": {"architecture": "pca"}},
                           "conv": {"model": {"architecture": "conv", "channels": [4, 8, 8]}}}}
    resolved = resolve_variants(config, load_schema(SCHEMA))
    assert resolved["linear"]["model"] == {"architecture": "linear", "latent": 2,
                                           "init": "glorot_normal"}
    assert resolved["pca"]["model"] == {"architecture": "pca", "latent": 2}
    assert resolved["conv"]["model"] == {"architecture": "conv", "channels": [4, 8, 8],
                                         "latent": 2, "init": "glorot_normal"}
    check_config({"study": "s", "data": {"probe_size": 100}, **config}, SCHEMA)


@pytest.mark.parametrize("override,message", [
    ("model: {channels: [8, 8, 8]}", "unknown key model.channels; allowed here: architecture, "
     "widths, latent, bottleneck_layers, activation, latent_activation, init, repeat, classes "
     "(the keys of architecture fc)"),
    ("variants: {pca: {model: {architecture: pca, init: glorot_normal}}}",
     "unknown key variants.pca.model.init; allowed here: architecture, latent (the keys of "
     "architecture pca)"),
    ("variants: {lin: {model: {architecture: linear, activation: tanh}}}",
     "unknown key variants.lin.model.activation; allowed here: architecture, latent, init"),
    ("model: {activation: sigmoid}", "model.activation: 'sigmoid' is not known; choose one of: "
     "relu, tanh"),
])
def test_a_key_the_architecture_does_not_take_is_refused_by_name(override, message):
    assert message in problems(override)


@pytest.mark.parametrize("override,named", [
    ("model: {latent: four}", "'four'"), ("training: {lr: -1}", "-1"),
    ("training: {lrr: 0.1}", "lrr"), ("data: {split_seed: -1}", "-1"), ("data: {sise: 3}", "sise")])
def test_a_study_keys_error_is_named_once_not_in_every_variant(override, named):
    message = problems(override)
    assert message.count(named) == 1 and "variants." not in message, message


def test_bce_is_refused_for_a_model_whose_output_is_unbounded():
    message = problems("training: {loss: bce}\nvariants: {lin: {model: {architecture: linear}}, "
                       "pca: {model: {architecture: pca}, training: {loss: mse}}}")
    assert ("variants.lin.training.loss: bce is undefined for a reconstruction outside [0, 1], "
            "and linear's output is not held there (no sigmoid); give this variant training: "
            "{loss: mse}") in message
    assert "variants.pca" not in message
    check_config(merge(TINY, yaml.safe_load("training: {loss: bce}")), SCHEMA)  # fc: a sigmoid


@pytest.mark.parametrize("latent,expected", [
    ({"layer": "bottleneck9"}, "analyses.latent.layer: variant 'tanh' has no layer 'bottleneck9'; "
     "its layers are input, encoder1, bottleneck1, decoder1, output"),
    ({"layer": "bottleneck1"}, "variant 'pca' has no layer 'bottleneck1'; its layers are input, "
     "code, reconstruction"),
    ({"components": 65}, "analyses.latent.components: 65 components of a PCA of 'digits' images, "
     "which have 64 pixels; use at most 64"),
])
def test_a_latent_analysis_the_models_or_images_cannot_give_is_named(latent, expected):
    config = yaml.safe_load((REPO / "tests" / "latent_tiny.yaml").read_text())
    config["analyses"]["latent"] = latent
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
    assert expected in str(error.value)


def test_settings_that_differ_only_in_training_images_share_their_probe_images():
    """train_size and val_fraction draw no probe image: their variants can be
    compared (across_variants, measures); probe_size and classes can not."""
    setting = dict(TINY["data"], classes=None, split_seed=0, resize=None, test_size=None,
                   train_size=None, val_fraction=0.1)
    same = [dict(setting, train_size=500), dict(setting, val_fraction=0.2)]
    other = [dict(setting, probe_size=100), dict(setting, classes=[1, 7])]
    assert {probe_key(s) for s in [setting, *same]} == {probe_key(setting)}
    assert len({probe_key(s) for s in [setting, *other]}) == 3
    assert data_key(same[0]) != data_key(setting)
