"""Settings of the router (section `router:` of scoremesh.yaml)."""

from __future__ import annotations

from mesh.config import MeshSettings


class RouterSettings(MeshSettings):
    yaml_section = "router"

    max_candidates: int = 1000
    """Most candidates one Score request may carry."""

    default_timeout_s: float = 2.0
    """Deadline for a Score whose caller set none; downstream calls share it."""

    telemetry_buffer: int = 10_000
    """Telemetry records held for monitoring before new ones are dropped."""

    model_catalog_max_age_s: float = 2.0
    """How long the router reuses what it learned from ModelMetadata (versions each replica
    serves, their feature schemas) before refreshing it in the background."""
