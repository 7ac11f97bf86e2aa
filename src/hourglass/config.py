"""Checking a study config against the schema, with messages that name the key."""

from pathlib import Path

import yaml
from jsonschema import Draft202012Validator


class ConfigError(ValueError):
    pass


def read_config_file(path):
    """A config file read with YAML's safe loader (no Python objects), or
    ConfigError naming the file and why it cannot be read, or the line where
    it does not parse."""
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except OSError as error:  # missing, a folder, unreadable: the OS's reason, lower-cased
        reason = (error.strerror or str(error)).lower()
        raise ConfigError(f"config file {path} cannot be read: {reason}") from error
    except (UnicodeDecodeError, yaml.reader.ReaderError) as error:  # binary, HDF5, latin-1
        reason = " ".join(str(error).split())  # the reader's message spans two lines
        raise ConfigError(f"config file {path} is not a YAML text file (UTF-8, printable): "
                          f"{reason}. Is it the right file?") from error
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


def merge(base, override):
    """`override` merged into `base` key by key, as Snakemake merges config files."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (merge(out[key], value) if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


def load_schema(path):
    with open(path) as f:
        return yaml.safe_load(f)


def describe_error(error):
    """One line per problem: where in the config, what is wrong, what is allowed."""
    where = ".".join(str(p) for p in error.absolute_path)
    prefix = f"{where}: " if where else ""
    schema = error.schema
    if error.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        keys = ", ".join(f"{where + '.' if where else ''}{k}" for k in unknown)
        return f"unknown key {keys}; allowed here: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{prefix}{error.instance!r} is not known; choose one of: " + ", ".join(
            map(str, schema["enum"]))
    hint = f" ({schema['description'].strip()})" if "description" in schema else ""
    return f"{prefix}{error.message}{hint}"


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


def check_config(config, schema_path):
    """Raise ConfigError listing every problem of `config`, or return None."""
    schema = load_schema(schema_path)
    errors = sorted(Draft202012Validator(schema).iter_errors(config),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        problems = "\n".join(f"  - {describe_error(e)}" for e in errors)
        raise ConfigError(f"invalid config:\n{problems}\nEvery key is described in "
                          f"{Path(schema_path).name} (workflow/schemas/).")


def write_effective_config(config, path):
    """Write a study's effective config (its files with every default filled
    in, as validated) to `path` as YAML, for the results and the report."""
    from hourglass.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(f"# The effective config of study {config['study']}: its config files with\n"
                "# every default filled in (keys: workflow/schemas/config.schema.yaml).\n")
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
