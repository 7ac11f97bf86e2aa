"""The config schema names exactly the datasets, models and measures the
package registers: adding one means adding it in both places."""

import yaml

from conftest import REPO
from hourglass.data import DATASETS
from hourglass.models import INITS, MODELS
from hourglass.similarity import MEASURES

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_schema_lists_the_registered_datasets():
    assert SCHEMA["$defs"]["data"]["properties"]["dataset"]["enum"] == list(DATASETS)


def test_schema_lists_the_registered_models_and_inits():
    model = SCHEMA["$defs"]["model"]["properties"]
    assert model["architecture"]["enum"] == list(MODELS)
    assert model["init"]["enum"] == list(INITS)


def test_schema_lists_the_registered_measures():
    measures = SCHEMA["properties"]["similarity"]["properties"]["measures"]
    assert measures["propertyNames"]["enum"] == list(MEASURES)
