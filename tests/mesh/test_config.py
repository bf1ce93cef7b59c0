from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from mesh.config import ConfigError
from tests.e2e.mesh_process import REPO_ROOT
from services.router.settings import RouterSettings


def test_precedence_flags_over_env_over_yaml_over_defaults(tmp_path, monkeypatch):
    config = tmp_path / "scoremesh.yaml"
    config.write_text("state_dir: /from/yaml\nlog_level: DEBUG\nrouter:\n  max_candidates: 50\n  default_timeout_s: 9\n")
    monkeypatch.setenv("SCOREMESH_CONFIG", str(config))
    monkeypatch.setenv("SCOREMESH_DEFAULT_TIMEOUT_S", "3.5")
    settings = RouterSettings()
    assert settings.state_dir == Path("/from/yaml") and settings.log_level == "DEBUG"
    assert settings.max_candidates == 50  # the router section of the file
    assert settings.default_timeout_s == 3.5  # env beats the file
    assert RouterSettings(max_candidates=7).max_candidates == 7  # explicit beats everything
    assert settings.shutdown_grace_s == 5.0  # default


def test_otlp_endpoint_reads_the_standard_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("SCOREMESH_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    assert RouterSettings().otlp_endpoint == "http://127.0.0.1:4317"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert RouterSettings().otlp_endpoint is None


def test_every_setting_is_documented():
    for name, field in RouterSettings.model_fields.items():
        assert field.description, f"setting {name} has no docstring"


def _config(tmp_path, monkeypatch, text: str) -> None:
    path = tmp_path / "scoremesh.yaml"
    path.write_text(text)
    monkeypatch.setenv("SCOREMESH_CONFIG", str(path))


@pytest.mark.parametrize(
    "text,message",
    [
        ("log_levle: DEBUG\n", "unknown key 'log_levle'"),
        ("rooter:\n  max_candidates: 5\n", "unknown key 'rooter'"),
        ("router:\n  max_candidatez: 5\n", "unknown key 'router.max_candidatez'"),
        ("router: 7\n", "section 'router' must be a mapping"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(tmp_path, monkeypatch, text, message):
    _config(tmp_path, monkeypatch, text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        RouterSettings()


def test_another_sections_keys_are_not_this_ones_business(tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, "inference:\n  max_batch_rows: 64\nrouter:\n  max_candidates: 9\n")
    assert RouterSettings().max_candidates == 9
    with pytest.raises(ValidationError, match="max_batch_rows"):
        RouterSettings(max_batch_rows=64)  # explicit values are checked too


def test_a_service_refuses_a_bad_configuration_with_one_line(tmp_path):
    (tmp_path / "scoremesh.yaml").write_text("router:\n  default_timeout: 3\n")
    env = {**os.environ, "SCOREMESH_CONFIG": str(tmp_path / "scoremesh.yaml"), "SCOREMESH_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run([sys.executable, "-m", "services.router"], capture_output=True, text=True, env=env, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 1
    assert "invalid configuration" in result.stderr and "unknown key 'router.default_timeout'" in result.stderr
    assert "Traceback" not in result.stderr
    up = subprocess.run([sys.executable, "-m", "cli.main", "up", "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, env=env, timeout=60, cwd=REPO_ROOT)
    assert up.returncode == 2 and "unknown key 'router.default_timeout'" in up.stderr and "Traceback" not in up.stderr
