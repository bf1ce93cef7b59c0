"""The layer contracts (pyproject's [tool.importlinter], checked by `lint-imports` in the test
command) cover every service module: each is either part of its service's gRPC layer or listed
as gRPC-free code, so a new module cannot slip past the contracts unclassified."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRPC_LAYER = {"__init__", "__main__", "app", "servicer", "converters", "clients"}


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_service_module_is_grpc_layer_or_declared_grpc_free():
    grpc_free = set(next(c for c in _contracts() if c["type"] == "forbidden" and "grpc" in c["forbidden_modules"])["source_modules"])
    unclassified = []
    for path in sorted((ROOT / "services").glob("*/*.py")):
        module = f"services.{path.parent.name}.{path.stem}"
        if path.stem not in GRPC_LAYER and module not in grpc_free:
            unclassified.append(module)
    assert unclassified == [], "add these to the gRPC-free contract in pyproject.toml (or make them part of the gRPC layer)"
    for module in grpc_free:
        if module.startswith("services."):
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{module} is listed but does not exist"


def test_the_contracts_the_design_asks_for_are_declared():
    names = " / ".join(c["name"] for c in _contracts())
    for phrase in ("Arrows point down", "import neither grpc nor generated code", "Services reach each other only over gRPC", "No serving process imports offline training"):
        assert phrase in names
