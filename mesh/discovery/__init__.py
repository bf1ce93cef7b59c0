"""Service discovery: one interface (`Registry`), a local and a Consul backend."""

from __future__ import annotations

from mesh.config import MeshSettings
from mesh.discovery.base import Instance, InstanceState, Registry
from mesh.discovery.local import LocalRegistry


def consul_client(settings: MeshSettings):
    """A py-consul client for the configured agent: its ACL token on every request
    (X-Consul-Token), HTTPS verified against `consul_ca` when the scheme asks for it."""
    import consul

    verify = str(settings.consul_ca) if settings.consul_ca else True
    return consul.Consul(host=settings.consul_host, port=settings.consul_port, token=settings.consul_token,
                         scheme=settings.consul_scheme, verify=verify)


def open_registry(settings: MeshSettings) -> Registry:
    if settings.discovery == "consul":
        from mesh.discovery.consul import ConsulRegistry

        return ConsulRegistry(client=consul_client(settings), grpc_tls=settings.tls_ca is not None)
    return LocalRegistry(settings.registry_dir)


__all__ = ["Instance", "InstanceState", "Registry", "LocalRegistry", "consul_client", "open_registry"]
