"""The client side of the mesh: resolve a service, pick an instance, call it.

Round-robin over the healthy instances the registry returns. Each address gets
`channels_per_address` channels, each with its own connection (a local subchannel pool): a
service running several worker processes on one port (SO_REUSEPORT) gets a share of them on
every worker, since the kernel balances connections, not calls. The caller's deadline is
propagated (a downstream call never outlives the request that made it) and so is its trace.
A call that fails with UNAVAILABLE (instance gone, connection refused) is tried once more on the
next instance: scoring is idempotent, and this is what keeps requests succeeding while a killed
replica drops out of the registry. The routing issue adds real balancing and retry budgets.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Collection
from typing import Any

import grpc

from domain.errors import DeadlineExceeded, UpstreamError
from mesh.discovery import Instance, Registry
from mesh.status_details import error_info
from mesh.telemetry import Tracing

RESOLVE_TTL_S = 0.5


def remaining_timeout(context: grpc.aio.ServicerContext | None, default: float) -> float:
    """Seconds left before the incoming call's deadline (or `default` if it has none)."""
    if context is None:
        return default
    left = context.time_remaining()
    if left is None:
        return default
    if left <= 0:
        raise DeadlineExceeded("the request's deadline passed before a downstream call")
    return min(left, default)


class ServiceClient:
    """Calls to one service; `stub_factory` builds a generated stub from a channel, `full_name`
    is the service's package.Service (client spans are named /full_name/Method)."""

    def __init__(
        self,
        registry: Registry,
        service: str,
        stub_factory: Callable[[grpc.aio.Channel], Any],
        full_name: str = "",
        max_message_bytes: int = 4 * 1024 * 1024,
        tracing: Tracing | None = None,
        channels_per_address: int = 2,
    ) -> None:
        self.registry = registry
        self.service = service
        self.stub_factory = stub_factory
        self.full_name = full_name or service
        self.max_message_bytes = max_message_bytes
        self.tracing = tracing
        self.channels_per_address = channels_per_address
        self._channels: dict[str, tuple[list[grpc.aio.Channel], Any]] = {}
        self._counter = itertools.count()
        self._resolved: list[Instance] = []
        self._resolved_at = 0.0

    async def instances(self) -> list[Instance]:
        now = time.monotonic()
        if now - self._resolved_at > RESOLVE_TTL_S:
            self._resolved = await asyncio.to_thread(self.registry.resolve, self.service)
            self._resolved_at = now
        return self._resolved

    def stub(self, address: str, workers: int = 1) -> Any:
        """A stub for one address (the next of its channels, round-robin); an instance with
        several workers gets that many times more channels."""
        entry = self._channels.get(address)
        if entry is None:
            options = [
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.use_local_subchannel_pool", 1),
            ]
            channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(self.channels_per_address * max(1, workers))]
            entry = self._channels[address] = (channels, itertools.cycle([self.stub_factory(c) for c in channels]))
        return next(entry[1])

    async def call(self, method: str, request: Any, timeout: float, attempts: int = 2, eligible: Collection[str] | None = None) -> Any:
        """`stub.<method>(request)` on a healthy instance, with one failover. `eligible` narrows
        the choice to those addresses (e.g. the replicas serving a model version) while any of
        them is healthy."""
        deadline = time.monotonic() + timeout
        last: grpc.aio.AioRpcError | None = None
        tried: set[str] = set()
        for _ in range(attempts):
            instances = [i for i in await self.instances() if i.address not in tried]
            if eligible is not None:
                instances = [i for i in instances if i.address in eligible] or instances
            if not instances:
                break
            instance = instances[next(self._counter) % len(instances)]
            tried.add(instance.address)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            span, metadata = self.tracing.start_client_span(f"/{self.full_name}/{method}") if self.tracing else (None, ())
            try:
                response = await getattr(self.stub(instance.address, instance.workers), method)(request, timeout=left, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                if self.tracing:
                    self.tracing.end_client_span(span, error.code().name)
                last = error
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise UpstreamError(self.service, error.code().name, error.details() or "", *error_info(error)) from error
                self.invalidate()  # resolve again: the instance is probably gone
                continue
            if self.tracing:
                self.tracing.end_client_span(span)
            return response
        if last is not None:
            raise UpstreamError(self.service, last.code().name, last.details() or "") from last
        if time.monotonic() >= deadline:
            raise UpstreamError(self.service, "DEADLINE_EXCEEDED", "deadline passed")
        raise UpstreamError(self.service, "UNAVAILABLE", "no healthy instance in the registry")

    def invalidate(self) -> None:
        """Forget the cached resolution; the next call asks the registry again."""
        self._resolved_at = 0.0

    async def close(self) -> None:
        for channels, _ in self._channels.values():
            for channel in channels:
                await channel.close()
        self._channels.clear()
