"""Bulk loading of the online store from a JSON-lines file:
`{"kind": "ad", "id": "ad17", "ad_ctr": 0.031}` per line (`scoremesh features load FILE`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

from domain.features.store.base import KINDS, OnlineStore


class LoadError(ValueError):
    pass


def read_entities(path: Path) -> Iterator[tuple[str, str, dict[str, float]]]:
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except ValueError as error:
                raise LoadError(f"{where}: not JSON ({error})") from None
            if not isinstance(row, dict):
                raise LoadError(f"{where}: expected an object")
            kind, entity_id = row.pop("kind", None), row.pop("id", None)
            if kind not in KINDS:
                raise LoadError(f"{where}: kind must be one of {', '.join(KINDS)} (got {kind!r})")
            if not isinstance(entity_id, str) or not entity_id:
                raise LoadError(f"{where}: id must be a non-empty string")
            values = {}
            for name, value in row.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise LoadError(f"{where}: field {name!r} must be a finite number (got {value!r})")
                values[name] = float(value)
            yield kind, entity_id, values


def load_file(store: OnlineStore, path: Path, batch_size: int = 5000) -> dict[str, int]:
    """Validate and load every line; nothing is written if any line is malformed."""
    rows = list(read_entities(path))
    counts = {kind: 0 for kind in KINDS}
    for kind in KINDS:
        selected = [(entity_id, values) for k, entity_id, values in rows if k == kind]
        for start in range(0, len(selected), batch_size):
            counts[kind] += store.put_many(kind, selected[start : start + batch_size])
    return counts


def write_entities(path: Path, tables: dict[str, dict[str, dict[str, float]]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w") as out:
        for kind, table in tables.items():
            for entity_id, values in table.items():
                out.write(json.dumps({"kind": kind, "id": entity_id, **values}) + "\n")
                count += 1
    return count
