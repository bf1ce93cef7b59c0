"""The serve skeleton every service shares.

A service is declared once (`Service`: its name, its settings class and a `setup` that adds its
servicers and returns its readiness check); `service_main` does the rest: settings, JSON logs,
OpenTelemetry, a grpc.aio server with health (NOT_SERVING until ready) and reflection, a
Prometheus endpoint, registration with heartbeats, health kept in line with readiness, and the
shutdown sequence: signal -> NOT_SERVING -> deregister -> end open streams (UNAVAILABLE) -> drain
in-flight RPCs within the grace -> stop hooks -> cancel background tasks -> flush telemetry.

Health: the "liveness" entry is SERVING while the process answers; "" and the service names
follow readiness (the service can do its job).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from google.protobuf.internal import api_implementation
from prometheus_client import Gauge, start_http_server
from pydantic import ValidationError

from mesh.client import ServiceClient, policy_from
from mesh.config import ConfigError, MeshSettings
from mesh.discovery import Instance, Registry, open_registry
from mesh.gc_pauses import freeze_startup_objects, thaw
from mesh.handlers import WrappingRegistrar
from mesh.logs import configure_logging
from mesh.stalls import watch_event_loop
from mesh.telemetry import Tracing
from mesh import tls

log = logging.getLogger(__name__)

LIVENESS = "liveness"

S = TypeVar("S", bound=MeshSettings)
# Can the service do its job right now? Polled every `readiness_interval_s`.
Readiness = Callable[[], Awaitable[bool]]


RUNTIME_INFO = Gauge(
    "scoremesh_runtime_info", "How this process runs (value 1): protobuf implementation, event loop.", ["protobuf", "event_loop"],
    multiprocess_mode="max",
)
# What a worker tells its manager on stdout (mesh.workers).
WORKER_SERVING, WORKER_NOT_SERVING = "SERVING", "NOT_SERVING"
STANDBY_READY = "STANDBY READY"


def describe_runtime() -> dict[str, str]:
    """Confirm at start-up what the hot path runs on: upb protobuf (C; the pure-Python one is
    an order of magnitude slower) and the event loop. Logged and exported as an Info metric."""
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    info = {"protobuf": api_implementation.Type(), "event_loop": loop}
    RUNTIME_INFO.labels(info["protobuf"], info["event_loop"]).set(1)
    if info["protobuf"] != "upb":
        log.warning("protobuf runs its %s implementation, not upb: every message costs several times more", info["protobuf"])
    else:
        log.info("runtime: protobuf %s, event loop %s", info["protobuf"], info["event_loop"])
    return info


def server_options(settings: MeshSettings) -> list[tuple[str, int]]:
    """The limits every server enforces, from one place: message size, concurrent streams per
    connection, keepalive (server pings; clients that ping too often are told to go away)."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.http2.min_ping_interval_without_data_ms", int(settings.min_client_ping_interval_s * 1000)),
        ("grpc.http2.max_ping_strikes", 2),
    ]


class ServiceRuntime:
    """One serving process. As worker `worker` of an instance (mesh.workers), it shares the
    instance's port (SO_REUSEPORT) and leaves registration, metrics and readiness reports to the
    instance's manager process: its health goes to the manager as lines on stdout."""

    def __init__(self, settings: MeshSettings, service: str, instance_id: str, worker: int | None = None) -> None:
        self.settings = settings
        self.service = service
        self.instance_id = instance_id
        self.worker = worker
        process_id = instance_id if worker is None else f"{instance_id}/w{worker}"
        configure_logging(service, process_id, settings.log_level)
        self.tracing = Tracing(service, process_id, settings.otlp_endpoint, settings.trace_sample_ratio)
        describe_runtime()
        self.registry: Registry = open_registry(settings)
        self.health = health.aio.HealthServicer()
        self.tls = tls.configured(settings)
        self.channels = tls.Channels(self.tls)
        self.server = grpc.aio.server(options=[*server_options(settings), ("grpc.so_reuseport", 1 if worker is not None else 0)])
        self._registrar = WrappingRegistrar(self.server, self.tracing, settings.max_call_s)
        self._service_names: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._on_stop: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.instance: Instance | None = None
        self.serving = False

    def add_servicer(self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str) -> None:
        """Serve `servicer` (through its generated `add_..._to_server`) as `full_name`
        (package.Service), with its own health entry and reflection; every method is wrapped once
        (metrics, tracing, errors: mesh.handlers)."""
        add_to_server(servicer, self._registrar)
        self._service_names.append(full_name)

    def client(self, service: str, stub_factory: Callable[[grpc.aio.Channel], Any], full_name: str) -> ServiceClient:
        """A client of another service of the mesh (`full_name`: its package.Service, for
        traces), closed when this one stops."""
        client = ServiceClient(self.registry, service, stub_factory, full_name, self.settings.max_message_bytes, self.tracing,
                               policy_from(self.settings), self.channels)
        self.on_stop(client.close)
        return client

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Start a background task that lives as long as the server; cancelled on stop."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.append(task)
        return task

    def on_stop(self, callback: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `callback` on stop, after in-flight RPCs drained (e.g. close a store)."""
        self._on_stop.append(callback)

    async def start(self) -> Instance | None:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._registrar)
        names = [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(names), self._registrar)
        for name in ["", *self._service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Liveness (the process is up and answering) is its own health entry, SERVING from the
        # start: a liveness probe must not restart an instance that is merely not ready yet.
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)

        listen = f"{self.settings.host}:{self.settings.port}"
        if self.tls is None:
            port = self.server.add_insecure_port(listen)
        else:  # TLS only: a plaintext client fails its handshake
            port = self.server.add_secure_port(listen, tls.server_credentials(self.tls))
        await self.server.start()
        if self.worker is not None:
            log.info("worker %d listening on port %d", self.worker, port)
            return None
        metrics_server, _ = start_http_server(self.settings.metrics_port, addr=self.settings.host)
        metrics_port = metrics_server.server_port
        advertised = self.settings.advertise_host or self.settings.host
        self.instance = Instance(
            service=self.service,
            instance_id=self.instance_id,
            address=f"{advertised}:{port}",
            metrics_url=f"http://{advertised}:{metrics_port}/metrics",
            pid=os.getpid(),
            meta={"started_at": f"{time.time():.3f}"},
        )
        await asyncio.to_thread(self.registry.register, self.instance)
        self.spawn(self._heartbeat(), "heartbeat")
        log.info("listening on %s, metrics on %s", self.instance.address, self.instance.metrics_url)
        return self.instance

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self._service_names]:
            await self.health.set(name, status)
        self.serving = serving
        if self.worker is not None:
            print(WORKER_SERVING if serving else WORKER_NOT_SERVING, flush=True)  # to the manager
        if self.instance is not None:
            await asyncio.to_thread(self.registry.set_serving, self.instance, serving)
        log.info("health: %s", "SERVING" if serving else "NOT_SERVING")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval_s)
            try:
                await asyncio.to_thread(self.registry.heartbeat, self.instance)
            except Exception:
                log.warning("registry heartbeat failed", exc_info=True)

    async def _track_readiness(self, ready: Readiness) -> None:
        """Health follows readiness; a failing check counts as not ready, and is logged once."""
        failing = ever_ready = False
        while True:
            try:
                now_ready = bool(await ready())
                failing = False
            except Exception:
                if not failing:
                    log.exception("readiness check failed")
                failing, now_ready = True, False
            if now_ready != self.serving:
                await self.set_serving(now_ready)
            ever_ready = ever_ready or now_ready
            # Until ready for the first time, look often: a restarted replica is back in rotation
            # as soon as its models are loaded, not up to a whole interval later.
            await asyncio.sleep(self.settings.readiness_interval_s if ever_ready else min(0.1, self.settings.readiness_interval_s))

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)

    async def wait_for_stop_signal(self) -> None:
        await self._stopping.wait()

    async def serve(self, ready: Readiness | None = None) -> None:
        """Start, keep health in line with `ready` (None: ready once started), serve until
        SIGTERM/SIGINT, then run the shutdown sequence."""
        self.install_signal_handlers()
        await self.start()
        self.spawn(watch_event_loop(self.settings.stall_dump_s), "stall-watch")
        if ready is None:
            await self.set_serving(True)
        else:
            self.spawn(self._track_readiness(ready), "readiness")
        await self._stopping.wait()
        await self.stop()

    async def stop(self) -> None:
        log.info("stopping: NOT_SERVING, deregistering, draining (grace %.1fs)", self.settings.shutdown_grace_s)
        await self.health.enter_graceful_shutdown()
        self.serving = False
        if self.instance is not None:
            try:
                await asyncio.to_thread(self.registry.deregister, self.instance.instance_id)
            except Exception:
                log.warning("deregistration failed", exc_info=True)
        # Long-lived streams (telemetry in, watches out) end now, not at the end of the grace
        # that unary calls in flight get to finish.
        ended = self._registrar.streams.end_all()
        if ended:
            log.info("ended %d open stream(s); their peers reopen them on another instance", ended)
        await self.server.stop(self.settings.shutdown_grace_s)
        for callback in self._on_stop:
            try:
                await callback()
            except Exception:
                log.warning("stop callback failed", exc_info=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.registry.close()
        self.tracing.shutdown()
        log.info("stopped")


@dataclass(frozen=True)
class Service(Generic[S]):
    """What a service declares; `service_main` runs it."""

    name: str
    settings: type[S]
    setup: Callable[[ServiceRuntime, S], Awaitable[Readiness | None]]
    """Add servicers and background tasks to the runtime; return the readiness check."""
    cores_per_worker: int = 0
    """With `workers: 0` (auto), one worker process per this many cores (at least one);
    0 = always one process (the service does too little to spread)."""

    def auto_workers(self, cores: int) -> int:
        return max(1, cores // self.cores_per_worker) if self.cores_per_worker else 1


def load_settings(settings_cls: type[S]) -> S:
    """The settings, or exit with a one-line message naming the bad key (no traceback)."""
    try:
        return settings_cls()
    except (ConfigError, ValidationError) as error:
        sys.exit(f"scoremesh: invalid configuration: {error}")


def service_main(service: Service, argv: list[str] | None = None) -> None:
    """Entry point of `python -m services.<name> [--instance-id ID]`: one process, or a manager
    of several worker processes on one port (mesh.workers) when `workers` asks for more."""
    parser = argparse.ArgumentParser(description=f"ScoreMesh {service.name} service")
    parser.add_argument("--instance-id", default=f"{service.name}-1", help="unique id of this instance in the registry")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the manager for its workers
    parser.add_argument("--standby", action="store_true", help=argparse.SUPPRESS)  # a warm spare of the supervisor
    args = parser.parse_args(argv)
    if args.standby and not become_instance(args):
        return
    settings = load_settings(service.settings)
    workers = settings.workers or service.auto_workers(os.cpu_count() or 1)
    if args.worker is None and workers > 1:
        from mesh.workers import WorkerManager

        run_event_loop(WorkerManager(settings, service.name, args.instance_id, workers).run())
        return

    async def main() -> None:
        runtime = ServiceRuntime(settings, service.name, args.instance_id, args.worker)
        ready = await service.setup(runtime, settings)
        freeze_startup_objects()  # models, imports and clients are built: keep them out of later collections
        try:
            await runtime.serve(ready)
        finally:
            thaw()

    run_event_loop(main())


def become_instance(args: argparse.Namespace) -> bool:
    """A warm spare (`--standby`): the service's modules are imported already — torch alone
    takes seconds on a small machine — so it waits for one line on stdin, the instance to become
    ({"instance_id", "env", "log"}), and starts as that instance within a fraction of a second
    (the local supervisor's restarts). False when stdin closes first: nothing to become."""
    print(STANDBY_READY, flush=True)  # to the supervisor: imported, ready to become an instance
    line = sys.stdin.readline()
    if not line.strip():
        return False
    order = json.loads(line)
    os.environ.update(order.get("env", {}))
    if order.get("log"):
        log_fd = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for stream in (1, 2):
            os.dup2(log_fd, stream)
        os.close(log_fd)
    args.instance_id = order["instance_id"]
    return True


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when it is installed (a faster loop for the same code), else on
    asyncio's own loop."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
