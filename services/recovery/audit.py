"""The append-only audit log of recovery actions (JSON lines in the state directory)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
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


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, entry: AuditEntry) -> None:
        line = json.dumps(asdict(entry)) + "\n"
        with self._lock, open(self.path, "a") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def entries(self, limit: int = 100) -> list[AuditEntry]:
        if not self.path.is_file():
            return []
        with self._lock:
            lines = self.path.read_text().splitlines()
        entries = []
        for line in lines[-limit:] if limit > 0 else []:
            try:
                entries.append(AuditEntry(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a torn last line after a crash is skipped, never fatal
        return entries
