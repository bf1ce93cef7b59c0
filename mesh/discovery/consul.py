"""Consul backend through py-consul.

Each instance registers as a Consul service with a gRPC health check (Consul calls our
grpc.health.v1 endpoint, over TLS when the mesh runs on it) and DeregisterCriticalServiceAfter, so a dead instance is removed by
Consul itself. Resolution asks for passing instances only; `watch` keeps a per-service cache fresh
with blocking queries (X-Consul-Index), so resolving does not hit Consul on every call.
"""

from __future__ import annotations

import logging
import threading

import consul

from mesh.discovery.base import Instance, InstanceState, Registry

log = logging.getLogger(__name__)

TAG = "scoremesh"
MAINTENANCE_CHECK = "_service_maintenance:"
"""The check Consul adds to a service in maintenance mode (its Notes hold the reason)."""


class ConsulRegistry(Registry):
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8500,
        check_interval: str = "1s",
        deregister_after: str = "1m",
        watch_wait: str = "5s",
        client: consul.Consul | None = None,
        grpc_tls: bool = False,
    ) -> None:
        """`client`: a configured py-consul client (ACL token, HTTPS: mesh.discovery.consul_client);
        default: plain HTTP to host:port without a token."""
        self.client = client or consul.Consul(host=host, port=port)
        self.grpc_tls = grpc_tls
        self.check_interval = check_interval
        self.deregister_after = deregister_after
        self.watch_wait = watch_wait
        self._cache: dict[str, list[Instance]] = {}
        self._watchers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @staticmethod
    def _to_instance(entry: dict) -> Instance:
        service = entry["Service"]
        meta = dict(service.get("Meta") or {})
        return Instance(
            service=service["Service"],
            instance_id=service["ID"],
            address=f"{service['Address']}:{service['Port']}",
            metrics_url=meta.pop("metrics_url", ""),
            pid=int(meta.pop("pid", "0") or 0),
            meta=meta,
        )

    def register(self, instance: Instance) -> None:
        host, port = instance.address.rsplit(":", 1)
        self.client.agent.service.register(
            instance.service,
            service_id=instance.instance_id,
            address=host,
            port=int(port),
            tags=[TAG],
            meta={**instance.meta, "metrics_url": instance.metrics_url, "pid": str(instance.pid)},
            check=consul.Check.grpc(
                instance.address, self.check_interval, deregister=self.deregister_after,
                # A mesh on mTLS: the agent checks over TLS with its own client certificate.
                use_tls=True if self.grpc_tls else None,
            ),
        )

    def set_serving(self, instance: Instance, serving: bool) -> None:
        # Consul learns the health itself through the gRPC check; nothing to push.
        return None

    def deregister(self, instance_id: str) -> None:
        self.client.agent.service.deregister(instance_id)

    def set_maintenance(self, instance: Instance, reason: str | None) -> None:
        # Consul's service maintenance mode: a critical check, so `passing` queries leave it out.
        # `enable` goes as "true"/"false", the spelling Consul's docs use (py-consul would send
        # Python's "True"/"False", which Consul's ParseBool also takes).
        self.client.agent.service.maintenance(instance.instance_id, "true" if reason is not None else "false", reason)

    def _query(self, service: str, index: str | None = None) -> tuple[str, list[Instance]]:
        new_index, entries = self.client.health.service(
            service, passing=True, index=index, wait=self.watch_wait if index else None
        )
        return new_index, [self._to_instance(e) for e in entries]

    def resolve(self, service: str) -> list[Instance]:
        with self._lock:
            if service in self._cache:
                return list(self._cache[service])
        _, instances = self._query(service)
        return sorted(instances, key=lambda i: i.instance_id)

    def watch(self, service: str) -> None:
        """Keep `service`'s passing instances cached, refreshed by blocking queries."""
        with self._lock:
            if service in self._watchers:
                return
            index, instances = self._query(service)
            self._cache[service] = sorted(instances, key=lambda i: i.instance_id)
            thread = threading.Thread(
                target=self._watch_loop, args=(service, index), daemon=True, name=f"watch-{service}"
            )
            self._watchers[service] = thread
        thread.start()

    def _watch_loop(self, service: str, index: str) -> None:
        while not self._closed.is_set():
            try:
                index, instances = self._query(service, index)
            except Exception:  # agent restarting, network blip: keep the last view
                log.warning("consul watch of %s failed; retrying", service, exc_info=True)
                self._closed.wait(1.0)
                continue
            with self._lock:
                self._cache[service] = sorted(instances, key=lambda i: i.instance_id)

    def list_all(self) -> list[InstanceState]:
        states: list[InstanceState] = []
        _, services = self.client.catalog.services()
        for name, tags in sorted(services.items()):
            if TAG not in (tags or []):
                continue
            _, entries = self.client.health.service(name)
            for entry in entries:
                failing = [c for c in entry.get("Checks", []) if c.get("Status") != "passing"]
                reason = "; ".join(f"{c.get('Name')}: {c.get('Status')}" for c in failing)
                if failing and all(str(c.get("CheckID", "")).startswith(MAINTENANCE_CHECK) for c in failing):
                    reason = f"ejected: {failing[0].get('Notes', '')}"  # worded as the local registry words it
                states.append(InstanceState(self._to_instance(entry), not failing, reason))
        return states

    def close(self) -> None:
        self._closed.set()
