from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from domain.models.repository import ModelLoadError, load_latest, load_model, publish, stage_model, scan

D = 4


def _config(**overrides):
    config = {
        "name": "toy", "version": 1, "input_dim": D,
        "feature_schema": {"name": "ads", "version": "1"},
        "ensemble": {"method": "weighted_average", "weights": [1.0, 3.0]},
        "members": [{"name": "lr", "hidden": 0}, {"name": "mlp", "hidden": 2, "calibration": {"a": 2.0, "b": 0.5}}],
    }
    config.update(overrides)
    return config


def _tensors():
    torch.manual_seed(1)
    return {
        "lr.linear.weight": torch.randn(1, D), "lr.linear.bias": torch.randn(1),
        "mlp.hidden.weight": torch.randn(2, D), "mlp.hidden.bias": torch.randn(2),
        "mlp.output.weight": torch.randn(1, 2), "mlp.output.bias": torch.randn(1),
    }


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    return publish(stage_model(tmp_path, _config(), _tensors()))


def test_written_model_loads_and_packs(model_dir: Path):
    model = load_model(model_dir)
    assert (model.name, model.version, model.schema) == ("toy", "1", ("ads", "1"))
    assert model.packed.member_names == ("lr", "mlp") and model.packed.hidden_sizes == (0, 2)
    assert model.packed.cal_a.tolist() == [1.0, 2.0] and model.packed.weights.tolist() == [1.0, 3.0]
    assert set(load_latest(model_dir.parent.parent)) == {"toy"}


def test_staged_versions_are_invisible_until_published(tmp_path: Path):
    staging = stage_model(tmp_path, _config(), _tensors())
    assert scan(tmp_path) == {}
    publish(staging)
    assert [p.name for p in scan(tmp_path)["toy"]] == ["1"]


def _break(model_dir: Path, config=None, tensors=None):
    if config is not None:
        (model_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if tensors is not None:
        save_file(tensors, str(model_dir / "model.safetensors"))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: (d / "model.safetensors").unlink(), r"model\.safetensors: missing"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x10\x00garbage"), r"model\.safetensors: corrupt safetensors file"),
        (lambda d: (d / "config.yaml").write_text("name: [unclosed"), r"config\.yaml: not valid YAML"),
        (lambda d: _break(d, config={k: v for k, v in _config().items() if k != "input_dim"}), r"config\.yaml: missing field 'input_dim'"),
        (lambda d: _break(d, config=_config(input_dim=5)), r"tensor 'lr\.linear\.weight' has shape \[1, 4\], expected \[1, 5\]"),
        (lambda d: _break(d, tensors={k: v for k, v in _tensors().items() if k != "mlp.hidden.bias"}), r"missing tensor 'mlp\.hidden\.bias'"),
        (lambda d: _break(d, tensors={**_tensors(), "lr.linear.bias": torch.tensor([float("nan")])}), r"tensor 'lr\.linear\.bias' holds NaN"),
        (lambda d: _break(d, config=_config(ensemble={"method": "median"})), r"ensemble: ensemble method must be one of"),
        (lambda d: _break(d, config=_config(ensemble={"method": "weighted_average", "weights": [1.0]})), r"ensemble weights: 1 given for 2 members"),
        (lambda d: _break(d, config=_config(members=[{"name": "lr", "hidden": -1}])), r"members\[0\]: field 'hidden' must be an integer >= 0"),
    ],
)
def test_load_errors_name_the_file_and_field(model_dir: Path, change, message):
    change(model_dir)
    with pytest.raises(ModelLoadError, match=message):
        load_model(model_dir)
