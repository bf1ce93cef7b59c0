"""gRPC health checks against instances (used by recovery and `scoremesh status`)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.tls import PLAINTEXT, Channels


class HealthProber:
    """One channel per address, reused across probes."""

    def __init__(self, channels: Channels = PLAINTEXT) -> None:
        self.channels = channels
        self._stubs: dict[str, tuple[grpc.aio.Channel, health_pb2_grpc.HealthStub]] = {}

    async def check(self, address: str, timeout: float = 1.0) -> str:
        """"SERVING", "NOT_SERVING", ... or the gRPC error code name when the check fails."""
        if address not in self._stubs:
            channel = self.channels.aio(address)
            self._stubs[address] = (channel, health_pb2_grpc.HealthStub(channel))
        try:
            response = await self._stubs[address][1].Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def forget(self, address: str) -> None:
        entry = self._stubs.pop(address, None)
        if entry:
            await entry[0].close()

    async def close(self) -> None:
        for channel, _ in self._stubs.values():
            await channel.close()
        self._stubs.clear()
