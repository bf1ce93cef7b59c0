"""Telemetry streams spread over every monitoring instance, over real loopback servers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc

from mesh.telemetry_buffer import TelemetryBuffer, stream_telemetry
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc


class Receiver(monitoring_pb2_grpc.MonitoringServicer):
    def __init__(self) -> None:
        self.records = 0

    async def Report(self, request_iterator, context):
        async for batch in request_iterator:
            self.records += len(batch.records)
            await asyncio.sleep(0.01)  # a little work per batch, so a single stream cannot take them all
        return monitoring_pb2.ReportResponse(accepted=self.records)


@dataclass
class Address:
    address: str


class Monitoring:
    """What stream_telemetry needs of a mesh.client.ServiceClient: instances and stubs."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.channels = {a: grpc.aio.insecure_channel(a) for a in addresses}

    async def instances(self):
        return [Address(a) for a in self.addresses]

    def stub(self, address):
        return monitoring_pb2_grpc.MonitoringStub(self.channels[address])

    def invalidate(self) -> None:
        pass


def to_proto(batch):
    return monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord(**r) for r in batch])


def test_records_spread_over_every_monitoring_instance_and_none_is_lost():
    async def scenario():
        receivers, servers, addresses = [], [], []
        for _ in range(2):
            receiver, server = Receiver(), grpc.aio.server()
            monitoring_pb2_grpc.add_MonitoringServicer_to_server(receiver, server)
            addresses.append(f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}")
            await server.start()
            receivers.append(receiver)
            servers.append(server)
        buffer, sent = TelemetryBuffer(10_000), []
        sender = asyncio.create_task(stream_telemetry(Monitoring(addresses), buffer, to_proto, sent.append, refresh_s=0.05))
        for i in range(3000):
            buffer.offer({"model_name": "ctr", "status": "OK", "latency_ms": 1.0, "timestamp": 1.0 + i})
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        for _ in range(200):
            if sum(r.records for r in receivers) == 3000:
                break
            await asyncio.sleep(0.05)
        sender.cancel()
        for server in servers:
            await server.stop(0)
        return [r.records for r in receivers], sum(sent)

    per_instance, sent = asyncio.run(scenario())
    assert sum(per_instance) == 3000 == sent
    assert min(per_instance) > 300, per_instance  # both took a share
