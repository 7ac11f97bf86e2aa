"""Claims of a paper as named checks on a study's result tables.

A study config lists the claims it reproduces under `findings:`, each a
check of FINDINGS with its parameters; `findings.csv` says per claim what
was measured and whether it held. A check is a function of the gathered
tables it names in `reads` ((analysis, table) pairs) and its parameters,
returning the numbers measured (text for people) and whether the claim held:
True, False, or None (undefined) with the reason in the text — never a
verdict on numbers that are not there.
"""

import inspect
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Check:
    """description: the claim it tests, for people; reads: the (analysis,
    table) pairs it takes, in order; function: (*tables, **params) ->
    (measured, held)."""

    description: str
    reads: tuple[tuple[str, str], ...]
    function: Callable[..., tuple[str, bool | None]]


def final(table, variants, epoch="final"):
    """The rows of `variants` (all where None) at checkpoint `epoch` (the final one;
    a number as written in YAML, 1, names checkpoint '1')."""
    rows = table[table["epoch"] == str(epoch)]
    return rows if variants is None else rows[rows["variant"].isin(variants)]


def absent_variants(table, variants, what="variant", file="consistency.csv"):
    """Text naming the `variants` (None: every one there) no row of `table`
    has, or ''. Mirrors lack a classifier, or a model whose encoder and
    decoder differ in depth."""
    missing = [v for v in variants or [] if v not in set(table["variant"])]
    return f"no {what} {', '.join(missing)} in {file}" if missing else ""


def rc_dips_at_bottleneck(consistency, variants: list | None = None, epoch: str = "final"):
    """At checkpoint `epoch` (the final one), per variant: the lowest RC of
    the bottleneck layers lies below the RC of the first encoder layer and of
    the output."""
    parts, verdicts = [], []
    rows_at = final(consistency, variants, epoch)
    if rows_at.empty:
        return f"no checkpoint {epoch!r} in consistency.csv (add it to checkpoints:)", None
    for variant, rows in rows_at.groupby("variant", sort=False):
        rows = rows.sort_values("layer_index")
        first = rows[rows["region"] == "encoder"].head(1)
        bottleneck = rows[rows["region"] == "bottleneck"]
        out = rows[rows["region"] == "output"].tail(1)
        if first.empty or bottleneck.empty or out.empty:
            parts.append(f"{variant}: no encoder, bottleneck or output layer")
            verdicts.append(None)
            continue
        low = bottleneck["rc"].min(skipna=False)
        values = (first["rc"].iloc[0], low, out["rc"].iloc[0])
        parts.append(f"{variant}: RC {first['layer'].iloc[0]} {values[0]:.3f}, bottleneck "
                     f"min {low:.3f}, {out['layer'].iloc[0]} {values[2]:.3f}")
        verdicts.append(None if any(map(math.isnan, values))
                        else bool(values[1] < values[0] and values[1] < values[2]))
    return "; ".join(parts), all_held(verdicts)


def rc_falls(consistency, variants: list | None = None, epoch: str = "0",
             tolerance: float = 0.0):
    """At checkpoint `epoch` (0: untrained; final: a classifier's, as Mehrer
    et al. found), per variant: RC falls from layer to layer, input to
    output (no rise above `tolerance`)."""
    rows = final(consistency, variants, epoch)
    if rows.empty:
        return f"no checkpoint {epoch!r} in consistency.csv (add it to checkpoints:)", None
    parts, verdicts = [], []
    for variant, layers in rows.groupby("variant", sort=False):
        rc = layers.sort_values("layer_index")["rc"].to_numpy()
        rises = np.diff(rc)
        parts.append(f"{variant}: RC " + " → ".join(f"{v:.2f}" for v in rc))
        verdicts.append(None if np.isnan(rc).any() else bool((rises <= tolerance).all()))
    return "; ".join(parts), all_held(verdicts)


def rc_rises_with_epochs(consistency, variants: list | None = None, tolerance: float = 0.02):
    """Per variant, over its numbered checkpoints after 0: the mean RC over
    its layers rises from the first to the last, and the last two differ by
    at most `tolerance` (it converges; Durbha et al., Fig. 3a)."""
    rows = consistency if variants is None else consistency[consistency["variant"].isin(variants)]
    parts, verdicts = [], []
    for variant, trained in rows.groupby("variant", sort=False):
        numbered = trained[~trained["epoch"].isin(["final", "0"])]
        # a checkpoint with an undefined layer has no mean: NaN, not the mean of the rest
        means = numbered.groupby(numbered["epoch"].astype(int))["rc"].agg(
            lambda rc: rc.mean(skipna=False)).sort_index()
        if len(means) < 2:
            parts.append(f"{variant}: fewer than 2 checkpoints after 0 (checkpoints:)")
            verdicts.append(None)
            continue
        parts.append(f"{variant}: mean RC " + ", ".join(f"epoch {e} {v:.3f}"
                                                        for e, v in means.items()))
        verdicts.append(None if means.isna().any() else
                        bool(means.iloc[-1] > means.iloc[0]
                             and abs(means.iloc[-1] - means.iloc[-2]) <= tolerance))
    return "; ".join(parts), all_held(verdicts)


def bottleneck_minimum(rows):
    """The lowest RC of a variant's bottleneck layers (NaN if any is undefined)."""
    return rows.loc[rows["region"] == "bottleneck", "rc"].min(skipna=False)


def rc_rises_with_latent(consistency, variants: list):
    """At the final checkpoint: the lowest RC of the bottleneck layers rises
    from variant to variant of `variants`, given in the order of their latent
    sizes (Durbha et al., Fig. 3b)."""
    rows = final(consistency, variants)
    missing = absent_variants(rows, variants)
    if missing:
        return missing, None
    lows = [bottleneck_minimum(rows[rows["variant"] == v]) for v in variants]
    measured = "bottleneck RC " + " → ".join(f"{v} {low:.3f}" for v, low in zip(variants, lows))
    if np.isnan(lows).any():
        return measured, None
    return measured, bool((np.diff(lows) > 0).all())


def mean_rc(rows, region):
    """A variant's mean RC over its layers of `region` (all where None); NaN if any is undefined."""
    if region is not None:
        rows = rows[rows["region"] == region]
    return rows["rc"].mean(skipna=False)


def more_consistent(consistency, variant: str, than: list, region: str | None = None):
    """At the final checkpoint: `variant`'s mean RC over its layers (of
    `region`, e.g. bottleneck; all where None) lies above that of each of
    `than` (Durbha et al.: 3 bottleneck layers above 5 and 7, Fig. 4; the
    network without repeated layers above those with, Fig. 6)."""
    rows = final(consistency, [variant, *than])
    missing = absent_variants(rows, [variant, *than])
    if missing:
        return missing, None
    means = {v: mean_rc(rows[rows["variant"] == v], region) for v in [variant, *than]}
    measured = (f"mean RC over {region or 'all'} layers: "
                + ", ".join(f"{v} {m:.3f}" for v, m in means.items()))
    if any(math.isnan(m) for m in means.values()):
        return measured, None
    return measured, all(means[variant] > means[v] for v in than)


def equally_consistent(consistency, variants: list, region: str | None = None,
                       tolerance: float = 0.05):
    """At the final checkpoint: the mean RC over the layers (of `region`; all
    where None) of `variants` lies within `tolerance` of each other (Durbha
    et al., Fig. 4: 5 and 7 bottleneck layers alike)."""
    rows = final(consistency, variants)
    missing = absent_variants(rows, variants)
    if missing:
        return missing, None
    means = [mean_rc(rows[rows["variant"] == v], region) for v in variants]
    spread = np.nanmax(means) - np.nanmin(means) if not np.isnan(means).any() else math.nan
    measured = (f"mean RC over {region or 'all'} layers: "
                + ", ".join(f"{v} {m:.3f}" for v, m in zip(variants, means))
                + f"; range {spread:.3f}")
    return measured, None if math.isnan(spread) else bool(spread <= tolerance)


def dip_in_middle_bottleneck(consistency, variants: list):
    """At the final checkpoint, per variant of several bottleneck layers: the
    lowest RC of them lies at the middle one (either middle one of an even
    number; Durbha et al., Fig. 4)."""
    parts, verdicts = [], []
    for variant, rows in final(consistency, variants).groupby("variant", sort=False):
        inner = rows[rows["region"] == "bottleneck"].sort_values("layer_index")
        k = len(inner)
        if k < 3 or inner["rc"].isna().any():
            parts.append(f"{variant}: {k} bottleneck layers" + (", some undefined" if k >= 3 else
                                                                " (need 3 or more)"))
            verdicts.append(None)
            continue
        lowest = int(np.argmin(inner["rc"].to_numpy()))
        middle = {(k - 1) // 2, k // 2}
        parts.append(f"{variant}: lowest RC {inner['rc'].iloc[lowest]:.3f} at "
                     f"{inner['layer'].iloc[lowest]} (layer {lowest + 1} of {k})")
        verdicts.append(lowest in middle)
    missing = absent_variants(consistency, variants)
    if missing:
        parts.append(missing)
        verdicts.append(None)
    return "; ".join(parts), all_held(verdicts)


def mirrors_v_shape(mirrors, variants: list | None = None):
    """At the final checkpoint, per variant: the mean distance over seeds
    between an encoder layer and its mirror in the decoder rises at every
    step out from the bottleneck (Durbha et al., Fig. 8: a V, the last
    encoder and the first decoder layer nearest); also says in how many
    seeds alone it rises."""
    missing = absent_variants(mirrors, variants, "mirrored layers of", "mirrors.csv")
    parts, verdicts = ([missing], [None]) if missing else ([], [])
    for variant, rows in final(mirrors, variants).groupby("variant", sort=False):
        means = rows.groupby("step")["mirror_distance"].agg(lambda d: d.mean(skipna=False))
        each = rows.pivot(index="seed", columns="step", values="mirror_distance")
        rising = int((each.diff(axis=1).iloc[:, 1:] > 0).all(axis=1).sum())
        parts.append(f"{variant}: mean mirror distance " + " → ".join(
            f"{rows.loc[rows['step'] == step, 'encoder'].iloc[0]}/"
            f"{rows.loc[rows['step'] == step, 'decoder'].iloc[0]} {value:.3f}"
            for step, value in means.items()) + f" (rising in {rising} of {len(each)} seeds)")
        verdicts.append(None if means.isna().any() or len(means) < 2
                        else bool((np.diff(means.to_numpy()) > 0).all()))
    return "; ".join(parts), all_held(verdicts)


def neighbours_closer_than_mirrors(mirrors, variants: list | None = None):
    """At the final checkpoint, per variant: every encoder layer and its
    mirror lie closer, in the mean over seeds, to their neighbours towards the
    bottleneck than to each other (Durbha et al.: mirrored layers are not
    alike, neighbours are)."""
    missing = absent_variants(mirrors, variants, "mirrored layers of", "mirrors.csv")
    parts, verdicts = ([missing], [None]) if missing else ([], [])
    for variant, rows in final(mirrors, variants).groupby("variant", sort=False):
        means = rows.groupby("step")[["mirror_distance", "encoder_next", "decoder_previous"]].agg(
            lambda d: d.mean(skipna=False))
        nearer = means["mirror_distance"] > means[["encoder_next", "decoder_previous"]].max(axis=1)
        farther = [f"{rows.loc[rows['step'] == step, 'encoder'].iloc[0]}" for step in
                   means.index[~nearer & means.notna().all(axis=1)]]
        parts.append(f"{variant}: neighbours nearer than the mirror at {int(nearer.sum())} of "
                     f"{len(means)} pairs" + (f" (not from {', '.join(farther)})" if farther else ""))
        verdicts.append(None if means.isna().any().any() else not farther)
    return "; ".join(parts), all_held(verdicts)


def next_layer_closer(clusters, variants: list | None = None):
    """At the final checkpoint, per variant: every layer but the first
    (input) and the last (output) lies closer to the next layer than its
    own seeds lie to each other (Durbha et al., Fig. 2b): next_distance
    below cluster_spread."""
    parts, verdicts = [], []
    for variant, rows in final(clusters, variants).groupby("variant", sort=False):
        inner = rows.sort_values("layer_index").iloc[1:-1]
        closer = inner["next_distance"] < inner["cluster_spread"]
        undefined = inner[["next_distance", "cluster_spread"]].isna().any(axis=1)
        farther = list(inner.loc[~closer & ~undefined, "layer"])
        parts.append(f"{variant}: next layer closer at {int(closer.sum())} of {len(inner)} layers"
                     + (f" (not at {', '.join(farther)})" if farther else "")
                     + (f", {int(undefined.sum())} undefined" if undefined.any() else ""))
        verdicts.append(False if farther else None if undefined.any() else True)
    return "; ".join(parts), all_held(verdicts)


def rc_converged(instances, at: int = 20, tolerance: float = 0.02):
    """Per variant: RC has converged at `at` instances: at every layer the
    mean RC over subsets of `at` seeds lies within `tolerance` of that of
    the largest subsets."""
    parts, verdicts = [], []
    for variant, rows in instances.groupby("variant", sort=False):
        means = rows.groupby(["instances", "layer_index"])["rc"].mean(numeric_only=True)
        largest = rows["instances"].max()
        if at not in set(rows["instances"]):
            parts.append(f"{variant}: no subsets of {at} instances (analyses.instances.sizes)")
            verdicts.append(None)
            continue
        gap = (means.loc[at] - means.loc[largest]).abs()
        parts.append(f"{variant}: largest |RC({at}) - RC({largest})| over layers {gap.max():.3f}"
                     + (f" ({int(gap.isna().sum())} layers undefined)" if gap.isna().any() else ""))
        verdicts.append(False if (gap > tolerance).any() else None if gap.isna().any()
                        else True)
    return "; ".join(parts), all_held(verdicts)


def baseline_within_autoencoders(silhouettes, baselines, variants: list, baseline: str = "pca"):
    """Per data setting some of `variants` trained on: the baseline's
    silhouette lies within the range of the final silhouettes of those
    autoencoders (every seed)."""
    parts, verdicts = [], []
    for data, own in baselines[baselines["baseline"] == baseline].groupby("data", sort=False):
        trained = [v for v in variants if v in set(own["variant"])]
        if not trained:  # a data setting none of `variants` trained on
            continue
        scores = final(silhouettes, trained)["silhouette"]
        value = own["silhouette"].iloc[0]
        if scores.empty or scores.isna().all() or math.isnan(value):
            parts.append(f"{data}: undefined (no defined silhouettes)")
            verdicts.append(None)
            continue
        low, high = scores.min(), scores.max()
        parts.append(f"{data}: {baseline} {value:.3f}, autoencoders {low:.3f} to {high:.3f}")
        verdicts.append(bool(low <= value <= high))
    return "; ".join(parts), all_held(verdicts)


def separates_at_least_as_well(silhouettes, pairs: list, tolerance: float = 0.0):
    """For each [a, b] of `pairs`: variant a's mean final silhouette over
    seeds is at least b's (less `tolerance`); seeds whose silhouette is
    undefined are left out of the means and counted in the text."""
    parts, verdicts = [], []
    for a, b in pairs:
        mean_a, mean_b = (final(silhouettes, [v])["silhouette"].mean() for v in (a, b))
        parts.append(f"{a} {mean_a:.3f}{undefined_seeds(silhouettes, a)} vs {b} "
                     f"{mean_b:.3f}{undefined_seeds(silhouettes, b)}")
        verdicts.append(None if math.isnan(mean_a) or math.isnan(mean_b)
                        else bool(mean_a >= mean_b - tolerance))
    return "; ".join(parts), all_held(verdicts)


def no_gain_beyond_seeds(silhouettes, pairs: list, alpha: float = 0.05):
    """For each [a, b] of `pairs`: variant a's final silhouettes are not
    higher than b's beyond seed-to-seed variability (one-sided Mann-Whitney
    U test of a > b over seeds, scipy.stats, not significant at `alpha`)."""
    from scipy.stats import mannwhitneyu  # here: the Snakefile imports this module at start-up

    parts, verdicts = [], []
    for a, b in pairs:
        x, y = (final(silhouettes, [v])["silhouette"].dropna().to_numpy() for v in (a, b))
        if len(x) < 2 or len(y) < 2:
            parts.append(f"{a} vs {b}: fewer than 2 defined seeds each")
            verdicts.append(None)
            continue
        p = mannwhitneyu(x, y, alternative="greater").pvalue
        parts.append(f"{a} {x.mean():.3f}±{x.std(ddof=1):.3f} vs {b} {y.mean():.3f}±"
                     f"{y.std(ddof=1):.3f} (n {len(x)}, {len(y)}; one-sided p {p:.3g})")
        verdicts.append(bool(p >= alpha))
    return "; ".join(parts), all_held(verdicts)


def scores_vary_less_than_layouts(spread, variants: list | None = None):
    """Per variant at the final checkpoint: the seeds' silhouettes vary less,
    as a share of their range (sd / 2 of [-1, 1]), than their layouts do
    (mean Procrustes angle between seeds' codes / (pi/2), its range)."""
    parts, verdicts = [], []
    for _, row in final(spread, variants).iterrows():
        scores, layouts = row["sd"] / 2, row["procrustes_mean"] / (math.pi / 2)
        parts.append(f"{row['variant']}: silhouette sd {row['sd']:.3f} ({scores:.1%} of its "
                     f"range), layouts {row['procrustes_mean']:.3f} rad ({layouts:.1%})")
        verdicts.append(None if math.isnan(scores) or math.isnan(layouts)
                        else bool(scores < layouts))
    return "; ".join(parts), all_held(verdicts)


def lower_for_harder(silhouettes, easy: list, hard: list):
    """The mean final silhouette of every variant of `easy` (e.g. an easy class
    pair) exceeds that of every variant of `hard`."""
    means = {v: final(silhouettes, [v])["silhouette"].mean() for v in [*easy, *hard]}
    measured = ", ".join(f"{v} {m:.3f}" for v, m in means.items())
    if any(math.isnan(m) for m in means.values()):
        return measured, None
    return measured, bool(min(means[v] for v in easy) > max(means[v] for v in hard))


def encoder_learned_first(dynamics, measure: str = "linear_cka", epoch: str | None = None,
                          variants: list | None = None):
    """At checkpoint `epoch` (None: the first after 0), per variant: the
    encoder's layers are already nearer their final state than the
    decoder's (the mean over seeds and layers of `measure` to the final
    checkpoint is higher for the encoder region than for the decoder's)."""
    rows = dynamics[(dynamics["measure"] == measure) & (dynamics["epoch_b"] == "final")]
    if variants is not None:
        rows = rows[rows["variant"].isin(variants)]
    if rows.empty:
        return (f"no {measure} to the final checkpoint in dynamics.csv "
                "(analyses.dynamics.measures)"), None
    if epoch is None:
        later = [e for e in dict.fromkeys(rows["epoch_a"]) if e not in ("0", "final")]
        if not later:
            return "no checkpoint after 0 before the final one (add one to checkpoints:)", None
        epoch = min(later, key=int)
    epoch = str(epoch)  # a label, as written in the tables
    rows = rows[rows["epoch_a"] == epoch]
    if rows.empty:
        return f"no checkpoint {epoch!r} in dynamics.csv (add it to checkpoints:)", None
    parts, verdicts = [], []
    for variant, own in rows.groupby("variant", sort=False):
        means = {region: own.loc[own["region"] == region, "value"].mean(skipna=False)
                 for region in ("encoder", "decoder")}
        parts.append(f"{variant}: encoder {means['encoder']:.3f}, decoder {means['decoder']:.3f}")
        verdicts.append(None if any(map(math.isnan, means.values()))
                        else bool(means["encoder"] > means["decoder"]))
    measured = f"{measure} to the final checkpoint at epoch {epoch}: " + "; ".join(parts)
    return measured, all_held(verdicts)


def cka_tracks_collapse(collapse, alpha: float = 0.05, variants: list | None = None):
    """Over every seed and checkpoint of `variants` (all where None): the
    linear CKA between the mean and the sampled code rises with the active
    units (Spearman's rho > 0, one-sided p < alpha, scipy.stats), so that a
    falling CKA signals collapse. Rows whose CKA is undefined are left out."""
    from scipy.stats import spearmanr

    chosen = collapse if variants is None else collapse[collapse["variant"].isin(variants)]
    rows = chosen.dropna(subset=["cka_mean_sampled"])
    left_out = len(chosen) - len(rows)
    if len(rows) < 3 or rows["active_units"].nunique() < 2:
        return (f"{len(rows)} seeds x checkpoints with a CKA, active units "
                f"{sorted(rows['active_units'].unique())}: too few, or no spread in the active "
                "units, to rank"), None
    rho, p = spearmanr(rows["active_units"], rows["cka_mean_sampled"], alternative="greater")
    measured = (f"Spearman rho {rho:.3f} (one-sided p {p:.2g}) between active units "
                f"({rows['active_units'].min()}–{rows['active_units'].max()}) and CKA(mean, "
                f"sampled) ({rows['cka_mean_sampled'].min():.3f}–"
                f"{rows['cka_mean_sampled'].max():.3f}) over {len(rows)} seeds x checkpoints"
                + (f"; {left_out} undefined left out" if left_out else ""))
    return measured, None if math.isnan(rho) else bool(rho > 0 and p < alpha)


def encoder_alike_across_variants(layers, measure: str = "linear_cka",
                                  pairing: str = "same seed"):
    """Per group of variants on the same probe images: every encoder layer is
    more alike across variants than each of the mean, log-variance and
    sampled layers (the mean of `measure` over the `pairing` pairs of the
    layer against itself, across_variants/layers.csv). A layer undefined in
    some pairs has no verdict: its mean would be of fewer pairs than the
    others'. A distance (procrustes_distance) would turn the claim around."""
    if measure == "procrustes_distance":
        return "procrustes_distance is a distance: ask a similarity measure", None
    rows = layers[(layers["measure"] == measure) & (layers["pairing"] == pairing)]
    if rows.empty:
        return (f"no {measure} pairs of kind {pairing!r} in across_variants/layers.csv "
                "(analyses.across_variants.measures; two variants on the same data)"), None
    parts, verdicts = [], []
    for probes, own in rows.groupby("probes", sort=False):
        encoder = own[own["role"] == "encoder"]
        heads = own[own["role"].isin(["mean", "logvar", "sampled"])]
        if encoder.empty or heads.empty:
            parts.append(f"{probes}: no encoder layer or no mean/logvar/sampled layer")
            verdicts.append(None)
            continue
        values = ", ".join(f"{r.layer} {r.mean:.3f}" for r in heads.itertuples())
        partial = own[own.index.isin([*encoder.index, *heads.index]) & (own["undefined"] > 0)]
        if len(partial) or encoder["mean"].isna().any() or heads["mean"].isna().any():
            parts.append(f"{probes}: undefined in some pairs: "
                         + ", ".join(f"{r.layer} {r.undefined} of {r.pairs + r.undefined}"
                                     for r in partial.itertuples()) + f" (encoder "
                         f"{', '.join(f'{r.layer} {r.mean:.3f}' for r in encoder.itertuples())}; "
                         f"{values})")
            verdicts.append(None)
            continue
        low = encoder.loc[encoder["mean"].idxmin()]
        parts.append(f"{probes}: encoder min {low['layer']} {low['mean']:.3f} "
                     f"(max {encoder['mean'].max():.3f}); {values}")
        verdicts.append(bool(low["mean"] > heads["mean"].max()))
    return f"{measure}, {pairing}: " + "; ".join(parts), all_held(verdicts)


AREAS = ["S", "M", "L"]


def runs_at(runs, key, level):
    """The rows of losses/runs.csv whose grid setting `key` is `level`."""
    return runs[runs[key] == level]


def absent_levels(runs, key, levels, table="losses/runs.csv (analyses.losses.grid)"):
    """Text naming the levels of `key` no row of `table` has, or '' where all are there."""
    if key not in runs.columns:
        return f"no grid setting {key!r} in {table}"
    absent = [level for level in levels if runs_at(runs, key, level).empty]
    return f"no runs at {key} {', '.join(map(str, absent))}" if absent else ""


def falls(values, strictly):
    """Whether `values` fall along their order: at every step (`strictly`), or
    never rising and lower at the end than at the start."""
    steps = list(zip(values, values[1:]))
    if strictly:
        return all(bool(a > b) for a, b in steps)
    return all(bool(a >= b) for a, b in steps) and bool(values[0] > values[-1])


def area_lowers_test_error(runs, key: str = "area", order: list = AREAS, alpha: float = 0.05,
                           within: str = ""):
    """Manakov et al.: the mean minimum test loss falls from level to level
    of grid setting `key` along `order` (small to large area), and a
    two-sided rank-sum test (Mann-Whitney U, scipy.stats) between the first
    and the last level is significant at `alpha`. With `within` (another
    grid setting, e.g. train_size), the means fall at each of its levels
    (sorted), the test pooling them all: a few seeds per level cannot reach
    significance alone (2 against 2 runs: p >= 1/3)."""
    from scipy.stats import mannwhitneyu

    absent = absent_levels(runs, key, order) or (within and absent_levels(runs, within, []))
    if absent:
        return absent, None
    if runs["min_test_loss"].isna().any():
        return "some runs have no minimum test loss (losses/runs.csv, undefined)", None
    groups = runs.groupby(within, dropna=False) if within else [(None, runs)]  # levels sorted
    parts, verdicts = [], []
    for level, rows in groups:
        absent = absent_levels(rows, key, order)
        if absent:
            return f"{absent} at {within} {level}", None
        values = [runs_at(rows, key, a)["min_test_loss"] for a in order]
        parts.append((f"{within} {level}: " if within else "") + "minimum test loss " + "; ".join(
            f"{key} {a}: {v.mean():.4g} ± {v.std():.2g} (n {len(v)})"
            for a, v in zip(order, values)))
        verdicts.append(falls([v.mean() for v in values], strictly=True))
    first, last = (runs_at(runs, key, a)["min_test_loss"] for a in (order[0], order[-1]))
    p = mannwhitneyu(first, last, alternative="two-sided").pvalue
    return (" | ".join(parts) + f"; {order[0]} vs {order[-1]} rank-sum p {p:.3g}"
            + (" (pooled)" if within else ""), all_held(verdicts) and bool(p < alpha))


def area_matters_more(runs, first: str = "area", second: str = "compression"):
    """Manakov et al.: the minimum test loss depends more on grid setting
    `first` (area) than on `second` (channels): the range of its means over
    the levels of `first` exceeds the range over the levels of `second`."""
    absent = absent_levels(runs, first, []) or absent_levels(runs, second, [])
    if absent:
        return absent, None
    if runs["min_test_loss"].isna().any():
        return "some runs have no minimum test loss (losses/runs.csv, undefined)", None
    spans, parts = [], []
    for key in (first, second):
        means = runs.groupby(key)["min_test_loss"].mean()
        spans.append(means.max() - means.min())
        parts.append(f"over {key} {means.min():.4g} to {means.max():.4g} (range {spans[-1]:.3g})")
    return "mean minimum test loss " + "; ".join(parts), bool(spans[0] > spans[1])


def area_speeds_training(runs, key: str = "area", order: list = AREAS):
    """Manakov et al.: a larger area trains faster: the median first epoch
    whose training loss is under the threshold (analyses.losses.threshold)
    does not rise from level to level of `key` along `order` and is lower at
    the last than at the first. A run that never got under it counts as
    later than every epoch (a level whose median run never did has an
    infinite median); where that is so of every level, there is no verdict."""
    absent = absent_levels(runs, key, order)
    if absent:
        return absent, None
    medians, parts = [], []
    for level in order:
        epochs = runs_at(runs, key, level)["first_below"]
        medians.append(epochs.fillna(np.inf).median())
        never = int(epochs.isna().sum())
        parts.append(f"{key} {level}: median epoch {medians[-1]:g}"
                     + (f" ({never} of {len(epochs)} runs never)" if never else ""))
    if all(np.isinf(medians)):
        return "; ".join(parts) + ": no level's median run trains under the threshold", None
    return "; ".join(parts), falls(medians, strictly=False)


def complete_not_a_copy(runs, key: str = "compression", complete: float = 1.0,
                        tolerance: float = 1e-4):
    """Manakov et al.: a complete CAE (as many bottleneck values as input
    values: `key` equal to `complete`) does not learn to copy: every run's
    minimum test loss (MSE per value) stays above `tolerance` (1e-4, an RMS
    error of 1 % of the pixel range), where a copy would be near 0."""
    if absent_levels(runs, key, []):
        return absent_levels(runs, key, []), None
    rows = runs[np.isclose(runs[key].astype(float), complete)]
    if rows.empty:
        return f"no runs with {key} {complete:g}: add a complete variant", None
    if rows["min_test_loss"].isna().any():
        return "some complete runs have no minimum test loss (losses/runs.csv)", None
    parts = [f"{variant} {v.mean():.4g} (min {v.min():.4g})"
             for variant, v in rows.groupby("variant", sort=False)["min_test_loss"]]
    return (f"minimum test loss of the complete CAEs, against {tolerance:g}: " + "; ".join(parts),
            bool((rows["min_test_loss"] > tolerance).all()))


def small_area_detects_outliers(outliers, key: str = "area", order: list = AREAS):
    """Manakov et al.: a smaller bottleneck area detects outliers better: the
    mean AUROC (outliers/outliers.csv) does not rise from level to level of
    `key` along `order` (small to large area) and is higher at the first than
    at the last. Seeds without a model are left out and counted."""
    absent = absent_levels(outliers, key, order, "outliers/outliers.csv (analyses.outliers.grid)")
    if absent:
        return absent, None
    means, parts = [], []
    for level in order:
        auroc = runs_at(outliers, key, level)["auroc"]
        means.append(auroc.mean())
        undefined = int(auroc.isna().sum())
        parts.append(f"{key} {level}: AUROC {auroc.mean():.3f} ± {auroc.std():.2g}"
                     + (f" ({undefined} seeds undefined)" if undefined else ""))
    if any(np.isnan(means)):
        return "; ".join(parts), None
    return "; ".join(parts), falls(means, strictly=False)


def codes_beat_pixels(probes, images: str = "unseen"):
    """Manakov et al.: linear probes read more of the labels off the codes
    than off the raw pixels: per variant, the mean score of its seeds' codes
    on the `images` (seen or unseen) exceeds the pixels' (probes/probes.csv;
    macro-F1 or AUROC, over probe seeds and targets)."""
    rows = probes[probes["images"] == images]
    if rows.empty:
        return f"no probes of {images} images in probes/probes.csv", None
    parts, verdicts = [], []
    for variant, own in rows.groupby("variant", sort=False):
        code = own.loc[own["features"] == "code", "value"]
        pixels = own.loc[own["features"] == "pixels", "value"].mean()
        parts.append(f"{variant} {code.mean():.3f} vs pixels {pixels:.3f}")
        verdicts.append(None if code.isna().any() or np.isnan(pixels)
                        else bool(code.mean() > pixels))
    metric = rows["metric"].iloc[0]
    return f"{metric} on {images} images: " + "; ".join(parts), all_held(verdicts)


def undefined_seeds(silhouettes, variant):
    """' (k of n seeds undefined)' where some seeds' final silhouettes are NaN
    (left out of the means: a dead code separates nothing, but scores no 0)."""
    scores = final(silhouettes, [variant])["silhouette"]
    k = int(scores.isna().sum())
    return f" ({k} of {len(scores)} seeds undefined)" if k else ""


def inverted_layers(inversion, networks=None):
    """Per network, state and layer (in order) of analyses/inversion: the
    means over seeds and images of m_g, m_r and m_i after the last step, of
    m_i at the start (`m_i0`), and `relative`, m_i / m_i0: how much of the
    start's distance to the target is left (0: an exact copy)."""
    rows = inversion if networks is None else inversion[inversion["network"].isin(networks)]
    last = rows.groupby("network")["iteration"].transform("max")
    keys = ["network", "state", "layer_index", "layer", "values", "input_values"]
    end = rows[rows["iteration"] == last].groupby(keys, sort=False)[["m_g", "m_r", "m_i"]].mean()
    start = rows[rows["iteration"] == 0].groupby(keys, sort=False)["m_i"].mean()
    table = end.assign(m_i0=start, relative=end["m_i"] / start).reset_index()
    return table.sort_values(["network", "state", "layer_index"], kind="stable")


def absent(table, networks, what="analyses.inversion.networks"):
    """Text naming the `networks` the table lacks, or ''."""
    missing = [n for n in networks if n not in set(table["network"])]
    return f"no network {', '.join(missing)} in inversion.csv ({what})" if missing else ""


def first_layers(layers):
    """Of inverted_layers, each network's first layer (the lowest layer_index), per state."""
    first = layers.groupby("network")["layer_index"].transform("min")
    return layers[layers["layer_index"] == first]


def early_layers_copy(inversion, networks: list | None = None, below: float = 0.25):
    """Per network and state: the first layer inverted gives a near copy, its
    final m_i under `below` of the start's distance to the target."""
    if networks is not None and absent(inversion, networks):
        return absent(inversion, networks), None
    layers = inverted_layers(inversion, networks)
    parts, verdicts = [], []
    for (network, state), rows in layers.groupby(["network", "state"], sort=False):
        first = rows.iloc[0]
        parts.append(f"{network} {state} {first['layer']}: m_i {first['m_i']:.3g} of "
                     f"{first['m_i0']:.3g} ({first['relative']:.2f})")
        verdicts.append(None if np.isnan(first["relative"]) else bool(first["relative"] < below))
    return "; ".join(parts) or "no inversions", all_held(verdicts)


def deep_layers_not_unique(inversion, networks: list | None = None, above: float = 0.5):
    """Per network and state: at the deepest layer inverted the candidate's
    activation comes closer to the target's than a noised copy's (m_g < m_r)
    while the candidate stays far from the target (m_i over `above` of the
    start's distance)."""
    if networks is not None and absent(inversion, networks):
        return absent(inversion, networks), None
    layers = inverted_layers(inversion, networks)
    parts, verdicts = [], []
    for (network, state), rows in layers.groupby(["network", "state"], sort=False):
        deep = rows.iloc[-1]
        values = (deep["m_g"], deep["m_r"], deep["relative"])
        parts.append(f"{network} {state} {deep['layer']}: m_g {values[0]:.3g} vs m_r "
                     f"{values[1]:.3g}, m_i {values[2]:.2f} of the start's")
        verdicts.append(None if any(map(math.isnan, values))
                        else bool(values[0] < values[1] and values[2] > above))
    return "; ".join(parts) or "no inversions", all_held(verdicts)


def deeper_networks_worse(inversion, networks: list = ("resnet18", "resnet50", "resnet152"),
                          layer: str = "layer4", state: str = "untrained"):
    """The same stage `layer` is represented worse in deeper networks: its
    final m_i (relative to the start's) rises along `networks`, shallow to deep."""
    networks = list(networks)
    layers = inverted_layers(inversion, networks)
    rows = layers[(layers["layer"] == layer) & (layers["state"] == state)].set_index("network")
    missing = absent(rows.reset_index(), networks, f"{layer}, {state}")
    if missing:
        return missing, None
    relative = [rows.loc[n, "relative"] for n in networks]
    text = f"{layer} {state}: m_i " + " → ".join(
        f"{n} {rows.loc[n, 'm_i']:.3g} ({r:.2f})" for n, r in zip(networks, relative))
    return text, None if np.isnan(relative).any() else bool(np.all(np.diff(relative) > 0))


def pooling_loses_the_input(inversion, network: str = "resnet50", before: str = "conv1",
                            after: str = "maxpool", below: float = 0.25):
    """Per state of `network`: layer `before` (conv1, more values than the
    input) inverts to a near copy (final m_i under `below` of the start's),
    layer `after` (after max pooling) does not."""
    layers = inverted_layers(inversion, [network])
    parts, verdicts = [], []
    for state, rows in layers.groupby("state", sort=False):
        rows = rows.set_index("layer")
        if before not in rows.index or after not in rows.index:
            parts.append(f"{network} {state}: no layer {before} or {after} inverted")
            verdicts.append(None)
            continue
        b, a = rows.loc[before, "relative"], rows.loc[after, "relative"]
        parts.append(f"{network} {state}: m_i {before} {b:.2f}, {after} {a:.2f} of the start's")
        verdicts.append(None if np.isnan([a, b]).any() else bool(b < below <= a))
    return "; ".join(parts) or absent(inversion, [network]), all_held(verdicts)


def width_inverts(inversion, activation: str = "relu", factor: float = 2.0, below: float = 0.25):
    """Of the MLPs with `activation`: those whose first layer has at least
    `factor` times the input's values invert it (final m_i under `below` of
    the start's), the narrower ones do not."""
    mlps = inversion[(inversion["architecture"] == "mlp")
                     & (inversion["activation"] == activation)]
    layers = first_layers(inverted_layers(mlps))
    if layers.empty:
        return f"no MLP with activation {activation} in inversion.csv", None
    parts, verdicts = [], []
    for row in layers.sort_values("values").itertuples():
        wide = row.values >= factor * row.input_values
        parts.append(f"{row.network} ({row.values}/{row.input_values} = "
                     f"{row.values / row.input_values:.2f}x): m_i {row.relative:.2f} "
                     "of the start's")
        verdicts.append(None if np.isnan(row.relative) else bool((row.relative < below) == wide))
    return "; ".join(parts), all_held(verdicts)


def all_held(verdicts):
    """True if every verdict held, False if any failed, None if none failed
    but some are undefined."""
    if False in verdicts:
        return False
    return None if None in verdicts or not verdicts else True


FINDINGS = {
    "rc_dips_at_bottleneck": Check(
        "RC dips toward the bottleneck and rises toward the output",
        (("consistency", "consistency"),), rc_dips_at_bottleneck),
    "rc_falls": Check(
        "RC keeps falling from input to output (untrained, or a classifier's)",
        (("consistency", "consistency"),), rc_falls),
    "rc_rises_with_epochs": Check(
        "RC rises with training and converges", (("consistency", "consistency"),),
        rc_rises_with_epochs),
    "rc_rises_with_latent": Check(
        "the bottleneck's RC rises with its size", (("consistency", "consistency"),),
        rc_rises_with_latent),
    "more_consistent": Check(
        "one variant is more consistent than others", (("consistency", "consistency"),),
        more_consistent),
    "equally_consistent": Check(
        "variants are about equally consistent", (("consistency", "consistency"),),
        equally_consistent),
    "dip_in_middle_bottleneck": Check(
        "of several bottleneck layers, the middle one is the least consistent",
        (("consistency", "consistency"),), dip_in_middle_bottleneck),
    "mirrors_v_shape": Check(
        "mirrored layers lie farther apart the farther they are from the bottleneck",
        (("consistency", "mirrors"),), mirrors_v_shape),
    "neighbours_closer_than_mirrors": Check(
        "layers are nearer their neighbours than their mirrored layers",
        (("consistency", "mirrors"),), neighbours_closer_than_mirrors),
    "next_layer_closer": Check(
        "except for the first and last layers, each layer is closer to the next layer than "
        "its own instances are to each other", (("consistency", "clusters"),), next_layer_closer),
    "rc_converged": Check(
        "RC has converged at a number of instances: more seeds change it no further",
        (("instances", "instances"),), rc_converged),
    "baseline_within_autoencoders": Check(
        "the baseline's silhouette lies within the range of the autoencoders'",
        (("latent", "silhouettes"), ("latent", "baselines")), baseline_within_autoencoders),
    "separates_at_least_as_well": Check(
        "the first variant of each pair separates the classes at least as well as the second",
        (("latent", "silhouettes"),), separates_at_least_as_well),
    "no_gain_beyond_seeds": Check(
        "the first variant of each pair gains nothing over the second beyond seed-to-seed "
        "variability", (("latent", "silhouettes"),), no_gain_beyond_seeds),
    "scores_vary_less_than_layouts": Check(
        "silhouettes vary across seeds much less than the layouts do",
        (("latent", "spread"),), scores_vary_less_than_layouts),
    "lower_for_harder": Check(
        "harder class pairs score lower than easy ones",
        (("latent", "silhouettes"),), lower_for_harder),
    "encoder_learned_first": Check(
        "encoders are learned before decoders",
        (("dynamics", "dynamics"),), encoder_learned_first),
    "cka_tracks_collapse": Check(
        "linear CKA between the mean and the sampled code tracks posterior collapse",
        (("collapse", "collapse"),), cka_tracks_collapse),
    "encoder_alike_across_variants": Check(
        "encoder layers are more alike across objectives and strengths than the mean, "
        "log-variance and sampled layers",
        (("across_variants", "layers"),), encoder_alike_across_variants),
    "area_lowers_test_error": Check(
        "a larger bottleneck area gives a lower minimum test loss",
        (("losses", "runs"),), area_lowers_test_error),
    "area_matters_more": Check(
        "the bottleneck's area changes the test loss more than its channels do",
        (("losses", "runs"),), area_matters_more),
    "area_speeds_training": Check(
        "a larger bottleneck area trains under the loss threshold sooner",
        (("losses", "runs"),), area_speeds_training),
    "complete_not_a_copy": Check(
        "a complete CAE does not copy its input: its test loss stays above zero",
        (("losses", "runs"),), complete_not_a_copy),
    "codes_beat_pixels": Check(
        "linear probes read the labels better off the codes than off the raw pixels",
        (("probes", "probes"),), codes_beat_pixels),
    "small_area_detects_outliers": Check(
        "a smaller bottleneck area detects outliers better by reconstruction error",
        (("outliers", "outliers"),), small_area_detects_outliers),
    "early_layers_copy": Check(
        "inverting an early layer gives a near copy of the input",
        (("inversion", "inversion"),), early_layers_copy),
    "deep_layers_not_unique": Check(
        "a deep layer maps a far-away input as close to the target's activation as a noised "
        "copy: non-uniqueness, not failed optimisation",
        (("inversion", "inversion"),), deep_layers_not_unique),
    "deeper_networks_worse": Check(
        "the same stage is represented worse in deeper networks",
        (("inversion", "inversion"),), deeper_networks_worse),
    "pooling_loses_the_input": Check(
        "the first convolution inverts to a near copy, after max pooling it does not",
        (("inversion", "inversion"),), pooling_loses_the_input),
    "width_inverts": Check(
        "a layer at least twice as wide as its input (with ReLU) is invertible, a narrower one not",
        (("inversion", "inversion"),), width_inverts),
}


def check_finding(finding, enabled):
    """Problems of one entry of `findings:` (its check, parameters and the
    analyses it reads) for a study whose analyses are `enabled`."""
    name, params = finding["check"], finding.get("params", {})
    check = FINDINGS[name]
    where = f"findings: {finding['claim']!r} (check {name})"
    problems = [f"{where} reads the tables of analysis {a!r}, which the study does not enable; "
                f"add it under analyses:" for a in dict.fromkeys(a for a, _ in check.reads)
                if a not in enabled]
    signature = inspect.signature(check.function)
    try:
        signature.bind(*[None] * len(check.reads), **params)
    except TypeError:
        options = [p for p in list(signature.parameters)[len(check.reads):]]
        problems.append(f"{where} takes the params {', '.join(options)}; got "
                        f"{', '.join(params) or 'none'}")
        return problems
    for key, value in params.items():
        annotated = signature.parameters[key].annotation
        types = [t for t in typing.get_args(annotated) or (annotated,) if t in PARAM_TYPES]
        if value is not None and types and not isinstance(value, tuple(
                accepted for t in types for accepted in PARAM_TYPES[t])):
            problems.append(f"{where}: params.{key} is {value!r}, not "
                            f"{' or '.join(t.__name__ for t in types)}")
    return problems


# What a config may give for a check's parameter of each annotated type: a
# checkpoint (str) may be written as a number, 1 for '1'; a float as a whole number.
PARAM_TYPES = {list: (list,), str: (str, int), float: (float, int), int: (int,)}


def evaluate(findings, tables):
    """findings.csv's rows: per entry of `findings:`, its claim, check, params,
    the numbers measured and whether the claim held ('yes', 'no', or
    'undefined' where the numbers needed are missing)."""
    rows = []
    for finding in findings:
        check = FINDINGS[finding["check"]]
        params = finding.get("params", {})
        measured, held = check.function(*[tables[r] for r in check.reads], **params)
        rows.append(dict(claim=finding["claim"], held={True: "yes", False: "no"}.get(held,
                         "undefined"), measured=measured, check=finding["check"],
                         check_description=check.description,
                         params=json.dumps(params, sort_keys=True)))
    return rows


def run(reads, paths, findings, out):
    """The findings stage: `paths` are the gathered tables of `reads`
    ([analysis, table] pairs, in order); findings.csv to `out`."""
    from hourglass.io import read_table, write_table

    tables = {tuple(read): read_table(path) for read, path in zip(reads, paths)}
    write_table(evaluate(findings, tables), out)
