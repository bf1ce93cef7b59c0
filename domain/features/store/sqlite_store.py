"""SQLite backend: one table, one JSON document per (kind, id). WAL mode, so bulk loads and
lookups do not block each other."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from domain.features.store.base import Entity, OnlineStore, check_kind

_CHUNK = 500  # SQLite's bound-parameter limit is well above this


class SqliteStore(OnlineStore):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=5.0)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS entities (kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, id))"
            )
            self._db.commit()

    def get_many(self, kind: str, ids: list[str]) -> dict[str, Entity]:
        check_kind(kind)
        found: dict[str, Entity] = {}
        unique = list(dict.fromkeys(ids))
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for entity_id, data in self._db.execute(
                    f"SELECT id, data FROM entities WHERE kind = ? AND id IN ({marks})", [kind, *chunk]
                ):
                    found[entity_id] = json.loads(data)
        return found

    def put_many(self, kind: str, rows: Iterable[tuple[str, Entity]]) -> int:
        check_kind(kind)
        batch = [(kind, entity_id, json.dumps(values)) for entity_id, values in rows]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO entities (kind, id, data) VALUES (?, ?, ?)", batch)
            self._db.commit()
        return len(batch)

    def close(self) -> None:
        with self._lock:
            self._db.close()
