"""Service discovery: one interface (`Registry`), a local and a Consul backend."""

from __future__ import annotations

from mesh.config import MeshSettings
from mesh.discovery.base import Instance, InstanceState, Registry
from mesh.discovery.local import LocalRegistry


def open_registry(settings: MeshSettings) -> Registry:
    if settings.discovery == "consul":
        from mesh.discovery.consul import ConsulRegistry

        return ConsulRegistry(settings.consul_host, settings.consul_port)
    return LocalRegistry(settings.registry_dir)


__all__ = ["Instance", "InstanceState", "Registry", "LocalRegistry", "open_registry"]
