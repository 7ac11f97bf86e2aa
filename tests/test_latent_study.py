"""The latent-structure study end to end on digits (tests/latent_tiny.yaml):
its tables, figures and findings, the exact-PCA model against the analysis's
own PCA baseline, and what an edit of the analysis re-runs."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import yaml

from hourglass.config import data_key
from conftest import snakemake
from test_workflow import edited, planned_jobs_of

pytestmark = pytest.mark.slow
CONFIG = "latent_tiny.yaml"
VARIANTS = ["tanh", "relu", "denoising", "linear", "pca", "tanh_4_9"]
SEEDS = [0, 1]
TABLES = ["silhouettes", "samples", "baselines", "layouts", "spread", "codes"]
FIGURES = ["silhouettes", "silhouette_plots", "latent_scatter"]


@pytest.fixture(scope="module")
def study(workflow_copy):
    root = workflow_copy("latent")
    snakemake(root, "--configfile", CONFIG)
    return root


def table(study, name):
    return pd.read_csv(study / "results" / "latent_tiny" / "latent" / f"{name}.csv",
                       dtype={"epoch": str, "class": str})


def test_every_table_figure_and_finding_is_there(study):
    out = study / "results" / "latent_tiny"
    for name in TABLES:
        assert (out / "latent" / f"{name}.csv").exists(), name
    for name in FIGURES + ["training", "reconstructions"]:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    scores = table(study, "silhouettes")
    assert len(scores) == len(VARIANTS) * len(SEEDS) * 2  # epoch 0 and final
    assert set(scores["layer"]) == {"bottleneck1", "code"}  # fc/linear, and pca's code
    assert scores["silhouette"].between(-1, 1).all()
    findings = pd.read_csv(out / "findings.csv")
    assert len(findings) == 5 and set(findings["held"]) <= {"yes", "no", "undefined"}
    assert findings["measured"].str.contains(r"\d\.\d{3}").all()


def test_every_probe_image_of_the_kept_classes_is_scored(study):
    samples = table(study, "samples")
    one = samples[(samples["variant"] == "tanh") & (samples["seed"] == 0)
                  & (samples["epoch"] == "final")]
    assert set(one["class"]) == {"1", "7"}
    assert set(samples.loc[samples["variant"] == "tanh_4_9", "class"]) == {"4", "9"}
    # digits' 360 test images hold about 36 of each class
    assert 60 <= len(one) <= 80


def test_dead_units_of_the_input_are_the_probe_pixels_that_never_change(study):
    """The README's example analysis, beside the latent one: digits' probe
    images share blank border pixels, the input's dead units."""
    from hourglass.data import load_split

    out = study / "results" / "latent_tiny"
    dead = pd.read_csv(out / "dead_units" / "dead_units.csv", dtype={"epoch": str})
    layers = 4 * 5 + 2 * 3  # fc: input, encoder1, bottleneck1, decoder1, output; linear, pca: 3
    assert len(dead) == layers * len(SEEDS) * 2
    assert dead["dead"].between(0, 1).all()
    variants = yaml.safe_load((out / "config.yaml").read_text())["variants"]
    data = out / "data" / f"{data_key(variants['tanh']['data'])}.h5"
    probe = load_split(data, "probe")[0].numpy().reshape(-1, 64)
    blank = np.mean(probe.max(axis=0) == probe.min(axis=0))
    inputs = dead[(dead["layer"] == "input") & (dead["variant"] == "tanh")]["dead"]
    np.testing.assert_allclose(inputs, blank)
    assert 0 < blank < 0.5


def test_the_pca_model_scores_what_the_analysis_pca_baseline_scores(study):
    """Two routes to the same exact PCA: the `pca` model fitted in training and
    the analysis's own baseline. Activations are stored as float32."""
    scores = table(study, "silhouettes")
    pca = scores[(scores["variant"] == "pca") & (scores["epoch"] == "final")]["silhouette"]
    baseline = table(study, "baselines").query("variant == 'pca' and baseline == 'pca'")
    np.testing.assert_allclose(pca, baseline["silhouette"].iloc[0], atol=1e-5)
    # PCA has no seed: its layouts are the same up to the sign of each axis
    layouts = table(study, "layouts").query("variant == 'pca' and epoch == 'final'")
    np.testing.assert_allclose(layouts["linear_cka"], 1, atol=1e-5)


def test_editing_the_analysis_reruns_it_its_figures_and_findings_only(study, tmp_path):
    expected = Counter({("latent", f"variant={v}"): 1 for v in VARIANTS})
    expected.update({("gather_latent", f"output={t}.csv"): 1 for t in TABLES})
    expected.update({("figure", f"figure={f}"): 1 for f in FIGURES})  # not dead_units
    expected[("findings", "")] = 1
    options = tmp_path / "options.yaml"
    options.write_text("analyses: {latent: {components: 3}}\n")
    assert planned_jobs_of(study, CONFIG, str(options)) == expected + Counter(
        {("study_config", ""): 1})
    path = study / "src" / "hourglass" / "analyses" / "latent.py"
    original = edited(path)
    try:
        assert planned_jobs_of(study, CONFIG) == expected
    finally:
        path.write_text(original)
