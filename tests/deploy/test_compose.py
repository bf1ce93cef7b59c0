"""deploy/docker-compose.yml, checked by docker-compose itself (`config` parses, validates and
interpolates the file as `up` would), then what it must say: the Consul backend with an ACL
token, OTLP to Jaeger, mTLS, a health check per mesh service, recovery without a supervisor."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "docker-compose.yml"
MESH = ("features", "inference-1", "inference-2", "monitoring", "recovery", "router")


def _config(env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("no docker-compose binary (Debian's docker-compose package; .ci/run installs it)")
    return subprocess.run([binary, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, cwd=COMPOSE.parent)


def test_docker_compose_accepts_the_file_and_refuses_to_run_without_tokens():
    missing = _config({"SCOREMESH_CONSUL_TOKEN": "", "SCOREMESH_ADMIN_TOKEN": ""})
    assert missing.returncode != 0 and "set the" in missing.stderr
    resolved = _config({"SCOREMESH_CONSUL_TOKEN": "consul-acl", "SCOREMESH_ADMIN_TOKEN": "admin"})
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    assert {"consul", "jaeger", "prometheus", "grafana", "models", *MESH} <= set(services)
    for name in MESH:
        service = services[name]
        env = service["environment"]
        assert env["SCOREMESH_DISCOVERY"] == "consul" and env["SCOREMESH_CONSUL_TOKEN"] == "consul-acl", name
        assert env["SCOREMESH_ADMIN_TOKEN"] == "admin" and env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317", name
        assert env["SCOREMESH_TLS_CA"] and env["SCOREMESH_TLS_CERT"] and env["SCOREMESH_TLS_KEY"], name
        assert env["SCOREMESH_RESTARTS_BY"] == "orchestrator", name  # no supervisor runs under compose
        probe = service["healthcheck"]["test"]
        assert probe[:4] == ["CMD", "python", "-m", "mesh.health_probe"] and "-tls" in probe, name
    assert "acl" in services["consul"]["command"] and "consul-acl" in services["consul"]["command"]
