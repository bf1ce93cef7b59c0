"""The client side of the mesh: resolve a service, pick an instance, call it.

Round-robin over the healthy instances the registry returns; one channel per address, reused.
The caller's deadline is propagated (a downstream call never outlives the request that made it).
A call that fails with UNAVAILABLE (instance gone, connection refused) is tried once more on the
next instance: scoring is idempotent, and this is what keeps requests succeeding while a killed
replica drops out of the registry. The routing issue adds real balancing and retry budgets.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import grpc

from mesh.discovery import Instance, Registry
from domain.errors import DeadlineExceeded, UpstreamError
from mesh.status_details import error_info

T = TypeVar("T")

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
    """Calls to one service; `stub_factory` builds a generated stub from a channel."""

    def __init__(
        self,
        registry: Registry,
        service: str,
        stub_factory: Callable[[grpc.aio.Channel], Any],
        max_message_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.registry = registry
        self.service = service
        self.stub_factory = stub_factory
        self.max_message_bytes = max_message_bytes
        self._channels: dict[str, tuple[grpc.aio.Channel, Any]] = {}
        self._counter = itertools.count()
        self._resolved: list[Instance] = []
        self._resolved_at = 0.0

    async def instances(self) -> list[Instance]:
        now = time.monotonic()
        if now - self._resolved_at > RESOLVE_TTL_S:
            self._resolved = await asyncio.to_thread(self.registry.resolve, self.service)
            self._resolved_at = now
        return self._resolved

    def stub(self, address: str) -> Any:
        """The (cached) stub for one address."""
        if address not in self._channels:
            channel = grpc.aio.insecure_channel(
                address,
                options=[
                    ("grpc.max_receive_message_length", self.max_message_bytes),
                    ("grpc.max_send_message_length", self.max_message_bytes),
                ],
            )
            self._channels[address] = (channel, self.stub_factory(channel))
        return self._channels[address][1]

    async def call(
        self,
        method: Callable[[Any], Callable[..., Awaitable[T]]],
        request: Any,
        timeout: float,
        attempts: int = 2,
        eligible: Collection[str] | None = None,
    ) -> T:
        """`method(stub)(request, timeout=...)` on a healthy instance, with one failover.
        `eligible` narrows the choice to those addresses (e.g. the replicas serving a model
        version) while any of them is healthy."""
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
            try:
                return await method(self.stub(instance.address))(request, timeout=left)
            except grpc.aio.AioRpcError as error:
                last = error
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise UpstreamError(self.service, error.code().name, error.details() or "", *error_info(error)) from error
                self.invalidate()  # resolve again: the instance is probably gone
        if last is not None:
            raise UpstreamError(self.service, last.code().name, last.details() or "") from last
        if time.monotonic() >= deadline:
            raise UpstreamError(self.service, "DEADLINE_EXCEEDED", "deadline passed")
        raise UpstreamError(self.service, "UNAVAILABLE", "no healthy instance in the registry")

    def invalidate(self) -> None:
        """Forget the cached resolution; the next call asks the registry again."""
        self._resolved_at = 0.0

    async def close(self) -> None:
        for channel, _ in self._channels.values():
            await channel.close()
        self._channels.clear()
