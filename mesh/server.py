"""Server bootstrap shared by every service.

`ServiceRuntime` gives a service: a grpc.aio server on a free loopback port, grpc.health.v1
(NOT_SERVING until the service says it is ready), server reflection, OpenTelemetry, a Prometheus
endpoint, JSON logs, registration in the registry with heartbeats, and the shutdown sequence:
signal -> NOT_SERVING -> deregister -> drain in-flight RPCs within the grace -> cancel
background tasks -> flush telemetry.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from mesh.config import MeshSettings
from mesh.discovery import Instance, Registry, open_registry
from mesh.interceptors import ErrorMapping, GrpcMetrics
from mesh.logs import configure_logging
from mesh.telemetry import setup_tracing

log = logging.getLogger(__name__)

LIVENESS = "liveness"


class ServiceRuntime:
    def __init__(self, settings: MeshSettings, service: str, instance_id: str) -> None:
        self.settings = settings
        self.service = service
        self.instance_id = instance_id
        configure_logging(service, instance_id, settings.log_level)
        self.tracer_provider = setup_tracing(service, instance_id, settings.otlp_endpoint)
        self.registry: Registry = open_registry(settings)
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(
            interceptors=[GrpcMetrics(), ErrorMapping()],
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
            ],
        )
        self._service_names: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._on_stop: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.instance: Instance | None = None
        self.serving = False

    def add_services(self, service_names: Iterable[str]) -> None:
        """Full names (package.Service) of the servicers already added to `self.server`."""
        self._service_names.extend(service_names)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Start a background task that lives as long as the server; cancelled on stop."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.append(task)
        return task

    def on_stop(self, callback: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._on_stop.append(callback)

    async def start(self) -> Instance:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        for name in ["", *self._service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Liveness (the process is up and answering) is its own health entry, SERVING from the
        # start: a liveness probe must not restart an instance that is merely not ready yet.
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)

        port = self.server.add_insecure_port(f"{self.settings.host}:{self.settings.port}")
        await self.server.start()
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

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)

    async def wait_for_stop_signal(self) -> None:
        await self._stopping.wait()

    async def run_until_stopped(self) -> None:
        """Serve until SIGTERM/SIGINT, then run the shutdown sequence."""
        self.install_signal_handlers()
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
        self.tracer_provider.shutdown()  # flushes pending spans
        log.info("stopped")


def service_main(service: str, serve: Callable[[str], Coroutine[Any, Any, None]], argv: list[str] | None = None) -> None:
    """Entry point of `python -m services.<service> [--instance-id ID]`."""
    parser = argparse.ArgumentParser(description=f"ScoreMesh {service} service")
    parser.add_argument("--instance-id", default=f"{service}-1", help="unique id of this instance in the registry")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.instance_id))
