from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.inference.engine import InferenceEngine
from services.inference.repository import ModelLoadError, publish, stage_model

from services.features.schema_store import SchemaStore


@pytest.fixture()
def D(feature_dir) -> int:
    return SchemaStore(feature_dir).load("ads", "1").dim


def _write(repo: Path, input_dim: int, name="toy", version=1, schema_version="1"):
    config = {
        "name": name, "version": version, "input_dim": input_dim,
        "feature_schema": {"name": "ads", "version": schema_version},
        "ensemble": {"method": "averaging"},
        "members": [{"name": "lr", "hidden": 0}],
    }
    publish(stage_model(repo, config, {"lr.linear.weight": torch.full((1, input_dim), 0.1), "lr.linear.bias": torch.tensor([-0.5])}))


def test_engine_serves_the_newest_version(tmp_path, feature_dir, D):
    _write(tmp_path / "m", D, version=1)
    _write(tmp_path / "m", D, version=2)
    engine = InferenceEngine(tmp_path / "m", feature_dir)
    with pytest.raises(Unavailable, match="still loading"):
        engine.get("toy")
    engine.load()
    engine.warm_up()
    model = engine.get("toy")
    assert model.version == "2"
    x = np.ones((3, D), dtype=np.float32)
    out = engine.run(model, x)
    expected = 1 / (1 + np.exp(-(0.1 * D - 0.5)))
    np.testing.assert_allclose(out["score"], [expected] * 3, rtol=1e-6)
    np.testing.assert_allclose(out["confidence"], [(1.0 + expected) / 2] * 3, rtol=1e-6)
    x.setflags(write=False)
    engine.run(model, x)  # read-only request buffers are fine


def test_engine_errors(tmp_path, feature_dir, D):
    _write(tmp_path / "m", D)
    engine = InferenceEngine(tmp_path / "m", feature_dir)
    engine.load()
    engine.warm_up()
    with pytest.raises(NotFound, match="model 'other' is not served here"):
        engine.get("other")
    with pytest.raises(NotFound, match="model 'toy' has no ready version '7'"):
        engine.get("toy", "7")
    model = engine.get("toy")
    with pytest.raises(InvalidArgument, match=rf"input 'features': shape must be \[-1, {D}\] \(got \[2, 3\]\)"):
        engine.run(model, np.zeros((2, 3), dtype=np.float32))
    bad = np.zeros((1, D), dtype=np.float32)
    bad[0, 4] = np.nan
    with pytest.raises(InvalidArgument, match="holds NaN or infinity"):
        engine.run(model, bad)
    engine.check_schema(model, "ads/1")
    engine.check_schema(model, "")  # not declared: plain protocol clients
    with pytest.raises(FailedPrecondition) as mismatch:
        engine.check_schema(model, "ads/2")
    assert mismatch.value.reason == "FEATURE_SCHEMA_MISMATCH" and mismatch.value.info == {"expected": "ads/1", "got": "ads/2"}


def test_engine_refuses_an_unknown_schema_or_dimension(tmp_path, feature_dir, D):
    _write(tmp_path / "a", D, schema_version="99")
    with pytest.raises(ModelLoadError, match="feature_schema: unknown feature schema ads version 99"):
        InferenceEngine(tmp_path / "a", feature_dir).load()
    _write(tmp_path / "b", 12)
    with pytest.raises(ModelLoadError, match=f"input_dim 12 != schema ads v1 dimension {D}"):
        InferenceEngine(tmp_path / "b", feature_dir).load()
    with pytest.raises(ModelLoadError, match="no models"):
        InferenceEngine(tmp_path / "empty", feature_dir).load()
