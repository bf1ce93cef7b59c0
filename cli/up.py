"""`scoremesh up`: check the configuration, build a model repository on first run, then run
every service under the local supervisor until Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import time

from pydantic import ValidationError

from cli.prometheus_targets import write_file_sd
from cli.status import collect_status
from cli.supervisor import ProcessSpec, Supervisor, SupervisorServicer, default_specs
from mesh import tls
from mesh.admin_auth import TOKEN_FILE, admin_token
from mesh.certificates import make_mesh_certificates
from mesh.config import ConfigError, MeshSettings
from mesh.discovery import open_registry
from mesh.runtime import ServiceRuntime
from scoremesh.v1 import supervisor_pb2_grpc
from services.features.settings import FeatureSettings
from services.inference.settings import InferenceSettings
from services.monitoring.settings import MonitoringSettings
from services.recovery.settings import RecoverySettings
from services.router.settings import RouterSettings

SETTINGS = (RouterSettings, FeatureSettings, InferenceSettings, MonitoringSettings, RecoverySettings)


def check_configuration() -> str | None:
    """Every service's settings as it will load them: the first problem, or None. Checked
    before anything starts, so a typo fails `up` at once rather than one child process."""
    for settings_cls in SETTINGS:
        try:
            settings_cls()
        except (ConfigError, ValidationError) as error:
            return f"{settings_cls.yaml_section}: {error}"
    return None


async def _publish_scrape_targets(runtime: ServiceRuntime, settings: MeshSettings) -> None:
    while True:
        states = await asyncio.to_thread(runtime.registry.list_all)
        await asyncio.to_thread(write_file_sd, settings.state_dir / "prometheus" / "targets.json", states)
        await asyncio.sleep(2.0)


async def _announce_when_healthy(settings: MeshSettings) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(0.5)
        status = await collect_status(settings)
        if status.healthy:
            print(f"scoremesh: all {len(status.instances)} instances healthy after {time.monotonic() - started:.1f}s", flush=True)
            for i in status.instances:
                print(f"  {i.service:<11} {i.id:<13} grpc {i.address:<21} metrics {i.metrics}", flush=True)
            return


def prepare_tls(settings: MeshSettings, specs: list[ProcessSpec]) -> tuple[MeshSettings, dict[str, dict[str, str]]]:
    """`up --tls`: a local CA and a certificate per instance (and for the supervisor and the
    CLI) in <state_dir>/tls; the supervisor's settings with its own, and each instance's
    SCOREMESH_TLS_* variables."""
    issued = make_mesh_certificates(settings.state_dir / tls.TLS_DIR, ["supervisor", *(s.instance_id for s in specs)])
    own = issued["supervisor"]
    settings = settings.model_copy(update={"tls_ca": own.ca, "tls_cert": own.cert, "tls_key": own.key})
    instance_env = {
        name: {"SCOREMESH_TLS_CA": str(i.ca), "SCOREMESH_TLS_CERT": str(i.cert), "SCOREMESH_TLS_KEY": str(i.key)}
        for name, i in issued.items()
    }
    return settings, instance_env


async def run_up(settings: MeshSettings, replicas: int, use_tls: bool = False) -> int:
    specs = default_specs(replicas)
    instance_env: dict[str, dict[str, str]] = {}
    if use_tls:
        settings, instance_env = prepare_tls(settings, specs)
    elif settings.tls_ca is None:
        shutil.rmtree(settings.state_dir / tls.TLS_DIR, ignore_errors=True)  # the CLI must not speak TLS to a plaintext mesh
    runtime = ServiceRuntime(settings, "supervisor", "supervisor")
    env = dict(os.environ, SCOREMESH_STATE_DIR=str(settings.state_dir))
    supervisor = Supervisor(specs, settings.log_dir, env, instance_env=instance_env)
    token = admin_token(settings.admin_token, settings.state_dir)
    runtime.add_servicer(supervisor_pb2_grpc.add_SupervisorServicer_to_server, SupervisorServicer(supervisor, token), "scoremesh.v1.Supervisor")
    await runtime.start()
    runtime.install_signal_handlers()
    await supervisor.start_all()
    await runtime.set_serving(True)
    runtime.spawn(_announce_when_healthy(settings), "announce")
    runtime.spawn(_publish_scrape_targets(runtime, settings), "scrape-targets")
    mode = f"mTLS (CA {settings.tls_ca})" if settings.tls_ca else "plaintext"
    print(f"scoremesh: supervisor up, {mode}, state in {settings.state_dir}; Ctrl-C stops the mesh", flush=True)
    try:
        await runtime.wait_for_stop_signal()
    finally:
        print("scoremesh: stopping the mesh", flush=True)
        await supervisor.stop_all()
        await runtime.stop()
    print("scoremesh: stopped", flush=True)
    return 0


def ensure_admin_token(state_dir) -> None:
    """The admin token the CLI and the services read (<state_dir>/admin-token, mode 0600)."""
    path = state_dir / TOKEN_FILE
    if path.exists():
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")


def up(settings: MeshSettings, replicas: int, use_tls: bool = False) -> int:
    problem = check_configuration()
    if problem:
        print(f"scoremesh: invalid configuration: {problem}", file=sys.stderr)
        return 2
    if any(s.healthy and s.instance.service == "supervisor" for s in open_registry(settings).list_all()):
        print(f"scoremesh: a mesh is already running with state in {settings.state_dir}", file=sys.stderr)
        return 1
    from domain.models.repository import scan

    ensure_admin_token(settings.state_dir)
    if not scan(settings.model_repository):
        from training.train import train

        print(f"scoremesh: no model repository in {settings.model_repository}; training one", flush=True)
        train(settings.model_repository, settings.feature_dir)
    return asyncio.run(run_up(settings, replicas, use_tls))
