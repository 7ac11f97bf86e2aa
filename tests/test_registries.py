"""The config schema names exactly the datasets, models, objectives and
measures the package registers: adding one means adding it in both places."""

import inspect

import yaml

from conftest import REPO
from hourglass.data import DATASETS
from hourglass.models import ACTIVATIONS, INITS, MODELS
from hourglass.objectives import OBJECTIVES
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
        options = inspect.signature(entry.build).parameters.values()
        branch = branches[name]
        assert branch["additionalProperties"] is False
        assert {key: schema.get("type") for key, schema in branch["properties"].items()
                if key != "name"} == {o.name: JSON_TYPES[o.annotation] for o in options}
        assert branch.get("required", []) == [o.name for o in options if o.default is o.empty]
