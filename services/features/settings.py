"""Settings of the features service (section `features:` of scoremesh.yaml)."""

from __future__ import annotations

from typing import Literal

from mesh.config import MeshSettings


class FeatureSettings(MeshSettings):
    yaml_section = "features"

    schema_name: str = "ads"
    """Feature schema family served; its fitted versions live in <state_dir>/features/<name>/."""

    max_candidates: int = 1000
    """Most candidates one Extract accepts."""

    store_backend: Literal["sqlite", "redis", "none"] = "sqlite"
    """Online feature store: embedded SQLite (<state_dir>/features/online.sqlite), Redis, or none."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis connection URL (store_backend: redis)."""

    store_timeout_ms: float = 50.0
    """Longest a request waits for the online store before using the schema's defaults."""

    store_cache_ttl_s: float = 60.0
    """How long store values (and the absence of an id) are reused from memory; a store update
    reaches requests within this time. 0 = every request asks the store."""

    store_cache_entries: int = 100_000
    """Most ids per kind (ad, user) the in-process cache holds (least recently used go first)."""
