"""RC from nested subsets of the trained seeds (Durbha et al., Fig. 5): the
subsets' RC against RC computed directly on the chosen seeds, the analysis
on the tiny study's files against its consistency table, the convergence
check on a hand-made table, and the config's bound on the sizes."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, SCHEMA
from hourglass.analyses.consistency import layer_consistency, second_order
from hourglass.analyses.instances import run, subset_rc
from hourglass.config import ConfigError, check_config
from hourglass.findings import rc_converged
from hourglass.io import read_table
from hourglass.similarity.rdm import rdm


def test_a_subsets_rc_is_the_rc_of_its_seeds_computed_directly():
    rng = np.random.default_rng(0)
    acts = [rng.normal(size=(12, 6)) for _ in range(5)]
    r = second_order(torch.stack([rdm(torch.as_tensor(a)) for a in acts]))
    order = torch.tensor([3, 0, 4, 1, 2])
    for k, rc in zip([2, 3, 5], subset_rc(r, order, [2, 3, 5])):
        direct = layer_consistency([acts[i] for i in order[:k].tolist()], n_boot=10)[0]["rc"]
        assert rc == pytest.approx(direct, abs=1e-12)


def test_the_analysis_on_the_tiny_study_matches_its_consistency_at_every_seed(tiny_study,
                                                                             tmp_path):
    study = tiny_study / "results" / "tiny"
    files = sorted((study / "latent4").glob("seed*/activations/*.h5"))
    run(files, {"sizes": [2, 3], "subsets": 4, "seed": 0}, {"instances": tmp_path / "i.csv"})
    rows = read_table(tmp_path / "i.csv")
    layers = rows["layer"].nunique()
    assert len(rows) == layers * 4 * 2
    consistency = read_table(study / "similarity" / "consistency.csv")
    final = consistency[(consistency["variant"] == "latent4") & (consistency["epoch"] == "final")]
    every_seed = rows[rows["instances"] == 3].groupby("layer")["rc"]
    # every subset of all 3 seeds is the whole set: the consistency table's RC
    assert (every_seed.nunique(dropna=False) == 1).all()
    both = final.set_index("layer")["rc"].to_frame().join(every_seed.first().rename("rc_all"))
    np.testing.assert_allclose(both["rc_all"], both["rc"], atol=1e-12)
    for _, subset in rows[rows["layer"] == "input"].groupby("subset"):
        two, three = (set(subset.loc[subset["instances"] == k, "seeds"].iloc[0].split())
                      for k in (2, 3))
        assert len(two) == 2 and two < three == {"0", "1", "2"}  # nested


def test_rc_has_converged_where_more_seeds_move_no_layer_beyond_the_tolerance():
    def table(rc):  # {instances: [rc per layer]}, two subsets alike
        return pd.DataFrame([dict(variant="v", layer_index=i, instances=k, subset=s, rc=value)
                             for k, values in rc.items() for i, value in enumerate(values)
                             for s in range(2)])

    measured, held = rc_converged(table({10: [0.9, 0.5], 20: [0.9, 0.61], 40: [0.9, 0.6]}))
    assert held is True and "0.010" in measured
    assert rc_converged(table({10: [0.9, 0.5], 20: [0.9, 0.55], 40: [0.9, 0.6]}))[1] is False
    assert rc_converged(table({10: [0.9, 0.5], 40: [0.9, 0.6]}))[1] is None
    assert rc_converged(table({20: [0.9, np.nan], 40: [0.9, np.nan]}))[1] is None


def test_the_config_bounds_the_sizes_by_the_seeds():
    import yaml

    config = yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text())
    config["analyses"] = {"instances": {"sizes": [2, 5]}}
    with pytest.raises(ConfigError, match=r"sizes: \[5\] instances asked of 3 seeds"):
        check_config(config, SCHEMA)
