"""The discovery interface every backend implements."""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Instance:
    """One running process of a service, as the registry knows it."""

    service: str
    instance_id: str
    address: str
    """host:port of its gRPC server."""
    metrics_url: str = ""
    pid: int = 0
    meta: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def workers(self) -> int:
        """Worker processes serving this instance on its port (mesh.workers)."""
        value = self.meta.get("workers", "1")
        return int(value) if value.isdigit() else 1


@dataclass(frozen=True)
class InstanceState:
    """An instance with what the registry believes about its health."""

    instance: Instance
    healthy: bool
    """Passing: alive and reporting SERVING."""
    reason: str = ""
    process_gone: bool = False
    """The backend knows the process no longer exists (not merely failing its checks)."""


class Registry(abc.ABC):
    """Register, deregister and resolve service instances. Methods block; call them from a
    thread (`asyncio.to_thread`) in async code."""

    @abc.abstractmethod
    def register(self, instance: Instance) -> None: ...

    @abc.abstractmethod
    def set_serving(self, instance: Instance, serving: bool) -> None:
        """Report the instance's health (its gRPC health status)."""

    @abc.abstractmethod
    def deregister(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def set_maintenance(self, instance: Instance, reason: str | None) -> None:
        """Eject an instance from resolution (`reason`), or readmit it (None), whatever its own
        health says: recovery's eject_instance. Ends with the process (a restart starts afresh)."""

    @abc.abstractmethod
    def resolve(self, service: str) -> list[Instance]:
        """Healthy instances of a service, in a stable order."""

    @abc.abstractmethod
    def list_all(self) -> list[InstanceState]:
        """Every known instance of every service, healthy or not."""

    def heartbeat(self, instance: Instance) -> None:  # noqa: B027 - optional hook
        """Called periodically by a live instance; backends that need liveness signals use it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and background watches."""
