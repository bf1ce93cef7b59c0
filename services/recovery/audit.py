"""The audit log of recovery actions, in SQLite (the embedded default): every action with its
time, what set it off, target, result and duration survives restarts. Listeners (WatchActions)
hear each entry as it is written. No gRPC here."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class AuditEntry:
    action_id: str
    timestamp: float
    action: str
    service: str
    instance_id: str
    reason: str
    outcome: str
    duration_s: float = 0.0
    """From the decision to the verified outcome (the health check passing, or giving up)."""
    trigger: str = "health_check"
    """What set it off: health_check, manual, or an alert (rule name)."""
    dry_run: bool = False


_COLUMNS = [f.name for f in fields(AuditEntry)]


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        self.listeners: list[Callable[[AuditEntry], None]] = []
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS actions (seq INTEGER PRIMARY KEY, action_id TEXT, timestamp REAL, action TEXT,"
                " service TEXT, instance_id TEXT, reason TEXT, outcome TEXT, duration_s REAL, trigger TEXT, dry_run INTEGER)"
            )

    def append(self, entry: AuditEntry) -> None:
        with self._lock, self._db:  # committed before anyone hears of it
            self._db.execute(f"INSERT INTO actions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", astuple(entry))
        for listener in list(self.listeners):
            listener(entry)

    def entries(self, limit: int = 100) -> list[AuditEntry]:
        """The newest `limit` entries, oldest first."""
        if limit <= 0:
            return []
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM actions ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [AuditEntry(*row[:-1], dry_run=bool(row[-1])) for row in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            self._db.close()
