"""Model versions recovery has rolled back, in SQLite next to the audit log: a rollback outlives
a restart of recovery, and is applied again to any inference replica that starts (or restarts)
serving the version. Lifted by hand (Recovery/Trigger release_version). No gRPC here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mesh.sqlite_db import Database


@dataclass(frozen=True)
class RolledBack:
    model: str
    version: str
    reason: str
    since: float

    @property
    def target(self) -> str:
        return f"{self.model}:{self.version}"


def parse_version_target(target: str) -> tuple[str, str]:
    """`model:version` -> (model, version); ValueError naming what is wrong."""
    model, sep, version = target.rpartition(":")
    if not sep or not model or not version.isdigit():
        raise ValueError(f"target must be model:version with a numeric version (got {target[:60]!r})")
    return model, version


class Rollbacks:
    def __init__(self, path: Path) -> None:
        self._database = Database(
            path,
            "CREATE TABLE IF NOT EXISTS rollbacks (model TEXT, version TEXT, reason TEXT, since REAL, PRIMARY KEY (model, version))",
        )
        self._db, self._lock = self._database.connection, self._database.lock

    def add(self, entry: RolledBack) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO rollbacks VALUES (?, ?, ?, ?)", (entry.model, entry.version, entry.reason, entry.since))

    def remove(self, model: str, version: str) -> bool:
        with self._lock, self._db:
            return self._db.execute("DELETE FROM rollbacks WHERE model=? AND version=?", (model, version)).rowcount > 0

    def get(self, model: str, version: str) -> RolledBack | None:
        with self._lock:
            row = self._db.execute("SELECT model, version, reason, since FROM rollbacks WHERE model=? AND version=?", (model, version)).fetchone()
        return RolledBack(*row) if row else None

    def all(self) -> list[RolledBack]:
        with self._lock:
            return [RolledBack(*row) for row in self._db.execute("SELECT model, version, reason, since FROM rollbacks ORDER BY since")]

    def close(self) -> None:
        with self._lock:
            self._db.close()
