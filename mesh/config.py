"""Typed settings shared by every service, the CLI and the supervisor.

Precedence, highest first: explicit values (command-line flags), `SCOREMESH_*` environment
variables, the YAML file (`scoremesh.yaml` in the working directory, or the file named by
`SCOREMESH_CONFIG`), then the defaults below. In the YAML file, shared keys sit at the top level
and each service's own keys under its name (`router:`, `inference:`, ...).

Unknown keys are errors, never silently dropped: a top-level key must be a shared setting or a
section name, and a key inside a section must be a setting of that section's class. (Environment
variables are shared by every process, so a `SCOREMESH_*` variable that one class does not know
may belong to another and is not an error.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import AliasChoices, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_CONFIG_FILE = "scoremesh.yaml"
# The per-process sections of the YAML file: the five services of the design card and the local
# supervisor. Names only: mesh imports no service.
SECTIONS = ("router", "features", "inference", "monitoring", "recovery", "supervisor")


class ConfigError(ValueError):
    """The configuration file is malformed or names a key no setting has."""


def config_file() -> Path:
    return Path(os.environ.get("SCOREMESH_CONFIG", DEFAULT_CONFIG_FILE))


class _YamlSource(PydanticBaseSettingsSource):
    """Shared top-level keys of the YAML file, overlaid with the settings class's own section."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = config_file()
        document: dict[str, Any] = {}
        if path.is_file():
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as error:
                raise ConfigError(f"{path}: not valid YAML ({error})") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path}: the top level must be a mapping")
            document = loaded
        section = getattr(settings_cls, "yaml_section", None)
        shared = MeshSettings.model_fields
        for key, value in document.items():
            if key in SECTIONS:
                if value is not None and not isinstance(value, dict):
                    raise ConfigError(f"{path}: section '{key}' must be a mapping")
            elif key not in shared:
                raise ConfigError(f"{path}: unknown key '{key}' (shared settings: {', '.join(sorted(shared))}; sections: {', '.join(SECTIONS)})")
        self._values = {k: v for k, v in document.items() if k in shared}
        own = document.get(section) or {} if section else {}
        unknown = sorted(set(own) - set(settings_cls.model_fields))
        if unknown:
            raise ConfigError(f"{path}: unknown key '{section}.{unknown[0]}' (settings of '{section}': {', '.join(sorted(settings_cls.model_fields))})")
        self._values.update(own)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


class MeshSettings(BaseSettings):
    """What every process of the mesh needs to know."""

    model_config = SettingsConfigDict(
        env_prefix="SCOREMESH_", use_attribute_docstrings=True, extra="forbid"
    )
    yaml_section: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.yaml_section is not None and cls.yaml_section not in SECTIONS:
            raise TypeError(f"{cls.__name__}.yaml_section must be one of {SECTIONS} (got {cls.yaml_section!r})")

    state_dir: Path = Path(".scoremesh")
    """Local state: registry, model repository, logs, audit log. `status` and `score` find the
    running mesh through it."""

    host: str = "127.0.0.1"
    """Address services bind to. Loopback by default; 0.0.0.0 in containers."""

    advertise_host: str | None = None
    """Address registered for others to dial; default `host` (set it when binding 0.0.0.0)."""

    port: int = 0
    """gRPC port; 0 picks a free one (one machine, many instances)."""

    metrics_port: int = 0
    """Prometheus /metrics port; 0 picks a free one."""

    discovery: Literal["local", "consul"] = "local"
    """Service discovery backend: the embedded local registry, or a Consul agent."""

    consul_host: str = "127.0.0.1"
    """Consul agent HTTP host (discovery: consul)."""

    consul_port: int = 8500
    """Consul agent HTTP port (discovery: consul)."""

    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SCOREMESH_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint"),
    )
    """OTLP gRPC endpoint for spans (e.g. Jaeger at http://127.0.0.1:4317); unset = no export."""

    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """With an OTLP endpoint: the share of traces started here that are recorded and exported
    (each costs ~0.5 ms of CPU per Score across the mesh); callers' traces follow their flag."""

    log_level: str = "INFO"
    """Root log level."""

    shutdown_grace_s: float = 5.0
    """How long a stopping server lets in-flight RPCs finish before cancelling them."""

    stall_dump_s: float = 30.0
    """When the event loop stops turning for this long, every thread's stack goes to the log
    (mesh/stalls.py): a hang shows where it is stuck. 0 turns it off."""

    heartbeat_interval_s: float = 1.0
    """How often an instance refreshes its entry in the local registry."""

    max_message_bytes: int = 4 * 1024 * 1024
    """Largest gRPC message a server accepts; bigger ones get RESOURCE_EXHAUSTED."""

    workers: int = Field(default=0, ge=0)
    """Worker processes serving this instance on its one port (SO_REUSEPORT), for every core;
    0 = picked for the machine by the service (one per few cores; one on a 2-core machine,
    where more processes only add wake-ups)."""

    balancing: Literal["p2c_ewma", "round_robin", "random", "weighted_random", "least_loaded", "fastest", "performance"] = "p2c_ewma"
    """How a client picks an instance of the service it calls (mesh.balancing)."""

    retry_max_attempts: int = Field(default=3, ge=1)
    """Attempts per call, on different instances, for retryable failures (UNAVAILABLE, or
    RESOURCE_EXHAUSTED while other instances exist)."""

    retry_budget_ratio: float = Field(default=0.2, ge=0.0)
    """Retries add at most this share of the calls of the last 10 s..."""

    retry_budget_per_second: float = Field(default=10.0, ge=0.0)
    """...plus this many per second."""

    hedging: bool = True
    """Send a second attempt to another instance when the first has not answered after the
    target's observed p95 (calls in the mesh are idempotent reads); the first answer wins."""

    hedge_budget_ratio: float = Field(default=0.1, ge=0.0)
    """Hedges add at most this share of the calls of the last 10 s (plus five per second)."""

    breaker_min_requests: int = Field(default=20, ge=1)
    """The circuit breaker judges a service on at least this many calls of the last 10 s..."""

    breaker_failure_ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    """...and opens when this share of them failed (unavailable, timed out, internal)."""

    breaker_open_s: float = Field(default=5.0, gt=0.0)
    """How long an open breaker refuses calls before letting probes through (half-open)."""

    readiness_interval_s: float = 1.0
    """How often a service re-checks whether it can do its job (its health follows)."""

    tls_ca: Path | None = None
    """CA certificate (PEM) that signs every certificate of the mesh. Set with `tls_cert` and
    `tls_key`: every server listens with TLS only and every client verifies servers against it."""

    tls_cert: Path | None = None
    """This process's certificate (PEM), presented by its server and by its clients (mTLS)."""

    tls_key: Path | None = None
    """The private key (PEM) of `tls_cert`."""

    tls_client_auth: bool = True
    """With TLS: servers refuse clients without a certificate signed by `tls_ca` (mTLS)."""

    tls_server_name: str | None = None
    """Name checked against servers' certificates instead of the dialled host (when one
    certificate covers many pods, e.g. `scoremesh`)."""

    admin_token: str | None = None
    """Bearer token of admin calls (repository load/unload, routing changes, recovery trigger,
    supervisor restart). Unset: the one `scoremesh up` keeps in <state_dir>/admin-token; with
    neither, admin calls are refused. Never logged."""

    consul_token: str | None = None
    """Consul ACL token sent with every request to the agent (discovery: consul)."""

    consul_scheme: Literal["http", "https"] = "http"
    """How to reach the Consul agent's HTTP API (https: TLS to the agent)."""

    consul_ca: Path | None = None
    """CA certificate (PEM) that verifies the Consul agent's HTTPS certificate; unset: the
    system's CAs."""

    max_concurrent_streams: int = Field(default=256, ge=1)
    """Concurrent RPCs a server allows on one client connection (HTTP/2 streams)."""

    keepalive_time_s: float = Field(default=30.0, gt=0)
    """A server pings an idle connection this often to find dead peers..."""

    keepalive_timeout_s: float = Field(default=10.0, gt=0)
    """...and closes it when a ping is not answered within this."""

    min_client_ping_interval_s: float = Field(default=10.0, gt=0)
    """Clients pinging more often than this are told to go away (GOAWAY too_many_pings)."""

    max_call_s: float = Field(default=30.0, gt=0)
    """Longest a unary call may run on a server: a call without a deadline, or with a longer
    one, is cut at this and answered DEADLINE_EXCEEDED."""

    @model_validator(mode="after")
    def _tls_complete(self) -> "MeshSettings":
        given = [name for name in ("tls_ca", "tls_cert", "tls_key") if getattr(self, name) is not None]
        if given and len(given) != 3:
            missing = sorted({"tls_ca", "tls_cert", "tls_key"} - set(given))
            raise ValueError(f"TLS needs tls_ca, tls_cert and tls_key together: {', '.join(missing)} missing")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @property
    def registry_dir(self) -> Path:
        return self.state_dir / "registry"

    @property
    def model_repository(self) -> Path:
        return self.state_dir / "models"

    @property
    def feature_dir(self) -> Path:
        """Fitted feature schemas and the embedded online store."""
        return self.state_dir / "features"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"
