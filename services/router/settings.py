"""Settings of the router (section `router:` of scoremesh.yaml)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

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

    routing: dict[str, Any] | None = None
    """The routing configuration (rules, routes, splits, shadows, pipelines, admission; see
    services/router/routing_config.py); unset = the built-in ads example. Edits reload without a
    restart; `<state_dir>/routing.yaml` (written by ApplyRoutingConfig) takes precedence."""

    routing_poll_s: float = 1.0
    """How often the routing files are checked for changes (Consul KV is watched instead)."""


    max_in_flight: int = Field(default=256, ge=1)
    """Scores in progress at once in one router process; beyond, RESOURCE_EXHAUSTED at once."""

    shadow_timeout_s: float = 1.0
    """Time budget of one shadow mirror (its own, never the caller's deadline)."""

    shadow_max_running: int = Field(default=8, ge=0)
    """Mirrors in flight at once; beyond, new ones are dropped (shadow traffic goes first)."""
