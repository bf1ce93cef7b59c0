"""Instances recovery has ejected from resolution (registry maintenance), in SQLite beside the
audit log: each is readmitted when its alert resolves, or at the latest `until` (a recovery
restart in between must not leave an instance out for good). No gRPC here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mesh.sqlite_db import Database


@dataclass(frozen=True)
class Ejection:
    instance_id: str
    reason: str
    until: float


class Ejections:
    def __init__(self, path: Path) -> None:
        self._database = Database(
            path,
            "CREATE TABLE IF NOT EXISTS ejections (instance_id TEXT PRIMARY KEY, reason TEXT, until REAL)",
        )
        self._db, self._lock = self._database.connection, self._database.lock

    def add(self, ejection: Ejection) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO ejections VALUES (?, ?, ?)", (ejection.instance_id, ejection.reason, ejection.until))

    def remove(self, instance_id: str) -> bool:
        with self._lock, self._db:
            return self._db.execute("DELETE FROM ejections WHERE instance_id=?", (instance_id,)).rowcount > 0

    def get(self, instance_id: str) -> Ejection | None:
        with self._lock:
            row = self._db.execute("SELECT instance_id, reason, until FROM ejections WHERE instance_id=?", (instance_id,)).fetchone()
        return Ejection(*row) if row else None

    def all(self) -> list[Ejection]:
        with self._lock:
            return [Ejection(*row) for row in self._db.execute("SELECT instance_id, reason, until FROM ejections ORDER BY until")]

    def close(self) -> None:
        with self._lock:
            self._db.close()
