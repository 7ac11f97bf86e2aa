"""The findings' checks on hand-made tables: each claim holds where the
numbers say so, fails where they do not, and is undefined (not a verdict)
where a number it needs is NaN; a config's findings are checked at start-up."""

import math

import pandas as pd
import pytest

from hourglass.findings import FINDINGS, check_finding, evaluate


def consistency(rc_final, rc_untrained=None):
    regions = ["input", "encoder", "bottleneck", "decoder", "output"]
    rows = [dict(variant="v", epoch="final", layer=f"l{i}", layer_index=i, region=r, rc=rc)
            for i, (r, rc) in enumerate(zip(regions, rc_final))]
    if rc_untrained:
        rows += [dict(variant="v", epoch="0", layer=f"l{i}", layer_index=i, region=r, rc=rc)
                 for i, (r, rc) in enumerate(zip(regions, rc_untrained))]
    return pd.DataFrame(rows)


def silhouettes(scores):
    """{variant: [final silhouette per seed]} as the latent analysis's table."""
    return pd.DataFrame([dict(variant=v, seed=s, epoch="final", silhouette=x)
                         for v, xs in scores.items() for s, x in enumerate(xs)])


def verdict(name, *tables, **params):
    return FINDINGS[name].function(*tables, **params)[1]


def test_rc_dip_holds_fails_and_is_undefined():
    assert verdict("rc_dips_at_bottleneck", consistency([1, 0.9, 0.4, 0.7, 0.8])) is True
    assert verdict("rc_dips_at_bottleneck", consistency([1, 0.9, 0.95, 0.7, 0.8])) is False
    assert verdict("rc_dips_at_bottleneck", consistency([1, 0.9, math.nan, 0.7, 0.8])) is None


def test_untrained_rc_must_keep_falling():
    table = consistency([1] * 5, rc_untrained=[1, 0.8, 0.6, 0.5, 0.4])
    assert verdict("rc_falls", table) is True
    table = consistency([1] * 5, rc_untrained=[1, 0.8, 0.6, 0.7, 0.4])
    assert verdict("rc_falls", table) is False
    assert verdict("rc_falls", table, tolerance=0.15) is True
    measured, held = FINDINGS["rc_falls"].function(consistency([1] * 5))
    assert held is None and "no checkpoint '0'" in measured


def test_baseline_within_the_autoencoders_range_per_data_setting():
    scores = silhouettes({"a": [0.5, 0.7], "b": [0.6, 0.8]})
    baselines = pd.DataFrame([dict(variant=v, data="d", baseline="pca", silhouette=0.65)
                              for v in "ab"])
    assert verdict("baseline_within_autoencoders", scores, baselines, variants=["a", "b"]) is True
    baselines["silhouette"] = 0.9
    assert verdict("baseline_within_autoencoders", scores, baselines, variants=["a", "b"]) is False
    # a data setting none of the variants trained on has no say
    other = pd.DataFrame([dict(variant="c", data="e", baseline="pca", silhouette=0.1)])
    both = pd.concat([baselines, other])
    assert verdict("baseline_within_autoencoders", scores, both, variants=["a", "b"]) is False
    baselines["silhouette"] = 0.65
    both = pd.concat([baselines, other])
    assert verdict("baseline_within_autoencoders", scores, both, variants=["a", "b"]) is True


def test_at_least_as_well_and_harder_pairs():
    scores = silhouettes({"tanh": [0.6, 0.7], "relu": [0.5, 0.6], "hard": [0.2, 0.3]})
    assert verdict("separates_at_least_as_well", scores, pairs=[["tanh", "relu"]]) is True
    assert verdict("separates_at_least_as_well", scores, pairs=[["relu", "tanh"]]) is False
    assert verdict("lower_for_harder", scores, easy=["tanh", "relu"], hard=["hard"]) is True
    assert verdict("lower_for_harder", scores, easy=["hard"], hard=["tanh"]) is False
    dead = silhouettes({"tanh": [0.6, 0.7], "relu": [0.5, math.nan, math.nan]})
    measured, held = FINDINGS["separates_at_least_as_well"].function(dead, pairs=[["tanh", "relu"]])
    assert held is True and measured == "tanh 0.650 vs relu 0.500 (2 of 3 seeds undefined)"


def test_no_gain_is_a_rank_test_over_seeds():
    alike = silhouettes({"d": [0.50, 0.62, 0.55, 0.58], "p": [0.52, 0.60, 0.56, 0.57]})
    assert verdict("no_gain_beyond_seeds", alike, pairs=[["d", "p"]]) is True
    apart = silhouettes({"d": [0.80, 0.82, 0.81, 0.83, 0.84], "p": [0.5, 0.52, 0.51, 0.53, 0.54]})
    measured, held = FINDINGS["no_gain_beyond_seeds"].function(apart, pairs=[["d", "p"]])
    assert held is False and "p 0.00397" in measured  # exact: 1 / C(10, 5), all above
    one_seed = silhouettes({"d": [0.8], "p": [0.5, 0.6]})
    assert verdict("no_gain_beyond_seeds", one_seed, pairs=[["d", "p"]]) is None


def test_scores_against_layouts_compares_shares_of_their_ranges():
    spread = pd.DataFrame([dict(variant="v", epoch="final", sd=0.02, procrustes_mean=0.5)])
    assert verdict("scores_vary_less_than_layouts", spread) is True  # 1 % vs 32 %
    spread["sd"] = 0.8
    assert verdict("scores_vary_less_than_layouts", spread) is False  # 40 % vs 32 %


def dynamics(encoder, decoder, epochs=("0", "2")):
    """To-final values of one encoder and one decoder layer at `epochs`, 2 seeds."""
    return pd.DataFrame([dict(variant="v", seed=seed, layer=layer, region=region,
                              measure="linear_cka", epoch_a=epoch, epoch_b="final", value=value)
                         for seed in (0, 1) for epoch in epochs
                         for layer, region, value in (("e", "encoder", encoder),
                                                      ("d", "decoder", decoder))])


def test_encoder_learned_first_at_the_first_checkpoint_after_0():
    assert verdict("encoder_learned_first", dynamics(0.9, 0.2)) is True
    assert verdict("encoder_learned_first", dynamics(0.2, 0.9)) is False
    assert verdict("encoder_learned_first", dynamics(math.nan, 0.9)) is None
    measured, held = FINDINGS["encoder_learned_first"].function(dynamics(0.9, 0.2, ("0",)))
    assert held is None and "no checkpoint after 0" in measured
    measured, held = FINDINGS["encoder_learned_first"].function(dynamics(0.9, 0.2), epoch=4)
    assert held is None and "no checkpoint '4'" in measured


def collapse(active, cka):
    return pd.DataFrame([dict(variant="v", seed=s, epoch="final", active_units=a,
                              cka_mean_sampled=c) for s, (a, c) in enumerate(zip(active, cka))])


def test_cka_tracks_collapse_is_a_rank_correlation_with_the_active_units():
    assert verdict("cka_tracks_collapse", collapse([0, 1, 2, 3, 4, 5], [.1, .2, .3, .5, .6, .9]))
    assert verdict("cka_tracks_collapse",
                   collapse([0, 1, 2, 3, 4, 5], [.9, .6, .5, .3, .2, .1])) is False
    # too few points to rank, or no spread in the active units: undefined
    assert verdict("cka_tracks_collapse", collapse([1, 2, 3], [.1, math.nan, .3])) is None
    assert verdict("cka_tracks_collapse", collapse([2, 2, 2, 2], [.1, .2, .3, .4])) is None
    measured, _ = FINDINGS["cka_tracks_collapse"].function(
        collapse([0, 1, 2, 3, 4, 5, 6], [.1, .2, .3, .5, .6, .9, math.nan]))
    assert "over 6 seeds x checkpoints; 1 undefined left out" in measured


def across_variants_layers(means, undefined=None):
    """across_variants/layers.csv of one group: {layer: mean} (role from the
    name), 4 pairs each, `undefined` of them undefined where given."""
    undefined = undefined or {}
    return pd.DataFrame([dict(probes="d", measure="linear_cka", layer=layer, layer_index=i,
                              role=layer.rstrip("12"), pairing="same seed", mean=mean,
                              pairs=4 - undefined.get(layer, 0), undefined=undefined.get(layer, 0))
                         for i, (layer, mean) in enumerate(means.items())])


def test_encoder_alike_across_variants_holds_fails_and_is_undefined():
    alike = {"encoder1": 0.9, "encoder2": 0.8, "mean": 0.6, "logvar": 0.5, "sampled": 0.4}
    name = "encoder_alike_across_variants"
    assert verdict(name, across_variants_layers(alike)) is True
    assert verdict(name, across_variants_layers({**alike, "mean": 0.85})) is False
    # the mean of 3 pairs against others of 4: no verdict, and the text says why
    text, held = FINDINGS[name].function(across_variants_layers(alike, {"mean": 1}))
    assert held is None and "mean 1 of 4" in text
    assert verdict(name, across_variants_layers(alike), measure="procrustes_distance") is None


def test_evaluate_writes_a_row_per_claim():
    rows = evaluate([dict(claim="tanh wins", check="separates_at_least_as_well",
                          params={"pairs": [["tanh", "relu"]]})],
                    {("latent", "silhouettes"): silhouettes({"tanh": [0.4], "relu": [0.6]})})
    assert rows == [dict(claim="tanh wins", held="no", measured="tanh 0.400 vs relu 0.600",
                         check="separates_at_least_as_well",
                         check_description=FINDINGS["separates_at_least_as_well"].description,
                         params='{"pairs": [["tanh", "relu"]]}')]


@pytest.mark.parametrize("finding,enabled,expected", [
    (dict(claim="c", check="lower_for_harder", params={"easy": ["a"]}), ["latent"],
     "takes the params easy, hard; got easy"),
    (dict(claim="c", check="rc_dips_at_bottleneck"), ["latent"],
     "reads the tables of analysis 'consistency', which the study does not enable"),
    (dict(claim="c", check="lower_for_harder", params={"easy": ["a"], "hard": ["b"], "x": 1}),
     ["latent"], "got easy, hard, x"),
])
def test_a_finding_that_cannot_be_checked_is_named_at_start_up(finding, enabled, expected):
    problems = check_finding(finding, enabled)
    assert len(problems) == 1 and expected in problems[0], problems
    assert "findings: 'c'" in problems[0]
