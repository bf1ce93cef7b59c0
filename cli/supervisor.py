"""The local supervisor behind `scoremesh up`: starts every service instance as its own OS
process, restarts one on request (`scoremesh.v1.Supervisor/RestartInstance`, called by the
recovery service) and stops them all cleanly.

Children run in their own process group (Ctrl-C reaches only the supervisor, which then stops
them in order) and get SIGTERM from the kernel if the supervisor itself dies (PR_SET_PDEATHSIG),
so no orphan outlives it.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from domain.errors import FailedPrecondition, InvalidArgument, NotFound, quote
from mesh.admin_auth import check_bearer
from mesh.handlers import header
from mesh.runtime import STANDBY_READY
from scoremesh.v1 import supervisor_pb2, supervisor_pb2_grpc

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass(frozen=True)
class ProcessSpec:
    service: str
    instance_id: str

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", f"services.{self.service}", "--instance-id", self.instance_id]


@dataclass
class ManagedProcess:
    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    waiter: asyncio.Task | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


def default_specs(inference_replicas: int = 2) -> list[ProcessSpec]:
    specs = [ProcessSpec("features", "features-1")]
    specs += [ProcessSpec("inference", f"inference-{i + 1}") for i in range(inference_replicas)]
    specs += [ProcessSpec("monitoring", "monitoring-1"), ProcessSpec("router", "router-1"), ProcessSpec("recovery", "recovery-1")]
    return specs


MAX_REPLICAS = 10  # shared/REFERENCE.md's autoscaling range is [1, 10]


class Supervisor:
    # Services the supervisor restarts by itself when they exit (recovery cannot restart itself).
    SELF_HEALED = ("recovery",)
    # Services that keep a warm spare: a process with the service's modules imported (torch takes
    # 2.6 s idle, 5.3 s under load on a 2-core machine), waiting to become the next instance a
    # restart or a scale-up asks for; a restarted replica then serves within ~2 s of its kill.
    WARM_SPARES = ("inference",)
    SPARE_DELAY_S = 5.0
    """A new spare starts this long after one was used: the instance it became gets the CPU first."""

    def __init__(self, specs: list[ProcessSpec], log_dir: Path, env: dict[str, str], stop_grace_s: float = 10.0,
                 instance_env: dict[str, dict[str, str]] | None = None) -> None:
        self.processes = {s.instance_id: ManagedProcess(s) for s in specs}
        self.log_dir = log_dir
        self.env = env
        self.instance_env = instance_env or {}
        """Variables of one instance only (its own certificate)."""
        self.stop_grace_s = stop_grace_s
        self.stopping = False
        self.spares: dict[str, asyncio.subprocess.Process] = {}
        self._spare_tasks: set[asyncio.Task] = set()

    async def _launch(self, managed: ManagedProcess) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{managed.spec.instance_id}.log"
        spare = self.spares.pop(managed.spec.service, None)
        if spare is not None and await self._hand_over(spare, managed, log_path):
            log.info("started %s (pid %d, a warm spare)", managed.spec.instance_id, spare.pid)
            self._later(self.SPARE_DELAY_S, managed.spec.service)
        else:
            with open(log_path, "ab") as log_file:
                managed.process = await asyncio.create_subprocess_exec(
                    *managed.spec.command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    env={**self.env, **self.instance_env.get(managed.spec.instance_id, {})},
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            log.info("started %s (pid %d)", managed.spec.instance_id, managed.process.pid)
        managed.waiter = asyncio.create_task(self._watch_exit(managed, managed.process))

    async def _hand_over(self, spare: asyncio.subprocess.Process, managed: ManagedProcess, log_path: Path) -> bool:
        """Tell a warm spare which instance to become; False when it is gone (start one cold)."""
        if spare.returncode is not None:
            return False
        order = {"instance_id": managed.spec.instance_id, "env": self.instance_env.get(managed.spec.instance_id, {}), "log": str(log_path)}
        try:
            spare.stdin.write((json.dumps(order) + "\n").encode())
            await spare.stdin.drain()
            spare.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            return False
        managed.process = spare
        return True

    def _later(self, delay_s: float, service: str) -> None:
        async def spawn() -> None:
            await asyncio.sleep(delay_s)
            await self._spawn_spare(service)

        task = asyncio.create_task(spawn(), name=f"spare-{service}")
        self._spare_tasks.add(task)
        task.add_done_callback(self._spare_tasks.discard)

    async def _spawn_spare(self, service: str) -> None:
        if self.stopping or service in self.spares:
            return
        with open(self.log_dir / f"{service}-spare.log", "ab") as log_file:
            spare = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{service}", "--standby",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log_file, env=self.env,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        try:  # its modules are imported when it says so
            line = await asyncio.wait_for(spare.stdout.readline(), 120.0)
        except TimeoutError:
            line = b""
        if line.decode().strip() != STANDBY_READY or self.stopping:
            log.warning("warm spare of %s did not get ready (%r); restarts start cold", service, line[:80])
            await self._terminate(spare)
            return
        self.spares[service] = spare
        log.info("warm spare of %s ready (pid %d)", service, spare.pid)

    async def _watch_exit(self, managed: ManagedProcess, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self.stopping or managed.process is not process:
            return
        log.warning("%s exited with %s", managed.spec.instance_id, code)
        if managed.spec.service in self.SELF_HEALED:
            managed.restarts += 1
            await self._launch(managed)

    async def start_all(self) -> None:
        for managed in self.processes.values():
            await self._launch(managed)
        for service in self.WARM_SPARES:
            if any(m.spec.service == service for m in self.processes.values()):
                self._later(self.SPARE_DELAY_S, service)  # after the instances have their start-up CPU

    async def restart(self, instance_id: str, reason: str) -> ManagedProcess:
        managed = self.processes.get(instance_id)
        if managed is None:
            raise NotFound(f"instance_id: {quote(instance_id)} is not managed by this supervisor")
        log.info("restarting %s: %s", instance_id, reason)
        old = managed.process
        managed.process = None  # the exit watcher of the old process must not act
        if old is not None and old.returncode is None:
            await self._terminate(old)
        managed.restarts += 1
        await self._launch(managed)
        return managed

    async def add_replica(self, service: str, reason: str, max_replicas: int = MAX_REPLICAS) -> ManagedProcess:
        """One more instance of `service` (`<service>-<n+1>`), with the environment of its first
        replica (under --tls: its certificate; replicas of a service share an identity)."""
        replicas = [m for m in self.processes.values() if m.spec.service == service]
        if not replicas:
            raise NotFound(f"service: {quote(service)} is not run by this supervisor")
        limit = min(max_replicas or MAX_REPLICAS, MAX_REPLICAS)
        if len(replicas) >= limit:
            raise FailedPrecondition(f"service: {service} runs {len(replicas)} replicas, the most allowed ({limit})")
        numbers = [int(m.spec.instance_id.rpartition("-")[2]) for m in replicas if m.spec.instance_id.rpartition("-")[2].isdigit()]
        spec = ProcessSpec(service, f"{service}-{max(numbers, default=len(replicas)) + 1}")
        if replicas[0].spec.instance_id in self.instance_env:
            self.instance_env[spec.instance_id] = self.instance_env[replicas[0].spec.instance_id]
        managed = self.processes[spec.instance_id] = ManagedProcess(spec)
        log.info("adding %s: %s", spec.instance_id, reason)
        await self._launch(managed)
        return managed

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        try:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), self.stop_grace_s)
        except ProcessLookupError:
            return
        except TimeoutError:
            log.warning("pid %d ignored SIGTERM for %.0fs; killing", process.pid, self.stop_grace_s)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()

    async def stop_all(self) -> None:
        """Router first (stop taking traffic), then the rest together."""
        self.stopping = True
        order = sorted(self.processes.values(), key=lambda m: m.spec.service != "router")
        routers = [m for m in order if m.spec.service == "router"]
        others = [m for m in order if m.spec.service != "router"]
        for task in list(self._spare_tasks):
            task.cancel()
        for spare in self.spares.values():  # closing its stdin tells a spare there is nothing to become
            if spare.returncode is None:
                spare.stdin.close()
        for group in (routers, others):
            await asyncio.gather(*(self._terminate(m.process) for m in group if m.running))
        await asyncio.gather(*(self._terminate(spare) for spare in self.spares.values() if spare.returncode is None))
        for managed in self.processes.values():
            if managed.waiter:
                managed.waiter.cancel()


class SupervisorServicer(supervisor_pb2_grpc.SupervisorServicer):
    def __init__(self, supervisor: Supervisor, admin_token: str | None) -> None:
        self.supervisor = supervisor
        self.admin_token = admin_token

    @staticmethod
    def _describe(managed: ManagedProcess) -> supervisor_pb2.ManagedProcess:
        return supervisor_pb2.ManagedProcess(
            service=managed.spec.service,
            instance_id=managed.spec.instance_id,
            pid=managed.process.pid if managed.process else 0,
            running=managed.running,
            restarts=managed.restarts,
        )

    async def ListProcesses(self, request, context):
        spares = [supervisor_pb2.ManagedProcess(service=service, instance_id=f"{service}-spare", pid=spare.pid, running=True, spare=True)
                  for service, spare in self.supervisor.spares.items() if spare.returncode is None]
        return supervisor_pb2.ListProcessesResponse(processes=[self._describe(m) for m in self.supervisor.processes.values()] + spares)

    async def RestartInstance(self, request, context):
        check_bearer(header(context, "authorization"), self.admin_token, "restarts")
        managed = await self.supervisor.restart(request.instance_id, request.reason or "requested")
        return supervisor_pb2.RestartInstanceResponse(process=self._describe(managed))

    async def AddReplica(self, request, context):
        check_bearer(header(context, "authorization"), self.admin_token, "scaling")
        if request.max_replicas < 0:
            raise InvalidArgument(f"max_replicas: must be >= 0 (got {request.max_replicas})")
        managed = await self.supervisor.add_replica(request.service, request.reason or "requested", request.max_replicas)
        return supervisor_pb2.AddReplicaResponse(process=self._describe(managed))
