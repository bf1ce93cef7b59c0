"""The online feature store: user and ad features by id, merged into requests before transforms.

Backends: SQLite (embedded default) and Redis. `open_store` picks one from settings.
"""

from __future__ import annotations

from pathlib import Path

from domain.features.store.base import KINDS, OnlineStore


def open_store(backend: str, sqlite_path: Path, redis_url: str, timeout_s: float) -> OnlineStore | None:
    if backend == "none":
        return None
    if backend == "redis":
        from domain.features.store.redis_store import RedisStore

        return RedisStore(redis_url, timeout_s)
    from domain.features.store.sqlite_store import SqliteStore

    return SqliteStore(sqlite_path)


__all__ = ["KINDS", "OnlineStore", "open_store"]
