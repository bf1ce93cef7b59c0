"""Versioned ensemble weights beside a model version: `<version>/ensemble-weights/<n>.json`, each
a complete set of combination weights with who wrote it, when and from what evidence. The newest
valid one is what the version serves (inference replicas pick a new one up without a restart,
and a restarted replica loads it); the trained weights in config.yaml are number 0. A rollback
is a new number holding the trained weights again: history is never rewritten. No gRPC here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from domain.models.repository import LoadedModel, ModelLoadError

OVERRIDES_DIR = "ensemble-weights"
WEIGHTED_METHODS = ("weighted_average", "logit_averaging")
"""The combinations whose weights can be learned online (stacking has its own meta-model)."""


@dataclass(frozen=True)
class WeightsVersion:
    number: int
    """0: the trained weights of config.yaml."""
    weights: dict[str, float]
    """Member name -> weight."""
    source: str = "training"
    """training, online_learner, rollback or operator."""
    reason: str = ""
    created_at: float = 0.0



def _numbered(version_dir: Path) -> list[tuple[int, Path]]:
    folder = version_dir / OVERRIDES_DIR
    if not folder.is_dir():
        return []
    return sorted((int(p.stem), p) for p in folder.glob("*.json") if p.stem.isdigit())


def newest_number(version_dir: Path) -> int:
    """The newest weights number written for a version (0 if none): one directory listing."""
    numbered = _numbered(version_dir)
    return numbered[-1][0] if numbered else 0


def read_version(path: Path, number: int, members: tuple[str, ...]) -> WeightsVersion:
    """One weights file, validated against the members it must name."""
    try:
        document = json.loads(path.read_text())
        weights = {str(k): float(v) for k, v in document["weights"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelLoadError(f"{path}: not a weights document ({type(error).__name__}: {error})") from None
    if set(weights) != set(members):
        raise ModelLoadError(f"{path}: weights name {sorted(weights)}, the ensemble's members are {list(members)}")
    if not all(math.isfinite(w) and w > 0 for w in weights.values()):
        raise ModelLoadError(f"{path}: every weight must be a finite number > 0")
    return WeightsVersion(number, weights, str(document.get("source", "")), str(document.get("reason", "")),
                          float(document.get("created_at", 0.0)))


def history(version_dir: Path, members: tuple[str, ...]) -> list[WeightsVersion]:
    """Every valid weights version written, oldest first (an invalid file is left out)."""
    out = []
    for number, path in _numbered(version_dir):
        try:
            out.append(read_version(path, number, members))
        except ModelLoadError:
            continue
    return out


def write_version(version_dir: Path, weights: dict[str, float], source: str, reason: str, members: tuple[str, ...]) -> WeightsVersion:
    """The next weights number, written whole or not at all (staged, then linked under a name no
    other writer can take)."""
    if set(weights) != set(members) or not all(math.isfinite(w) and w > 0 for w in weights.values()):
        raise ValueError(f"weights: one finite number > 0 for each of {list(members)}")
    folder = version_dir / OVERRIDES_DIR
    folder.mkdir(exist_ok=True)
    now = time.time()
    document = {"weights": {m: round(float(weights[m]), 6) for m in members}, "source": source, "reason": reason[:1000], "created_at": now}
    staging = folder / f".staging-{os.getpid()}-{time.monotonic_ns()}"
    staging.write_text(json.dumps(document, indent=2) + "\n")
    try:
        while True:
            number = newest_number(version_dir) + 1
            try:
                os.link(staging, folder / f"{number}.json")  # fails if another writer took the number
                break
            except FileExistsError:
                continue
    finally:
        staging.unlink()
    return WeightsVersion(number, document["weights"], source, document["reason"], now)


def with_weights(model: LoadedModel, version: WeightsVersion) -> LoadedModel:
    """The model combining its members with `version`'s weights (its kernels' prepared forms
    rebuilt on first use)."""
    packed = model.packed
    if packed.combine.method not in WEIGHTED_METHODS:
        raise ModelLoadError(f"{model.name} v{model.version}: its {packed.combine.method} combination has no weights to set")
    ordered = tuple(float(version.weights[m]) for m in packed.member_names)
    device = packed.weights.device if packed.weights is not None else "cpu"
    packed = dataclasses.replace(packed, weights=torch.tensor(ordered, dtype=torch.float32, device=device),
                                 combine=dataclasses.replace(packed.combine, weights=ordered), prepared={})
    return dataclasses.replace(model, packed=packed, weights_version=version.number)


def apply_newest(model: LoadedModel, version_dir: Path, strict: bool = False) -> LoadedModel:
    """The model with the newest weights written for it, if any. `strict` (the poller, which
    has weights serving already): a newest file that is invalid is an error; otherwise (a load)
    the newest valid one serves, so a bad file never keeps a version from loading."""
    numbered = _numbered(version_dir)
    if not numbered or model.packed.combine.method not in WEIGHTED_METHODS:
        return model
    if strict:
        number, path = numbered[-1]
        return with_weights(model, read_version(path, number, model.packed.member_names))
    valid = history(version_dir, model.packed.member_names)
    return with_weights(model, valid[-1]) if valid else model
