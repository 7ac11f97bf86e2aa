"""Checking a study config against the schema, with messages that name the key."""

import hashlib
import json
import math
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators


class ConfigError(ValueError):
    pass


def read_config_file(path):
    """A config file read with YAML's safe loader (no Python objects, no
    repeated keys, no aliases), or ConfigError naming the file and why it
    cannot be read, or the line where it does not parse or is refused."""
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.load(f, Loader=StrictLoader)
    except OSError as error:  # missing, a folder, unreadable: the OS's reason, lower-cased
        reason = (error.strerror or str(error)).lower()
        raise ConfigError(f"config file {path} cannot be read: {reason}") from error
    except (UnicodeDecodeError, yaml.reader.ReaderError) as error:  # binary, HDF5, latin-1
        reason = " ".join(str(error).split())  # the reader's message spans two lines
        raise ConfigError(f"config file {path} is not a YAML text file (UTF-8, printable): "
                          f"{reason}. Is it the right file?") from error
    except Refused as error:
        mark = error.problem_mark
        raise ConfigError(f"config file {path}, line {mark.line + 1}, column {mark.column + 1}: "
                          f"{error.problem}") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"config file {path} does not parse as YAML{where}: {problem}. "
                          "Fix it there (mind the indentation; tabs are not allowed).") from error
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} holds a {type(config).__name__}, not a mapping "
                          "of keys (study:, variants:, ...)")
    return config


class Refused(yaml.constructor.ConstructorError):
    """YAML that parses but that a config may not hold."""


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, less what makes a file mean something other than it
    shows: a key given twice (the last would silently win, and a variant
    vanish) and aliases (`*name`, which can expand a small file into
    gigabytes)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise Refused(
                None, None, f"an alias (*{event.anchor}) is not allowed in a config: write the "
                "value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise Refused(
                    None, None, f"key {key!r} is given twice in the same mapping: keep one",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def merge(base, override):
    """`override` merged into `base` key by key, as Snakemake merges config files."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (merge(out[key], value) if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


# Where the data is read from is the study's: moving it changes no data file.
DATA_LOCATION = ("root", "download")


def data_setting(data):
    """A data section less where the data is read from: what a data file holds."""
    return {k: v for k, v in data.items() if k not in DATA_LOCATION}


def data_key(setting):
    """A data setting's file name: its dataset and a hash of the setting's
    canonical JSON, the same for equal settings (variants with equal settings
    share one file) and for no others."""
    digest = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:8]
    return f"{setting['dataset']}-{digest}"


def model_keys(schema, architecture):
    """The model keys `architecture` takes: the schema's branch for it."""
    model = schema["$defs"]["model"]
    keys = list(model["properties"])
    for branch in model["allOf"]:
        if branch["if"]["properties"]["architecture"]["const"] == architecture:
            keys += list(branch["then"]["properties"])
    return keys


def model_defaults(schema, architecture):
    """The defaults of the model keys `architecture` takes."""
    model = schema["$defs"]["model"]
    branches = [b["then"]["properties"] for b in model["allOf"]
                if b["if"]["properties"]["architecture"]["const"] == architecture]
    defaults = {}
    for properties in [model["properties"], *branches]:
        defaults.update({k: v["default"] for k, v in properties.items() if "default" in v})
    return defaults


def architecture_of(model, schema):
    """The architecture a model's settings (as written) name, or the default."""
    default = schema["$defs"]["model"]["properties"]["architecture"]["default"]
    return model.get("architecture", default)


# The parts of a variant resolved from the study's: an error in a key the
# variant inherits is the study's, named there (see inherited()).
VARIANT_PARTS = ("model", "training", "data")


def resolve_variants(config, schema):
    """Each variant's model, training and data settings as written in full:
    the study's, with the keys the variant names replaced. A variant's model
    keeps only those of the study's model keys that its architecture (its
    own, else the study's) takes, so a variant that switches architecture
    inherits no key of another. Run on a config as written (defaults are
    filled in afterwards, per variant, by its architecture); written back as
    the variants of the effective config, the same settings resolve to
    themselves. Parts that are not mappings are left as written, for the
    schema to name."""
    def study_keys(part, own):
        """The study's keys of `part` that a variant writing `own` there takes
        on: those its part takes. A key the study may not have is the study's
        error, named there once; data's root and download are the study's
        alone (not keys of a data setting)."""
        study = config.get(part, {})
        keys = (model_keys(schema, architecture_of({**study, **own}, schema)) if part == "model"
                else schema["$defs"][part]["properties"])
        return {k: v for k, v in study.items() if k in keys}

    def resolved(override):
        if not isinstance(override, dict):
            return override
        out = dict(override)
        for part in VARIANT_PARTS:
            own = out.get(part, {})
            if isinstance(own, dict) and isinstance(config.get(part, {}), dict):
                out[part] = {**study_keys(part, own), **own}
        return out

    variants = config.get("variants")
    if not isinstance(variants, dict):
        return variants
    return {name: resolved(override) for name, override in variants.items()}


def inherited(error, config):
    """Whether `error`, found in a variant's resolved settings, is about a key
    the variant did not write: the study's key, whose own error names it there."""
    path = list(error.absolute_path)
    if len(path) < 4 or path[0] != "variants" or path[2] not in VARIANT_PARTS:
        return False
    return path[3] not in config["variants"][path[1]].get(path[2], {})


def load_schema(path):
    with open(path) as f:
        return yaml.safe_load(f)


def describe_error(error, root):
    """One line per problem: where in the config, what is wrong, what is allowed
    (`root`: the whole schema, which `$ref`s point into); None where another
    error says it."""
    where = ".".join(str(p) for p in error.absolute_path)
    prefix = f"{where}: " if where else ""
    schema = error.schema
    if error.validator == "unevaluatedProperties" and schema == root["$defs"]["model"]:
        # a model key its architecture does not take
        architecture = architecture_of(error.instance, root)
        if architecture not in root["$defs"]["model"]["properties"]["architecture"]["enum"]:
            return None  # the enum's error says so; no branch's keys to list
        allowed = model_keys(root, architecture)
        unknown = [k for k in error.instance if k not in allowed]
        if not unknown:  # a key of the branch that failed it: its own error names it
            return None
        keys = ", ".join(f"{where}.{k}" for k in unknown)
        return (f"unknown key {keys}; allowed here: {', '.join(allowed)} (the keys of "
                f"architecture {architecture})")
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = allowed_keys(schema, root)
        unknown = [k for k in error.instance if k not in allowed]
        keys = ", ".join(f"{where + '.' if where else ''}{k}" for k in unknown)
        hint = (f" ({schema['description'].strip()})"
                if error.validator == "unevaluatedProperties" and "description" in schema else "")
        return f"unknown key {keys}; allowed here: {', '.join(allowed)}{hint}"
    if error.validator == "enum":
        return f"{prefix}{error.instance!r} is not known; choose one of: " + ", ".join(
            map(str, schema["enum"]))
    if error.validator == "pattern" and "description" in schema:  # words, not a regex
        return f"{prefix}{error.instance!r} does not match: {schema['description'].strip()}"
    hint = f" ({schema['description'].strip()})" if "description" in schema else ""
    return f"{prefix}{error.message}{hint}"


def allowed_keys(schema, root):
    """The keys an object schema allows: its own properties and those of the
    schema its local `$ref` (#/$defs/...) points to."""
    keys = []
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        keys = allowed_keys(target, root)
    return keys + [k for k in schema.get("properties", {}) if k not in keys]


def check_measures(measures):
    """Raise ConfigError if a measure's options are not the ones it takes."""
    if not measures:
        return
    from hourglass.similarity.measures import measure_plan  # torch: only when needed

    problems = []
    for measure, options in measures.items():
        try:
            measure_plan(measure, **options)
        except ValueError as error:
            problems.append(f"  - similarity.measures.{measure}: {error}")
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(problems))


def _integer(checker, value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(checker, value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


# JSON Schema counts 2.0 as an integer and .inf as a number; a config must
# say what it means: 2 where a count belongs, a finite number where a number does.
StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _integer, "number": _number}))


def check_config(config, schema_path):
    """Raise ConfigError listing every problem of `config`, or return None."""
    schema = load_schema(schema_path)
    resolved = config
    if "variants" in config:  # as their jobs get them; missing, they are the schema's to name
        resolved = {**config, "variants": resolve_variants(config, schema)}
    errors = sorted(StrictValidator(schema).iter_errors(resolved),
                    key=lambda e: [str(p) for p in e.absolute_path])
    described = (describe_error(e, schema) for e in errors if not inherited(e, config))
    problems = ([p for p in described if p]
                or bootstrap_problems(config, schema) + data_problems(config, schema)
                + loss_problems(config, schema) + role_problems(config, schema)
                + shape_problems(config, schema) + stack_problems(config, schema)
                + grid_problems(config, schema)
                + findings_problems(config, schema) + latent_problems(config, schema)
                + instances_problems(config) + figure_problems(config)
                + inversion_problems(config, schema))
    if problems:
        problems = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(f"invalid config:\n{problems}\nEvery key is described in "
                          f"{Path(schema_path).name} (workflow/schemas/).")


# A percentile interval's end is an order statistic of the resamples: with
# fewer than this many beyond it, it is mostly Monte Carlo noise (with one
# resample in all, the "interval" excludes its own estimate in most rows).
MIN_TAIL_RESAMPLES = 10


def bootstrap_problems(config, schema):
    """similarity.bootstrap too small for a meaningful similarity.ci interval."""
    defaults = schema["properties"]["similarity"]["properties"]
    similarity = config.get("similarity", {})
    resamples, ci = (similarity.get(key, defaults[key]["default"]) for key in ("bootstrap", "ci"))
    needed = math.ceil(MIN_TAIL_RESAMPLES / ((1 - ci) / 2) - 1e-9)
    if resamples >= needed:
        return []
    return [f"similarity.bootstrap: {resamples} resamples leave fewer than "
            f"{MIN_TAIL_RESAMPLES} beyond each end of a {ci:g} interval; use at least {needed} "
            f"(or a narrower similarity.ci)"]


def data_defaults(schema):
    """The defaults of a data setting's keys."""
    return {k: v["default"] for k, v in schema["$defs"]["data"]["properties"].items()
            if "default" in v}


def data_settings(config, schema):
    """{key in the config: data setting} of the study and of each variant, as
    written (`config`) with the schema's defaults filled in."""
    study = {**data_defaults(schema), **data_setting(config.get("data", {}))}
    return {"data": study, **{f"variants.{name}.data": {**study, **variant.get("data", {})}
                              for name, variant in config["variants"].items()}}


# The data settings of analyses' own, as (analysis, key): a data file each.
ANALYSIS_DATA = (("outliers", "ood"), ("probes", "data"))

# What fixes a data file's probe images: neither train_size nor val_fraction does.
PROBE_KEYS = ("dataset", "classes", "probe_size", "split_seed", "resize", "test_size", "pad",
              "binarise")
# Keys that came later, in a key only where set: no existing study's key changes.
LATER_PROBE_KEYS = ("pad", "binarise")


def probe_key(setting):
    """The key of the probe images a data setting records on: equal for
    settings that differ only where the probes do not (PROBE_KEYS)."""
    return data_key({k: setting.get(k) for k in PROBE_KEYS
                     if k not in LATER_PROBE_KEYS or setting.get(k) is not None})


def data_problems(config, schema):
    """Data settings the dataset registry can tell are wrong (classes it lacks,
    more probe images than test images), and similarity measures asked of
    variants recorded on different probe images, which they cannot compare."""
    from hourglass.data import setting_problems

    settings = data_settings(config, schema)
    if not config["variants"]:  # a study of library networks only reads no data setting
        settings.pop("data")
    analyses = config.get("analyses", {})
    own = {f"analyses.{analysis}.{key}": analyses[analysis][key]
           for analysis, key in ANALYSIS_DATA if key in analyses.get(analysis, {})}
    checked = {**settings, **{where: {**data_defaults(schema), **setting}
                              for where, setting in own.items()}}
    problems = [p for where, setting in checked.items() for p in setting_problems(setting, where)]
    problems += analysis_shape_problems(checked)
    probes = {}
    for where, setting in list(settings.items())[1:]:
        probes.setdefault(probe_key(setting), []).append(where.split(".")[1])
    measures = config.get("similarity", {}).get("measures")
    if measures and len(probes) > 1:
        groups = "; ".join(", ".join(names) for names in probes.values())
        problems.append(
            f"similarity.measures: {', '.join(measures)} compare every variant's layers on the "
            f"same probe images, but the variants record different ones ({groups}: their data "
            f"settings differ in {', '.join(PROBE_KEYS)}); give them the same, or leave out "
            "similarity.measures")
    return problems


def analysis_shape_problems(settings):
    """Variants whose images differ in shape from those of an analysis's own
    data setting (`settings` as data_problems checks them: the outliers' ood
    images, the probes' labelled images), which their models cannot read."""
    from hourglass.data import DATASETS, image_shape

    if any(s["dataset"] not in DATASETS for s in settings.values()):
        return []  # an unknown dataset is named by setting_problems
    problems = []
    for where, own in settings.items():
        if not where.startswith("analyses."):
            continue
        shape = image_shape(own)
        problems += [f"{where}: its images are {'x'.join(map(str, shape))} (C x H x W) but "
                     f"{variant}'s are {'x'.join(map(str, image_shape(setting)))}, which the "
                     f"model cannot read; give {where} the variants' shape (pad, resize)"
                     for variant, setting in settings.items()
                     if variant.startswith("variants.") and image_shape(setting) != shape]
    return problems


def findings_problems(config, schema):
    """`findings:` entries whose check reads an analysis the study does not
    enable, whose params the check does not take, or that name a variant the
    study lacks."""
    from hourglass.findings import check_finding

    enabled = config.get("analyses", schema["properties"]["analyses"]["default"])
    problems = [p for finding in config.get("findings", []) for p in check_finding(finding, enabled)]
    if problems:
        return problems
    known = set(config.get("variants", {}))
    for finding in config.get("findings", []):
        params = finding.get("params", {})
        named = [params[key] for key in VARIANT_PARAMS if params.get(key) is not None]
        named = [v for value in named for v in (value if isinstance(value, list) else [value])]
        unknown = [v for v in named if v not in known]
        if unknown:
            problems.append(f"findings: {finding['claim']!r} (check {finding['check']}) names "
                            f"{', '.join(map(str, unknown))}, not a variant of the study "
                            f"({', '.join(known)})")
    return problems


# The params of findings' checks that name variants of the study.
VARIANT_PARAMS = ("variant", "variants", "than")


def latent_problems(config, schema):
    """The latent analysis asked of a layer a variant's model does not have, or
    for a PCA baseline of more components than the images have pixels."""
    latent = config.get("analyses", {}).get("latent")
    if latent is None:
        return []
    from hourglass.data import image_shape

    problems, layer = [], latent.get("layer")
    settings = data_settings(config, schema)
    components = latent.get("components", 2)
    shapes = {(setting["dataset"], image_shape(setting)) for setting in settings.values()}
    for dataset, shape in sorted(shapes):
        pixels = math.prod(shape)
        if components > pixels:
            problems.append(f"analyses.latent.components: {components} components of a PCA of "
                            f"{dataset!r} images, which have {pixels} pixels; use at most {pixels}")
    if layer is None:
        return problems
    from hourglass.models import build_model  # torch: only when a layer is named

    for name, variant in resolve_variants(config, schema).items():
        shape = image_shape(settings[f"variants.{name}.data"])
        model = {**model_defaults(schema, architecture_of(variant["model"], schema)),
                 **variant["model"]}
        layers = build_model(model, shape).layer_names
        if layer not in layers:
            problems.append(f"analyses.latent.layer: variant {name!r} has no layer {layer!r}; its "
                            f"layers are {', '.join(layers)} (null: the last bottleneck layer)")
    return problems


def instances_problems(config):
    """Subsets of more instances than the study trains seeds."""
    sizes = config.get("analyses", {}).get("instances", {}).get("sizes", [])
    seeds = len(config.get("seeds", []))
    too_many = sorted(k for k in sizes if k > seeds)
    return [f"analyses.instances.sizes: {too_many} instances asked of {seeds} seeds; train "
            f"more seeds (seeds:) or ask for at most {seeds}"] if too_many else []


def figure_problems(config):
    """A figure asked to draw a seed the study does not train."""
    seed = config.get("figures", {}).get("instance_mds", {}).get("seed")
    seeds = config.get("seeds", [])
    return [f"figures.instance_mds.seed: {seed} is not one of the seeds {seeds}; name one of "
            "them, or null for the first"] if seed is not None and seed not in seeds else []


def inversion_problems(config, schema):
    """A study of no variants that inverts no networks either; the inversion
    of variants without checkpoint 0 (their untrained models) or of seeds the
    study does not train; a network given another architecture's settings;
    photographs from a folder that is not there."""
    inversion = config.get("analyses", {}).get("inversion")
    networks = (inversion or {}).get("networks") or {}
    if not config.get("variants") and not networks:
        return ["variants: none given; a study trains at least one variant (only "
                "analyses.inversion.networks, library networks, run without)"]
    if inversion is None:
        return []
    problems = []
    if config["variants"] and 0 not in config.get("checkpoints", []):
        problems.append("analyses.inversion inverts each variant's model untrained, its "
                        "checkpoint 0, which checkpoints: lacks; add 0 to checkpoints:")
    missing = sorted(set(inversion.get("seeds", [0])) - set(config.get("seeds", [])))
    if config["variants"] and missing:
        problems.append(f"analyses.inversion.seeds: {missing} are not among the study's seeds "
                        f"{config.get('seeds')}; invert seeds the study trains")
    for name, network in networks.items():
        mlp = network["architecture"] == "mlp"
        foreign = [key for key in (("weights",) if mlp else ("widths", "activation"))
                   if key in network]
        if foreign:
            problems.append(f"analyses.inversion.networks.{name}: {', '.join(foreign)} "
                            f"{'is' if len(foreign) == 1 else 'are'} not a setting of a "
                            f"{network['architecture']} (a ResNet takes weights, an MLP widths "
                            "and activation)")
    clash = sorted(set(networks) & set(config["variants"]))
    if clash:
        problems.append(f"analyses.inversion.networks: {', '.join(clash)} "
                        f"{'names a variant' if len(clash) == 1 else 'name variants'} too, whose "
                        "rows it would mix with; rename the network")
    for where, descent in (("analyses.inversion", inversion),
                           *((f"analyses.inversion.networks.{n}", v) for n, v in networks.items())):
        if descent.get("kernel_size", 3) % 2 == 0:
            problems.append(f"{where}.kernel_size: {descent['kernel_size']} has no centre "
                            "pixel; give an odd kernel size")
    problems += inversion_layer_problems(config, schema, inversion, networks)
    photos = inversion.get("photos", {})
    if networks and photos.get("source") == "folder" and not Path(photos["path"]).is_dir():
        problems.append(f"analyses.inversion.photos.path: no folder {photos['path']}; give the "
                        "folder of images to invert the networks on")
    return problems


def inversion_layer_problems(config, schema, inversion, networks):
    """Layers asked of the inversion that a variant's model or a network lacks."""
    problems = []
    for name, network in networks.items():
        if network.get("layers"):
            if network["architecture"] == "mlp":
                known = [f"dense{i}" for i in range(1, len(network["widths"]) + 1)]
            else:
                from hourglass.networks import RESNET_STAGES  # torch: only when layers are named

                known = list(RESNET_STAGES)
            unknown = [layer for layer in network["layers"] if layer not in known]
            if unknown:
                problems.append(f"analyses.inversion.networks.{name}.layers: no layer "
                                f"{', '.join(unknown)} in a {network['architecture']}; its "
                                f"layers are {', '.join(known)}")
    if not inversion.get("layers"):
        return problems
    from hourglass.data import image_shape
    from hourglass.models import build_model  # torch: only when layers are named

    settings = data_settings(config, schema)
    for name, variant in resolve_variants(config, schema).items():
        model = {**model_defaults(schema, architecture_of(variant["model"], schema)),
                 **variant["model"]}
        known = build_model(model, image_shape(settings[f"variants.{name}.data"])).layer_names
        unknown = [layer for layer in inversion["layers"] if layer not in known[1:]]
        if unknown:
            problems.append(f"analyses.inversion.layers: variant {name!r} has no layer "
                            f"{', '.join(unknown)}; its layers are {', '.join(known[1:])}")
    return problems


def loss_problems(config, schema):
    """Variants whose training.loss is bce but whose model's output is not held
    in [0, 1] (linear, pca): binary cross-entropy is undefined outside it, so
    their losses would be no numbers at all (torch refuses to compute them)."""
    default = schema["$defs"]["training"]["properties"]["loss"]["default"]
    variants = resolve_variants(config, schema)
    bce = {name: architecture_of(variant["model"], schema) for name, variant in variants.items()
           if variant["training"].get("loss", default) == "bce"}
    if not bce:
        return []
    from hourglass.models import MODELS  # torch: only when a variant asks for bce

    return [f"variants.{name}.training.loss: bce is undefined for a reconstruction outside "
            f"[0, 1], and {architecture}'s output is not held there (no sigmoid); give this "
            "variant training: {loss: mse}"
            for name, architecture in bce.items() if not MODELS[architecture].unit_output]


def stack_problems(config, schema):
    """Variants whose seeds training.stack_seeds stacks, but whose model or
    precision cannot be trained stacked (hourglass.stacked.unstackable)."""
    stacked = {name: variant for name, variant in resolve_variants(config, schema).items()
               if variant["training"].get("stack_seeds")}
    if not stacked:
        return []
    from hourglass.data import image_shape
    from hourglass.models import build_model  # torch: only where seeds are stacked
    from hourglass.stacked import unstackable

    settings, problems = data_settings(config, schema), []
    for name, variant in stacked.items():
        model = {**model_defaults(schema, architecture_of(variant["model"], schema)),
                 **variant["model"]}
        try:
            reason = unstackable(build_model(model, image_shape(settings[f"variants.{name}.data"])),
                                 variant["training"])
        except ValueError:  # a model the images do not fit: shape_problems names it
            continue
        if reason:
            problems.append(f"variants.{name}.training.stack_seeds: its seeds cannot be trained "
                            f"stacked: {reason}; set stack_seeds: false for this variant")
    return problems


def grid_problems(config, schema):
    """A grid (analyses.losses.grid, .probes.grid, ...: any analysis's
    `grid`) naming settings some variant has not: the losses' may name model or data
    settings, the others' (read from the checkpoints) model settings only."""
    analyses = config.get("analyses", {})
    problems = []
    for analysis in analyses:
        properties = (schema["properties"]["analyses"]["properties"].get(analysis, {})
                      .get("properties", {}))
        if "grid" not in properties:
            continue
        data_too = analysis == "losses"  # read from metrics.csv, not from checkpoints
        grid = analyses[analysis].get("grid", properties["grid"]["default"])
        for name, variant in resolve_variants(config, schema).items():
            architecture = architecture_of(variant["model"], schema)
            known = set(model_keys(schema, architecture))
            if data_too:  # a data setting with a default, or one the variant sets
                data = schema["$defs"]["data"]["properties"]
                known |= {k for k in data if "default" in data[k]} | set(variant["data"])
            lacking = [key for key in grid if key not in known]
            if lacking:
                problems.append(
                    f"analyses.{analysis}.grid: variant {name!r} has no setting "
                    f"{', '.join(lacking)} (its model is {architecture}); name settings of its "
                    f"model{' or data' if data_too else ''}, e.g. [area, compression] for a cae")
    return problems


def shape_problems(config, schema):
    """Models that their settings or the images do not allow: a cae whose
    levels cannot halve the sides or whose compression is no whole number of
    channels; a repeated layer the model lacks (model.repeat); a classifier
    with fewer classes than its data (model.classes)."""
    from hourglass.data import DATASETS

    settings, problems, built = data_settings(config, schema), [], {}
    for name, variant in resolve_variants(config, schema).items():
        architecture = architecture_of(variant["model"], schema)
        model = {**model_defaults(schema, architecture), **variant["model"]}
        data = settings[f"variants.{name}.data"]
        labels = len(data.get("classes") or DATASETS[data["dataset"]].classes)
        if model.get("classes") is not None and model["classes"] < labels:
            problems.append(f"variants.{name}.model.classes: {model['classes']}, but its data "
                            f"have {labels} classes; set it to {labels}")
        if architecture == "cae" or model.get("repeat"):
            built[name] = (model, data)
    if not built:
        return problems
    from hourglass.data import image_shape
    from hourglass.models import build_model  # torch: only where a model must be built

    for name, (model, data) in built.items():
        try:
            build_model(model, image_shape(data))
        except ValueError as error:
            problems.append(f"variants.{name}.model: {error}")
    return problems


# What gives a model the layers of a role, for the error naming it.
VAE_HINT = "give the variant a VAE model (model: {architecture: vae_fc} or vae_conv)"
ROLE_HINTS = {
    **{role: VAE_HINT for role in ("mean", "logvar", "sampled", "logits")},
    "classes": "make the variant a classifier (model.classes: the number of classes)",
    "output": "a classifier (model.classes) has no output: train it with "
              "training.objective {name: classifier}",
}


def role_problems(config, schema):
    """Variants whose model lacks a layer their objective or an enabled
    analysis reads, by role: a VAE objective, or the collapse analysis,
    asked of a model without a VAE's mean, logvar and sampled heads."""
    from hourglass.analyses.registry import ANALYSES
    from hourglass.objectives import OBJECTIVES

    default = schema["$defs"]["training"]["properties"]["objective"]["default"]
    enabled = config.get("analyses", schema["properties"]["analyses"]["default"])
    variants = resolve_variants(config, schema)
    readers = {}  # variant: [(where in the config, what reads, the roles it reads)]
    for name, variant in variants.items():
        objective = variant["training"].get("objective", default)["name"]
        readers[name] = [(f"variants.{name}.training.objective", objective,
                          OBJECTIVES[objective].reads)]
        readers[name] += [(f"analyses.{analysis}", f"the {analysis} analysis",
                           ANALYSES[analysis].roles) for analysis in enabled]
    # every model has an input, and an output unless it is a classifier: build
    # only those read for more
    readers = {name: [r for r in reads if set(r[2]) - {"input", "output"}
                      or variants[name]["model"].get("classes") is not None]
               for name, reads in readers.items()}
    readers = {name: reads for name, reads in readers.items() if reads}
    if not readers:
        return []
    from hourglass.data import image_shape
    from hourglass.models import build_model  # torch: only where heads are read

    settings, problems = data_settings(config, schema), []
    for name, reads in readers.items():
        shape = image_shape(settings[f"variants.{name}.data"])
        model = {**model_defaults(schema, architecture_of(variants[name]["model"], schema)),
                 **variants[name]["model"]}
        try:
            roles = build_model(model, shape).single_roles
        except ValueError as error:  # a model the images do not fit (vae_conv on 8 x 8 digits)
            problems.append(f"variants.{name}.model: {error} (data.resize)")
            continue
        for where, reader, read in reads:
            lacking = [r for r in read if r not in roles]
            if lacking:
                problems.append(
                    f"{where}: {reader} reads the {', '.join(lacking)} layers of variant "
                    f"{name!r}, whose model ({model['architecture']}) lacks them; "
                    + "; ".join(dict.fromkeys(ROLE_HINTS[role]
                                              for role in lacking)))
    return problems


def write_effective_config(config, path):
    """Write a study's effective config (its files with every default filled
    in, as validated, and each variant's settings in full) to `path` as YAML,
    for the results and the report. Run again as the study's only config
    file, it plans nothing new."""
    from hourglass.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(f"# The effective config of study {config['study']}: its config files with\n"
                "# every default filled in and each variant's settings in full, as its\n"
                "# jobs received them (keys: workflow/schemas/config.schema.yaml).\n")
        yaml.dump(config, f, Dumper=_ConfigDumper, sort_keys=False)


class _ConfigDumper(yaml.SafeDumper):
    """Block mappings, lists on one line: [0, 1, 2]."""


_ConfigDumper.add_representer(list, lambda dumper, value: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", value, flow_style=True))


def check_files(paths, schema_path):
    """Parse config files, merge them in order as `snakemake --configfile`
    does, and check the result; ConfigError names the file or the key.

    Snakemake's own message for a --configfile that does not parse names no
    file and no line; this one does."""
    config = {}
    for path in paths:
        config = merge(config, read_config_file(path))
    check_config(config, schema_path)
    check_measures(config.get("similarity", {}).get("measures"))
