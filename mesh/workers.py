"""One instance served by several worker processes on one port, so a service uses every core.

The manager is the process the supervisor (or Kubernetes) starts: it reserves the instance's
port, starts N workers (`python -m services.<name> --worker K`, fresh interpreters, so no gRPC
object ever crosses a fork), and speaks for the instance: it registers it once (with
`workers=N` in its metadata), keeps its heartbeat, reports it SERVING while every worker is, and
serves the workers' metrics merged (prometheus_client's multiprocess mode). Each worker binds
the port with SO_REUSEPORT, so the kernel spreads connections over them (clients open several
connections per address for that), and tells the manager its health on stdout. A worker that
dies is started again; SIGTERM to the manager drains every worker before it deregisters and
exits; the workers die with the manager (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import time

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from mesh.config import MeshSettings
from mesh.discovery import Instance, open_registry
from mesh.logs import configure_logging

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
SERVING, NOT_SERVING = "SERVING", "NOT_SERVING"  # the lines a worker prints (mesh.runtime)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, non-listening SO_REUSEPORT socket holding the instance's port (port 0: a free
    one) while the workers bind it too; it never accepts a connection itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class WorkerManager:
    def __init__(self, settings: MeshSettings, service: str, instance_id: str, workers: int) -> None:
        self.settings = settings
        self.service = service
        self.instance_id = instance_id
        self.count = workers
        self.metrics_dir = settings.state_dir / "metrics" / instance_id
        self.ready: dict[int, bool] = {}
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.instance: Instance | None = None

    async def run(self) -> None:
        configure_logging(self.service, self.instance_id, self.settings.log_level)
        held = reserve_port(self.settings.host, self.settings.port)
        port = held.getsockname()[1]
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        self.metrics_dir.mkdir(parents=True)
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir), SCOREMESH_PORT=str(port))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        registry = open_registry(self.settings)
        metrics = CollectorRegistry()
        MultiProcessCollector(metrics, path=str(self.metrics_dir))
        metrics_server, _ = start_http_server(self.settings.metrics_port, addr=self.settings.host, registry=metrics)
        advertised = self.settings.advertise_host or self.settings.host
        self.instance = Instance(
            self.service, self.instance_id, f"{advertised}:{port}", f"http://{advertised}:{metrics_server.server_port}/metrics",
            pid=os.getpid(), meta={"started_at": f"{time.time():.3f}", "workers": str(self.count)},
        )
        await asyncio.to_thread(registry.register, self.instance)
        log.info("instance %s on %s: %d workers", self.instance_id, self.instance.address, self.count)
        watchers = [asyncio.create_task(self._keep_running(k, env)) for k in range(self.count)]
        heartbeat = asyncio.create_task(self._heartbeat(registry))
        serving = False
        try:
            while not self.stopping.is_set():
                now = len(self.ready) == self.count and all(self.ready.values())
                if now != serving:
                    serving = now
                    await asyncio.to_thread(registry.set_serving, self.instance, serving)
                    log.info("health: %s", SERVING if serving else NOT_SERVING)
                try:
                    await asyncio.wait_for(self.stopping.wait(), 0.2)
                except TimeoutError:
                    pass
        finally:
            log.info("stopping: deregistering, then draining %d workers", self.count)
            try:
                await asyncio.to_thread(registry.deregister, self.instance_id)
            except Exception:
                log.warning("deregistration failed", exc_info=True)
            await self._stop_workers()
            for task in (*watchers, heartbeat):
                task.cancel()
            await asyncio.gather(*watchers, heartbeat, return_exceptions=True)
            registry.close()
            metrics_server.shutdown()
            held.close()
            log.info("stopped")

    async def _keep_running(self, index: int, env: dict[str, str]) -> None:
        """Start worker `index` and read its health lines; start it again if it dies."""
        command = [sys.executable, "-m", f"services.{self.service}", "--instance-id", self.instance_id, "--worker", str(index)]
        while not self.stopping.is_set():
            process = await asyncio.create_subprocess_exec(
                *command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent,
            )
            self.processes[index] = process
            self.ready[index] = False
            async for line in process.stdout:
                state = line.decode().strip()
                if state in (SERVING, NOT_SERVING):
                    self.ready[index] = state == SERVING
            code = await process.wait()
            self.ready[index] = False
            mark_process_dead(process.pid, str(self.metrics_dir))
            if not self.stopping.is_set():
                log.warning("worker %d (pid %d) exited with %s; starting it again", index, process.pid, code)
                await asyncio.sleep(0.5)

    async def _heartbeat(self, registry) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval_s)
            try:
                await asyncio.to_thread(registry.heartbeat, self.instance)
            except Exception:
                log.warning("registry heartbeat failed", exc_info=True)

    async def _stop_workers(self) -> None:
        """SIGTERM: each worker goes NOT_SERVING, drains its calls and flushes its telemetry."""
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), self.settings.shutdown_grace_s + 5)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    process.kill()
            await asyncio.gather(*(p.wait() for p in running))
