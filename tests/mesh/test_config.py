from __future__ import annotations

from pathlib import Path

from services.router.app import RouterSettings


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
