"""The floor: what gRPC itself costs for the mesh's request shapes, measured on this machine.

A chain of bare grpc.aio echo servers (generic handlers on raw bytes: no protobuf, no
interceptors, no work) with the same hops and payload sizes as the real call: the "front" server
answers the caller after calling each of its downstream servers in turn, as the router calls
features, then inference. One hop (front only) is the floor of a single service such as
inference. Each server is its own process, like the mesh's services.

    python -m benchmarks.floor serve --response-bytes N [--call HOST:PORT:REQUEST_BYTES ...]

prints its port and serves until killed; `FloorChain` starts and stops a chain from code.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from dataclasses import dataclass

import grpc

METHOD = "/floor.Echo/Call"


@dataclass(frozen=True)
class Hop:
    """One server of the chain: what it answers, and the calls it makes per request."""

    response_bytes: int
    calls: tuple[tuple[int, int], ...] = ()
    """(index of the downstream hop, request bytes sent to it), in order."""


async def _serve(response_bytes: int, calls: list[tuple[str, int]]) -> None:
    try:
        import uvloop  # the mesh's services use it when installed: so does the floor

        uvloop.install()
    except ImportError:
        pass
    response = b"\x01" * response_bytes
    downstream = [
        (grpc.aio.insecure_channel(address).unary_unary(METHOD), b"\x02" * size) for address, size in calls
    ]

    async def call(request: bytes, context) -> bytes:
        for stub, payload in downstream:
            await stub(payload, timeout=10)
        return response

    handler = grpc.method_handlers_generic_handler("floor.Echo", {"Call": grpc.unary_unary_rpc_method_handler(call)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


class FloorChain:
    """Start the servers of a chain (downstream first), each a process; stop them all."""

    def __init__(self, hops: list[Hop]) -> None:
        self.hops = hops
        self.processes: list[subprocess.Popen] = []
        self.addresses: list[str] = [""] * len(hops)

    def start(self) -> str:
        """The front server's address (hop 0)."""
        for index in reversed(range(len(self.hops))):
            hop = self.hops[index]
            command = [sys.executable, "-m", "benchmarks.floor", "serve", "--response-bytes", str(hop.response_bytes)]
            for target, size in hop.calls:
                command += ["--call", f"{self.addresses[target]}:{size}"]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            self.processes.append(process)
            port = process.stdout.readline().strip()
            if not port.isdigit():
                self.stop()
                raise RuntimeError(f"floor server {index} did not start")
            self.addresses[index] = f"127.0.0.1:{port}"
        return self.addresses[0]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()

    def __enter__(self) -> "FloorChain":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--response-bytes", type=int, required=True)
    serve.add_argument("--call", action="append", default=[], help="HOST:PORT:REQUEST_BYTES of a downstream hop")
    args = parser.parse_args(argv)
    calls = [(spec.rsplit(":", 1)[0], int(spec.rsplit(":", 1)[1])) for spec in args.call]
    asyncio.run(_serve(args.response_bytes, calls))


if __name__ == "__main__":
    main()
