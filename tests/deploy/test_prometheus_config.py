"""deploy/prometheus is valid for a real Prometheus (checked with promtool, from Debian's
`prometheus` package, which .ci/run installs)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.e2e.mesh_process import REPO_ROOT

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not installed (apt-get install prometheus); .ci/run installs it")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=REPO_ROOT)


def test_local_scrape_config_is_valid():
    result = _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_and_recording_rules_are_valid():
    result = _promtool("check", "rules", str(PROMETHEUS / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_the_alerts_fire_as_their_unit_tests_say():
    """deploy/prometheus/rules_test.yml: the fast-burn alert waits its `for`, picks the burning
    model only; the error-rate alert fires at 20% errors; an open critical incident alerts."""
    result = _promtool("test", "rules", str(PROMETHEUS / "rules_test.yml"))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_consul_scrape_config_is_valid():
    result = _promtool("check", "config", str(PROMETHEUS / "prometheus-consul.yml"))
    if "field consul_sd_configs not found" in result.stdout + result.stderr:
        pytest.skip("this promtool build has no Consul service discovery (Debian's excludes it)")
    assert result.returncode == 0, result.stdout + result.stderr
