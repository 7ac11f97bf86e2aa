"""The analyses a study may enable under `analyses:`, by name.

An analysis is a function of files returning tables (and image files). Most look at one
variant at a time (scope "variant": every seed's activations at every
checkpoint, and the variant's data file): the workflow runs them once per
variant and gathers each table over the variants into
results/{study}/{folder}/{table}.csv. One that compares variants (scope
"study") reads every variant's final activations (no data file) in one
job and writes those tables itself. Figures are drawn from the study's
tables. Everything the workflow needs to know of an analysis is here: a
new one is an entry, its module, a caption section in
workflow/report/figure.rst and its options in the schema. This module
imports nothing heavy (no torch, no analysis module): the Snakefile and
every figure job read it at start-up.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from hourglass.config import probe_key  # config imports this module only inside functions
from hourglass.references import function_at


@dataclass(frozen=True)
class Figure:
    """title: the figure's label in the report; category: the report's section;
    tables: the analysis's outputs (tables or image files) it is drawn from;
    draw: the function of hourglass.plots that draws it, as (outputs, paths,
    dpi, **settings)."""

    title: str
    category: str
    tables: tuple[str, ...]
    draw: str


@dataclass(frozen=True)
class Analysis:
    """description: one line for people; folder: where under results/{study}/
    its tables go; reads: what its function reads, in the order it takes them:
    'activations' (every seed's at every checkpoint; of a study, the final
    ones of every variant), 'data' (the variant's data file, or that of the
    analysis's own `data` setting where it has one), 'metrics' (every seed's
    metrics.csv), 'checkpoints' (every seed's final one), 'untrained'
    (every seed's checkpoint 0), 'ood' (the
    data file of the analysis's out-of-distribution setting); tables: the CSV
    tables its function writes (one file each, per variant); arrays: the
    image files it writes (hourglass.io.write_images: grids of images, which
    no table holds well), gathered into one file with a group per variant;
    run: 'module:function' taking (what it reads..., settings, out, threads)
    with `out` mapping each table and image file to its path;
    settings: what its jobs depend on, from the validated study config; modules: the package code it runs, hashed into its rules so
    that editing it re-runs the analysis; figures: by name; roles: the roles
    of the layers it reads (hourglass.models.ROLES) beyond every model's
    input, which the config checks each variant's model has (output: the
    reconstruction, which a classifier lacks);
    scope: "variant" (a job per variant, every checkpoint) or "study" (one
    job, every variant's final checkpoint; its 'data' is every variant's
    data file, in the order of the variants)."""

    description: str
    folder: str
    reads: tuple[str, ...]
    tables: tuple[str, ...]
    run: str
    settings: Callable[[dict], dict]
    modules: tuple[str, ...]
    figures: dict[str, Figure] = field(default_factory=dict)
    roles: tuple[str, ...] = ()
    scope: str = "variant"
    arrays: tuple[str, ...] = ()

    @property
    def outputs(self):
        """The names of what its function writes: its tables, then its image files."""
        return self.tables + self.arrays

    def file(self, name):
        """The file name of output `name`: a table's .csv, an image file's .h5."""
        return f"{name}.h5" if name in self.arrays else f"{name}.csv"


ANALYSES = {
    "consistency": Analysis(
        "representational consistency (RC) per layer across seeds, the MDS of layers x seeds, "
        "each layer's spread across seeds against its distance to the next layer, and each "
        "seed's own layers: their MDS and the distances of mirrored layers",
        folder="similarity",
        reads=("activations",),
        tables=("consistency", "mds", "clusters", "instance_mds", "mirrors"),
        run="hourglass.analyses.consistency:run",
        # its options live under `similarity:`, beside the measures that share them
        settings=lambda config: {k: config["similarity"][k] for k in ("bootstrap", "ci", "seed")},
        # models.py: the regions of the layers' roles (ROLES)
        modules=("analyses/consistency.py", "similarity", "activations.py", "models.py", "io.py"),
        figures={
            "consistency": Figure("RC per layer and checkpoint", "3. Consistency",
                                  ("consistency",), "consistency"),
            "mds": Figure("MDS of layers × seeds", "3. Consistency", ("mds",), "mds"),
            "clusters": Figure("each layer's spread across seeds against the next layer",
                               "3. Consistency", ("clusters",), "clusters_figure"),
            "instance_mds": Figure("MDS of one seed's layers, with and without input and output",
                                   "3. Consistency", ("instance_mds",), "instance_mds_figure"),
        },
    ),
    "instances": Analysis(
        "RC per layer from nested subsets of the trained seeds, at the final checkpoint: how "
        "many instances it takes",
        folder="instances",
        reads=("activations",),
        tables=("instances",),
        run="hourglass.analyses.instances:run",
        settings=lambda config: dict(config["analyses"]["instances"]),
        modules=("analyses/instances.py", "analyses/consistency.py", "similarity",
                 "activations.py", "io.py"),
        figures={
            "instances": Figure("RC per layer against the number of instances",
                                "3. Consistency", ("instances",), "instances_figure"),
        },
    ),
    "latent": Analysis(
        "class separation of a layer's codes (silhouettes) against the raw images and exact PCA, "
        "and how much the seeds' layouts differ",
        folder="latent",
        reads=("activations", "data"),
        tables=("silhouettes", "samples", "baselines", "layouts", "spread", "codes"),
        run="hourglass.analyses.latent:run",
        settings=lambda config: dict(config["analyses"]["latent"]),
        modules=("analyses/latent.py", "similarity", "activations.py", "models.py", "data.py",
                 "io.py"),
        figures={
            "silhouettes": Figure("silhouette per variant, every seed", "3. Latent structure",
                                  ("silhouettes", "baselines"), "silhouette_by_variant"),
            "silhouette_plots": Figure("silhouette plots of chosen seeds", "3. Latent structure",
                                       ("samples",), "silhouette_plot_figure"),
            "latent_scatter": Figure("the codes of seeds × variants", "3. Latent structure",
                                     ("codes",), "latent_scatter_figure"),
        },
    ),
    "dead_units": Analysis(
        "the share of each layer's units that give every probe image the same value",
        folder="dead_units",
        reads=("activations",),
        tables=("dead_units",),
        run="hourglass.analyses.dead_units:run",
        settings=lambda config: {},
        modules=("analyses/dead_units.py", "activations.py", "io.py"),
    ),
    "dynamics": Analysis(
        "each layer at each checkpoint against the same layer at every other checkpoint, "
        "per seed, with all-pairs measures: which layers are learned first",
        folder="dynamics",
        reads=("activations",),
        tables=("dynamics",),
        run="hourglass.analyses.dynamics:run",
        settings=lambda config: dict(config["analyses"]["dynamics"]),
        modules=("analyses/dynamics.py", "analyses/comparisons.py", "similarity",
                 "activations.py", "models.py", "io.py"),
        figures={
            "dynamics": Figure("each layer against its final state over training",
                               "3. Learning dynamics", ("dynamics",), "dynamics_figure"),
            "dynamics_heatmaps": Figure("each layer between every two checkpoints",
                                        "3. Learning dynamics", ("dynamics",),
                                        "dynamics_heatmaps"),
        },
    ),
    "collapse": Analysis(
        "a VAE's posterior collapse: active units, the KL of each latent dimension and the "
        "linear CKA between the mean and the sampled code, per seed and checkpoint",
        folder="collapse",
        reads=("activations",),
        tables=("collapse", "dimensions"),
        run="hourglass.analyses.collapse:run",
        settings=lambda config: dict(config["analyses"]["collapse"]),
        modules=("analyses/collapse.py", "similarity", "activations.py", "io.py"),
        figures={
            "collapse": Figure("posterior collapse over training", "3. Posterior collapse",
                               ("collapse",), "collapse_figure"),
        },
        roles=("mean", "logvar", "sampled"),
    ),
    "across_variants": Analysis(
        "every layer of every variant against every layer of the other variants recorded on "
        "the same probe images, at the final checkpoint, same seed and across seeds",
        folder="across_variants",
        reads=("activations",),
        tables=("pairs", "layers"),
        run="hourglass.analyses.across_variants:run",
        settings=lambda config: {
            **config["analyses"]["across_variants"],
            **{k: config["similarity"][k] for k in ("dtype", "device", "max_memory_gb")},
            "probes": {v: probe_key(s["data"]) for v, s in config["variants"].items()},
        },
        modules=("analyses/across_variants.py", "analyses/comparisons.py", "similarity",
                 "activations.py", "models.py", "io.py"),
        figures={
            "across_variants": Figure("each layer across variants, per layer",
                                      "3. Across variants", ("layers",),
                                      "across_variants_figure"),
            "across_variants_heatmaps": Figure("layer x layer between variants, same seed",
                                               "3. Across variants", ("pairs",),
                                               "across_variants_heatmaps"),
        },
        scope="study",
    ),
    "losses": Analysis(
        "per seed the minimum test loss and its epoch and the first epoch under a training-loss "
        "threshold, the curves, and rank-sum tests between the levels of a grid of model settings",
        folder="losses",
        reads=("metrics",),
        tables=("runs", "curves", "tests"),
        run="hourglass.analyses.losses:run",
        settings=lambda config: {
            **config["analyses"]["losses"],
            # a data and a model setting never share a name
            "variants": {v: {**s["data"], **s["model"]} for v, s in config["variants"].items()},
        },
        modules=("analyses/losses.py", "io.py"),
        figures={
            "losses": Figure("minimum test loss and training speed over the grid",
                             "3. Losses", ("runs",), "losses_heatmaps"),
            "loss_curves": Figure("training and test loss per epoch", "3. Losses",
                                  ("curves",), "loss_curves"),
        },
        scope="study",
    ),
    "probes": Analysis(
        "linear probes of each seed's bottleneck code and of the raw pixels, on images the "
        "model trained on and on unseen ones: macro-F1 of the classes or AUROC per factor",
        folder="probes",
        reads=("checkpoints", "data"),
        tables=("probes",),
        run="hourglass.analyses.probes:run",
        settings=lambda config: dict(config["analyses"]["probes"]),
        modules=("analyses/probes.py", "checks.py", "models.py", "data.py", "io.py"),
        figures={
            "probes": Figure("linear probes of the codes over the grid", "3. Linear probes",
                             ("probes",), "probes_heatmap"),
        },
    ),
    "outliers": Analysis(
        "reconstruction-based outlier detection: each seed's final model's error on the "
        "variant's test images and on an out-of-distribution set, and the AUROC",
        folder="outliers",
        reads=("checkpoints", "data", "ood"),
        tables=("outliers",),
        run="hourglass.analyses.outliers:run",
        settings=lambda config: dict(config["analyses"]["outliers"]),
        modules=("analyses/outliers.py", "checks.py", "models.py", "data.py", "io.py"),
        figures={
            "outliers": Figure("outlier detection (AUROC) over the grid", "3. Outliers",
                               ("outliers",), "outliers_heatmap"),
        },
        roles=("output",),
    ),
    "copy": Analysis(
        "whether a convolutional code copies its input: per seed, SVCCA and linear CKA between "
        "each position's code and the pixels of its patch, beside the test error",
        folder="copy",
        reads=("checkpoints", "data"),
        tables=("copy",),
        run="hourglass.analyses.copies:run",
        settings=lambda config: dict(config["analyses"]["copy"]),
        modules=("analyses/copies.py", "analyses/walks.py", "analyses/probes.py",
                 "analyses/outliers.py", "similarity", "checks.py", "models.py", "data.py",
                 "io.py"),
        figures={
            "copy": Figure("how copy-like each code is, over the grid", "3. Copy",
                           ("copy",), "copy_heatmap"),
        },
    ),
    "interpolation": Analysis(
        "each seed's final model decoding codes interpolated linearly between pairs of test "
        "images, as image grids",
        folder="interpolation",
        reads=("checkpoints", "data"),
        tables=(),
        arrays=("interpolation",),
        run="hourglass.analyses.walks:interpolation",
        settings=lambda config: dict(config["analyses"]["interpolation"]),
        modules=("analyses/walks.py", "analyses/probes.py", "checks.py", "models.py", "data.py",
                 "io.py"),
        figures={
            "interpolation": Figure("interpolation between test images in code space",
                                    "3. Interpolation and iteration", ("interpolation",),
                                    "image_grid"),
        },
        roles=("output",),
    ),
    "iteration": Analysis(
        "each seed's final model fed its own reconstructions of test images again and again, "
        "as image grids",
        folder="iteration",
        reads=("checkpoints", "data"),
        tables=(),
        arrays=("iteration",),
        run="hourglass.analyses.walks:iteration",
        settings=lambda config: dict(config["analyses"]["iteration"]),
        modules=("analyses/walks.py", "analyses/probes.py", "checks.py", "models.py", "data.py",
                 "io.py"),
        figures={
            "iteration": Figure("reconstructions fed back into the model",
                                "3. Interpolation and iteration", ("iteration",), "image_grid"),
        },
        roles=("output",),
    ),
    "inversion": Analysis(
        "each layer inverted by gradient descent on the input, untrained and trained: how "
        "close the candidate's activation (m_g, against a noised copy's m_r) and the "
        "candidate itself (m_i) came, for the variants' models and library networks",
        folder="inversion",
        reads=("untrained", "checkpoints", "data"),
        tables=("inversion",),
        arrays=("generated",),
        run="hourglass.analyses.inversion:run",
        settings=lambda config: {**config["analyses"]["inversion"],
                                 "variants": list(config["variants"])},
        # train.py: the noise streams of the starts and references
        modules=("analyses/inversion.py", "inversion.py", "networks.py", "train.py",
                 "checks.py", "models.py", "data.py", "io.py"),
        figures={
            "inversion_images": Figure("the inputs generated for each layer",
                                       "3. Inversion", ("generated",), "inversion_images"),
            "inversion_distances": Figure("m_g against m_r, and m_i, per layer",
                                          "3. Inversion", ("inversion",), "inversion_distances"),
            "inversion_trajectories": Figure("input distance against embedding distance over "
                                             "the iterations", "3. Inversion", ("inversion",),
                                             "inversion_trajectories"),
            "inversion_depth": Figure("the same stage across networks", "3. Inversion",
                                      ("inversion",), "inversion_depth"),
            "inversion_width": Figure("width against invertibility", "3. Inversion",
                                      ("inversion",), "inversion_width"),
        },
        scope="study",
    ),
}


def run_analysis(name, inputs, settings, out, threads=1):
    """Run analysis `name` on its files (one variant's, or for an analysis of
    study scope every variant's), `inputs` holding the paths of each kind it
    reads: its function, imported only now."""
    analysis = ANALYSES[name]
    function_at(analysis.run)(
        *(inputs[read] for read in analysis.reads), settings, out, threads)
