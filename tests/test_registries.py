"""The config schema names exactly the datasets, models, objectives and
measures the package registers: adding one means adding it in both places."""

import inspect

import yaml

from conftest import REPO
from hourglass.data import DATASETS
from hourglass.models import ACTIVATIONS, INITS, MODELS
from hourglass.objectives import OBJECTIVES
from hourglass.references import function_at
from hourglass.similarity import MEASURES

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_schema_lists_the_registered_datasets():
    assert SCHEMA["$defs"]["data"]["properties"]["dataset"]["enum"] == list(DATASETS)


def test_schema_lists_the_registered_models_and_inits():
    model = SCHEMA["$defs"]["model"]
    assert model["properties"]["architecture"]["enum"] == list(MODELS)
    branches = [b["if"]["properties"]["architecture"]["const"] for b in model["allOf"]]
    assert branches == list(MODELS), "one schema branch per architecture, in the same order"
    assert SCHEMA["$defs"]["init"]["enum"] == list(INITS)


def test_schema_lists_the_fc_activations():
    fc = SCHEMA["$defs"]["model"]["allOf"][0]["then"]["properties"]
    assert fc["activation"]["enum"] == [a for a in ACTIVATIONS if a != "linear"]
    assert fc["latent_activation"]["enum"] == list(ACTIVATIONS)


def test_schema_lists_the_registered_measures():
    measures = SCHEMA["properties"]["similarity"]["properties"]["measures"]
    assert measures["propertyNames"]["enum"] == list(MEASURES)


JSON_TYPES = {float: "number", int: "integer", bool: "boolean", str: "string"}


def test_schema_lists_the_registered_objectives_and_their_typed_options():
    objective = SCHEMA["$defs"]["training"]["properties"]["objective"]
    assert objective["properties"]["name"]["enum"] == list(OBJECTIVES)
    branches = {branch["if"]["properties"]["name"]["const"]: branch["then"]
                for branch in objective["allOf"]}
    assert list(branches) == list(OBJECTIVES)
    for name, entry in OBJECTIVES.items():
        options = inspect.signature(function_at(entry.build)).parameters.values()
        branch = branches[name]
        assert branch["additionalProperties"] is False
        assert {key: schema.get("type") for key, schema in branch["properties"].items()
                if key != "name"} == {o.name: JSON_TYPES[o.annotation] for o in options}
        assert branch.get("required", []) == [o.name for o in options if o.default is o.empty]


def test_schema_lists_the_registered_analyses_and_findings():
    from hourglass.analyses.registry import ANALYSES
    from hourglass.findings import FINDINGS

    assert list(SCHEMA["properties"]["analyses"]["properties"]) == list(ANALYSES)
    checks = SCHEMA["properties"]["findings"]["items"]["properties"]["check"]["enum"]
    assert checks == list(FINDINGS)


def test_every_analysis_names_its_code_its_figures_drawers_and_a_caption():
    from hourglass import plots
    from hourglass.analyses.registry import ANALYSES
    from hourglass.stages import PACKAGE_DIR, STAGE_CODE

    captions = (REPO / "workflow" / "report" / "figure.rst").read_text()
    figures = [f for analysis in ANALYSES.values() for f in analysis.figures]
    assert len(figures) == len(set(figures)), "two analyses draw a figure of the same name"
    for name, analysis in ANALYSES.items():
        module, function = analysis.run.split(":")
        assert (PACKAGE_DIR / (module.removeprefix("hourglass.").replace(".", "/") + ".py")
                ).relative_to(PACKAGE_DIR).as_posix() in analysis.modules, name
        assert all((PACKAGE_DIR / m).exists() for m in analysis.modules), name
        assert STAGE_CODE[name][:-1] == list(analysis.modules)
        for figure_name, figure in analysis.figures.items():
            assert callable(getattr(plots, figure.draw)), figure.draw
            assert set(figure.tables) <= set(analysis.outputs), figure_name
            assert f'figure == "{figure_name}"' in captions, f"no caption for {figure_name}"


def test_every_finding_reads_tables_an_analysis_writes():
    from hourglass.analyses.registry import ANALYSES
    from hourglass.findings import FINDINGS

    for name, check in FINDINGS.items():
        for analysis, table in check.reads:
            assert table in ANALYSES[analysis].tables, (name, analysis, table)
        assert check.description and check.function.__doc__, name
