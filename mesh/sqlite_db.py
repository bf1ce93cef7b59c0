"""One SQLite file shared by a service's threads (incidents, joins, the audit log, rollbacks...):
a connection usable from any thread, a lock that serialises its use, and the schema statements
run once at open (each idempotent: CREATE ... IF NOT EXISTS)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class Database:
    def __init__(self, path: Path, *schema: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path), check_same_thread=False)
        self.lock = threading.Lock()
        with self.lock, self.connection:
            for statement in schema:
                self.connection.execute(statement)

    def close(self) -> None:
        with self.lock:
            self.connection.close()
