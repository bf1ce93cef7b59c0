"""Recovery's calls to other services, per instance: every inference replica's repository (a
rollback must reach all of them, not whichever the balancer picks), and every monitoring
instance's alert stream (each evaluates the share of telemetry it receives)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np

import grpc

from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from domain.inference_protocol import NOT_LOADED_BY_POLICY
from mesh.discovery import Registry
from mesh.inference_client import encode_request
from mesh.tls import Channels
from scoremesh.v1 import features_pb2, features_pb2_grpc, monitoring_pb2, monitoring_pb2_grpc
from services.recovery.policies import Alert
from services.recovery.responder import VersionControl

log = logging.getLogger(__name__)
CALL_TIMEOUT_S = 10.0


class _PerAddress:
    """One channel per address, reused; closed with the service; admin calls carry the token."""

    def __init__(self, channels: Channels, admin_token: str | None = None) -> None:
        self.channels = channels
        self._open: dict[str, grpc.aio.Channel] = {}
        self.metadata = (("authorization", f"Bearer {admin_token}"),) if admin_token else ()

    def channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._open:
            self._open[address] = self.channels.aio(address)
        return self._open[address]

    async def close(self) -> None:
        for channel in self._open.values():
            await channel.close()
        self._open.clear()


class InferenceReplicas(_PerAddress):
    """VersionControl over every registered inference instance."""

    def __init__(self, registry: Registry, channels: Channels, admin_token: str | None) -> None:
        super().__init__(channels, admin_token)
        self.registry = registry

    async def _replicas(self) -> list[tuple[str, pb_grpc.GRPCInferenceServiceStub]]:
        states = await asyncio.to_thread(self.registry.list_all)
        return [(s.instance.instance_id, pb_grpc.GRPCInferenceServiceStub(self.channel(s.instance.address)))
                for s in states if s.instance.service == "inference" and not s.process_gone]

    async def hold(self, model: str, version: str, reason: str) -> list[str]:
        request = pb.RepositoryModelUnloadRequest(model_name=model)
        request.parameters["version"].string_param = version
        request.parameters["reason"].string_param = reason

        async def one(instance_id, stub):
            try:
                await stub.RepositoryModelUnload(request, timeout=CALL_TIMEOUT_S, metadata=self.metadata)
            except grpc.aio.AioRpcError as error:
                return f"{instance_id}: {error.code().name} {error.details()[:200]}"
            return None

        return [p for p in await asyncio.gather(*(one(*r) for r in await self._replicas())) if p]

    async def serving(self, model: str, version: str) -> list[str]:
        async def one(instance_id, stub):
            try:
                index = await stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError:
                return None  # down or stopped: serves nothing now (reconcile sees it when it is back)
            return instance_id if any(m.name == model and m.version == version for m in index.models) else None

        return sorted(i for i in await asyncio.gather(*(one(*r) for r in await self._replicas())) if i)

    async def alternatives(self, model: str, version: str) -> list[str]:
        async def one(stub):
            try:
                index = await stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError:
                return set()  # down or stopped: serves nothing now
            return {m.version for m in index.models
                    if m.name == model and m.version != version and (m.state == "READY" or m.reason == NOT_LOADED_BY_POLICY)}

        found = await asyncio.gather(*(one(stub) for _, stub in await self._replicas()))
        return sorted(set().union(*found))

    async def release(self, model: str) -> list[str]:
        async def one(instance_id, stub):
            try:
                await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=model), timeout=60.0, metadata=self.metadata)
            except grpc.aio.AioRpcError as error:
                return f"{instance_id}: {error.code().name} {error.details()[:200]}"
            return None

        return [p for p in await asyncio.gather(*(one(*r) for r in await self._replicas())) if p]

    async def probe(self, model: str, version: str, rows: np.ndarray, requests: int = 200, concurrency: int = 4) -> float:
        """p99 latency in ms of `requests` ModelInfer calls of `rows` pinned to the version, on the
        first replica that serves it (the promotion gate's load probe); inf if none serves it."""
        serving = set(await self.serving(model, version))
        replica = next((stub for instance_id, stub in await self._replicas() if instance_id in serving), None)
        if replica is None:
            return float("inf")
        request = encode_request(model, rows, "promotion-probe", version)
        latencies: list[float] = []
        remaining = iter(range(requests))

        async def caller() -> None:
            for _ in remaining:
                started = time.perf_counter()
                try:
                    await replica.ModelInfer(request, timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError:
                    latencies.append(float("inf"))  # a failed call fails the probe
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return float(np.percentile(latencies, 99)) if latencies else float("inf")

    def control(self) -> VersionControl:
        return VersionControl(self.hold, self.serving, self.release, self.alternatives)


class FeatureCaches(_PerAddress):
    """ClearCache on every registered features instance."""

    def __init__(self, registry: Registry, channels: Channels, admin_token: str | None) -> None:
        super().__init__(channels, admin_token)
        self.registry = registry

    async def clear(self, reason: str) -> str:
        states = await asyncio.to_thread(self.registry.list_all)
        instances = [s.instance for s in states if s.instance.service == "features" and not s.process_gone]
        if not instances:
            return "failed: no features instance registered"

        async def one(instance):
            stub = features_pb2_grpc.FeatureServiceStub(self.channel(instance.address))
            try:
                response = await stub.ClearCache(features_pb2.ClearCacheRequest(reason=reason[:200]), timeout=CALL_TIMEOUT_S,
                                                 metadata=self.metadata)
            except grpc.aio.AioRpcError as error:
                return f"{instance.instance_id}: {error.code().name} {error.details()[:200]}", False
            return f"{response.entries_dropped} cached ids dropped on {instance.instance_id}", True

        results = await asyncio.gather(*(one(i) for i in instances))
        return ("succeeded: " if all(ok for _, ok in results) else "failed: ") + "; ".join(text for text, _ in results)


def alert_from_proto(incident: monitoring_pb2.Incident) -> Alert:
    return Alert(incident.rule, incident.target, incident.signal, incident.value, incident.message, incident.severity, incident.status)


class AlertSubscriptions(_PerAddress):
    """A WatchAlerts stream to every registered monitoring instance, opened as instances appear
    and again after a stream breaks (monitoring restarted: it re-sends its open incidents)."""

    def __init__(self, registry: Registry, channels: Channels, on_alert: Callable[[Alert], object]) -> None:
        super().__init__(channels)
        self.registry, self.on_alert = registry, on_alert
        self._streams: dict[str, asyncio.Task] = {}

    async def refresh(self) -> None:
        states = await asyncio.to_thread(self.registry.list_all)
        for state in states:
            address = state.instance.address
            if state.instance.service == "monitoring" and not state.process_gone:
                task = self._streams.get(address)
                if task is None or task.done():
                    self._streams[address] = asyncio.create_task(self._follow(address), name=f"alerts-{address}")

    async def _follow(self, address: str) -> None:
        stub = monitoring_pb2_grpc.MonitoringStub(self.channel(address))
        try:
            async for response in stub.WatchAlerts(monitoring_pb2.WatchAlertsRequest()):
                self.on_alert(alert_from_proto(response.incident))
        except grpc.aio.AioRpcError as error:
            log.info("alert stream from %s ended (%s); reopened on the next round", address, error.code().name)

    async def close(self) -> None:
        for task in self._streams.values():
            task.cancel()
        await super().close()
