"""Representations across variants (Bonheme & Grzes): every layer of every
variant against every layer of every other variant at the final checkpoint,
same seed and across seeds, with the all-pairs engine's measures. The paper
finds the encoder's layers alike whatever the objective and regularisation
strength, and the mean, log-variance and sampled layers less so.

Only variants recorded on the same probe images can be compared: variants
are grouped by the probe images of their data setting (`probes`, each
variant's config.probe_key), and a group of one variant is left out. Seeds that diverged are left out; a
dead layer's pairs are NaN with the reason in `undefined` (see
analyses.comparisons).
"""

import numpy as np
import pandas as pd
import torch

from hourglass.activations import describe
from hourglass.analyses.comparisons import check_device, compare, tidy
from hourglass.checks import check_activation_files
from hourglass.io import write_table
from hourglass.models import ROLES
from hourglass.progress import log_line

SIDES = ("a", "b")
PAIR_COLUMNS = ["probes", "measure", *(f"{s}_{c}" for s in SIDES for c in
                                       ("variant", "seed", "layer", "layer_index", "role")),
                "value", "undefined"]
# Which pairs of one layer a summary row averages: the same seed of two
# variants, two seeds of two variants, or (the reference) two seeds of one.
PAIRINGS = ("same seed", "across seeds", "seeds of one variant")
LAYER_COLUMNS = ["probes", "measure", "layer", "layer_index", "role", "region", "pairing", "mean",
                 "sd", "pairs", "undefined"]


def pairing(pairs):
    """Each pair's kind (PAIRINGS), or '' for two layers of one seed of one variant."""
    same_variant = pairs["a_variant"] == pairs["b_variant"]
    same_seed = pairs["a_seed"] == pairs["b_seed"]
    return np.select([~same_variant & same_seed, ~same_variant, ~same_seed], PAIRINGS, "")


def layer_summary(pairs):
    """Per group, measure, layer and pairing: the mean and sd of the layer
    against itself (same name and place on both sides) over the defined
    pairs, how many there were, and how many were undefined; the layer's role
    and its region."""
    same = pairs[(pairs["a_layer"] == pairs["b_layer"])
                 & (pairs["a_layer_index"] == pairs["b_layer_index"])].assign(pairing=pairing)
    same = same[same["pairing"] != ""]
    rows = []
    keys = ["probes", "measure", "a_layer", "a_layer_index", "a_role", "pairing"]
    for (probes, measure, layer, index, role, kind), group in same.groupby(keys, sort=False):
        values = group["value"].dropna()
        rows.append(dict(probes=probes, measure=measure, layer=layer, layer_index=index,
                         role=role, region=ROLES[role], pairing=kind, mean=values.mean(),
                         sd=values.std(ddof=1),
                         pairs=len(values), undefined=len(group) - len(values)))
    return pd.DataFrame(rows, columns=LAYER_COLUMNS).sort_values(
        ["probes", "measure", "pairing", "layer_index"], kind="stable")


def run(activations, settings, out, threads=1, log=log_line):
    check_activation_files(activations)  # all of them, before any compute
    torch.set_num_threads(threads)
    check_device(settings["device"])
    described = {path: describe(path) for path in activations}
    groups = {}  # probes: the final activation files of the variants recorded on them
    for path, attrs in described.items():
        if attrs["checkpoint"] == "final":
            groups.setdefault(settings["probes"][attrs["variant"]], []).append(path)
    parts = []
    for probes, files in groups.items():
        variants = sorted({described[path]["variant"] for path in files})
        if len(variants) < 2:
            log(f"left out: {variants[0]} is the only variant recorded on probe images {probes}")
            continue
        roles = {(described[path]["variant"], layer): role for path in files
                 for layer, role in zip(described[path]["layer_names"],
                                        described[path]["layer_roles"])}
        for measure in settings["measures"]:
            matrix, labels = compare(files, measure, {}, settings["dtype"], settings["device"],
                                     settings["max_memory_gb"], log)
            pairs = tidy(matrix, labels).assign(probes=probes, measure=measure)
            for side in SIDES:
                pairs[f"{side}_role"] = [roles[key] for key in
                                         zip(pairs[f"{side}_variant"], pairs[f"{side}_layer"])]
            parts.append(pairs[PAIR_COLUMNS])
    pairs = pd.concat(parts) if parts else pd.DataFrame(columns=PAIR_COLUMNS)
    write_table(pairs, out["pairs"])
    write_table(layer_summary(pairs), out["layers"])
