from __future__ import annotations

import pytest

from domain.features.schema import load_spec
from domain.features.schema_store import SchemaStore
from training.synthetic import generate


@pytest.fixture()
def feature_dir(tmp_path):
    """A feature store folder holding one fitted version (1) of the ads schema."""
    directory = tmp_path / "features"
    SchemaStore(directory).save(load_spec("ads").fit(generate(2000, seed=3).batch, "0"))
    return directory
