"""gRPC health checks against instances (used by recovery and `scoremesh status`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.tls import PLAINTEXT, Channels, TlsError, load


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


def probe_main(argv: list[str] | None = None) -> int:
    """`python -m mesh.health_probe`: one health check with grpc_health_probe's flags and exit
    codes (0 serving, 1 bad arguments, 2 connection failed, 3 RPC failed, 4 not serving), for
    Kubernetes exec probes of a mesh on mTLS (its native gRPC probes cannot present a client
    certificate)."""
    parser = argparse.ArgumentParser(prog="python -m mesh.health_probe", description=probe_main.__doc__)
    parser.add_argument("-addr", required=True, help="host:port to check")
    parser.add_argument("-service", default="", help="health entry (\"\" readiness, \"liveness\")")
    parser.add_argument("-tls", action="store_true", help="use TLS")
    parser.add_argument("-tls-ca-cert", type=Path, help="CA certificate that signs the server's")
    parser.add_argument("-tls-client-cert", type=Path, help="client certificate (mTLS)")
    parser.add_argument("-tls-client-key", type=Path, help="client key (mTLS)")
    parser.add_argument("-tls-server-name", help="name to check the server's certificate against")
    parser.add_argument("-connect-timeout", type=float, default=1.0, help="seconds to connect")
    parser.add_argument("-rpc-timeout", type=float, default=1.0, help="seconds for the check")
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        return 1
    channels = PLAINTEXT
    if args.tls:
        if not (args.tls_ca_cert and args.tls_client_cert and args.tls_client_key):
            print("-tls needs -tls-ca-cert, -tls-client-cert and -tls-client-key", file=sys.stderr)
            return 1
        try:
            material = load(args.tls_ca_cert, args.tls_client_cert, args.tls_client_key, server_name=args.tls_server_name)
        except TlsError as error:
            print(error, file=sys.stderr)
            return 1
        channels = Channels(material)
    with channels.sync(args.addr) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            print(f"timeout: failed to connect service {args.addr!r} within {args.connect_timeout:g}s", file=sys.stderr)
            return 2
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.rpc_timeout)
        except grpc.RpcError as error:
            print(f"error: health rpc failed: {error.code().name}", file=sys.stderr)
            return 3
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"status: {status}")
    return 0 if status == "SERVING" else 4


if __name__ == "__main__":
    raise SystemExit(probe_main())
