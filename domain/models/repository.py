"""The model repository: `<repo>/<model>/<version>/{config.yaml, model.safetensors}`.

Never pickle: weights are safetensors, everything else is YAML. Loading validates the files and
every field it uses, and fails with a message naming the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kernels.packing import CombineSpec, MemberWeights, PackedEnsemble, pack

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"


class ModelLoadError(ValueError):
    pass


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    config: dict[str, Any]
    packed: PackedEnsemble
    weights_version: int = 0
    """Which ensemble weights it combines with (domain.models.ensemble_weights; 0: the trained)."""

    @property
    def schema(self) -> tuple[str, str]:
        schema = self.config["feature_schema"]
        return str(schema["name"]), str(schema["version"])


def version_dirs(model_dir: Path) -> list[Path]:
    """Numeric version folders, oldest first."""
    return sorted(
        (p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )


def next_version(repo: Path, name: str) -> int:
    model_dir = repo / name
    if not model_dir.is_dir():
        return 1
    existing = version_dirs(model_dir)
    return int(existing[-1].name) + 1 if existing else 1


def stage_model(repo: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write one version into a hidden staging folder (invisible to loaders until published)."""
    target = repo / config["name"] / str(config["version"])
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    staging = target.parent / f".staging-{target.name}"
    staging.mkdir(parents=True, exist_ok=False)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(staging / WEIGHTS_FILE))
    write_config(staging, config)
    return staging


def write_config(version_dir: Path, config: dict[str, Any]) -> None:
    (version_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))


def publish(staging: Path) -> Path:
    """Make a staged version visible: one rename, so it appears complete or not at all."""
    target = staging.parent / staging.name.removeprefix(".staging-")
    staging.rename(target)
    return target


def _number(value: Any, where: str) -> float:
    """A finite number from the config file, or a load error naming where it was."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelLoadError(f"{where}: must be a finite number (got {value!r:.40})")
    return float(value)


def _field(document: dict, key: str, where: str) -> Any:
    if not isinstance(document, dict) or key not in document:
        raise ModelLoadError(f"{where}: missing field '{key}'")
    return document[key]


def load_model(version_dir: Path) -> LoadedModel:
    config_path = version_dir / CONFIG_FILE
    weights_path = version_dir / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelLoadError(f"{path}: missing")
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as error:
        raise ModelLoadError(f"{config_path}: not valid YAML ({error})") from None
    where = str(config_path)
    name = str(_field(config, "name", where))
    version = str(_field(config, "version", where))
    input_dim = _field(config, "input_dim", where)
    if not isinstance(input_dim, int) or input_dim <= 0:
        raise ModelLoadError(f"{where}: field 'input_dim' must be a positive integer")
    schema = _field(config, "feature_schema", where)
    _field(schema, "name", f"{where}: feature_schema")
    _field(schema, "version", f"{where}: feature_schema")
    ensemble = _field(config, "ensemble", where)
    try:
        combine = CombineSpec(
            method=str(_field(ensemble, "method", f"{where}: ensemble")),
            weights=tuple(_number(w, f"{where}: ensemble.weights") for w in ensemble.get("weights", ())),
            vote_threshold=_number(ensemble.get("vote_threshold", 0.5), f"{where}: ensemble.vote_threshold"),
            stacking_weights=tuple(_number(w, f"{where}: ensemble.stacking_weights") for w in ensemble.get("stacking_weights", ())),
            stacking_bias=_number(ensemble.get("stacking_bias", 0.0), f"{where}: ensemble.stacking_bias"),
        )
    except ValueError as error:
        raise ModelLoadError(f"{where}: ensemble: {error}") from None
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelLoadError(f"{weights_path}: corrupt safetensors file ({error})") from None

    def tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key not in tensors:
            raise ModelLoadError(f"{weights_path}: missing tensor '{key}'")
        value = tensors[key]
        if tuple(value.shape) != shape:
            raise ModelLoadError(f"{weights_path}: tensor '{key}' has shape {list(value.shape)}, expected {list(shape)}")
        if not torch.isfinite(value).all():
            raise ModelLoadError(f"{weights_path}: tensor '{key}' holds NaN or infinity")
        return value.float()

    members = []
    for i, spec in enumerate(_field(config, "members", where)):
        member_where = f"{where}: members[{i}]"
        member_name = str(_field(spec, "name", member_where))
        hidden = _field(spec, "hidden", member_where)
        if not isinstance(hidden, int) or hidden < 0:
            raise ModelLoadError(f"{member_where}: field 'hidden' must be an integer >= 0")
        calibration = spec.get("calibration", {}) or {}
        cal_a = _number(calibration.get("a", 1.0), f"{member_where}: calibration.a")
        cal_b = _number(calibration.get("b", 0.0), f"{member_where}: calibration.b")
        if hidden == 0:
            weight = tensor(f"{member_name}.linear.weight", (1, input_dim)).reshape(input_dim)
            bias = tensor(f"{member_name}.linear.bias", (1,))
            members.append(MemberWeights(member_name, None, None, weight, float(bias), cal_a, cal_b))
        else:
            members.append(
                MemberWeights(
                    member_name,
                    tensor(f"{member_name}.hidden.weight", (hidden, input_dim)),
                    tensor(f"{member_name}.hidden.bias", (hidden,)),
                    tensor(f"{member_name}.output.weight", (1, hidden)).reshape(hidden),
                    float(tensor(f"{member_name}.output.bias", (1,))),
                    cal_a,
                    cal_b,
                )
            )
    if not members:
        raise ModelLoadError(f"{where}: field 'members' must list at least one member")
    try:
        packed = pack(members, input_dim, combine)
    except ValueError as error:
        raise ModelLoadError(f"{where}: {error}") from None
    return LoadedModel(name=name, version=version, config=config, packed=packed)


def scan(repo: Path) -> dict[str, list[Path]]:
    """Model name -> its version folders, oldest first."""
    if not repo.is_dir():
        return {}
    return {
        d.name: version_dirs(d)
        for d in sorted(repo.iterdir())
        if d.is_dir() and not d.name.startswith(".") and version_dirs(d)
    }


def load_latest(repo: Path) -> dict[str, LoadedModel]:
    """The newest version of every model in the repository."""
    return {name: load_model(versions[-1]) for name, versions in scan(repo).items()}
