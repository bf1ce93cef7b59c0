"""The Grafana dashboard loads and shows only what exists: every metric a panel queries (directly,
or through a recording rule of deploy/prometheus/rules.yml) is exported by the running mesh."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.e2e.requests import score_request
from tests.e2e.test_mesh import router_stub

pytestmark = pytest.mark.mesh

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)")  # a metric name is followed by {labels} or [range]
RECORDED = re.compile(r"\b([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\b")  # level:metric:operations, Prometheus' naming


def _metric_names(expr: str, recording: dict[str, str]) -> set[str]:
    names = set()
    for name in set(SELECTOR.findall(expr)) | set(RECORDED.findall(expr)):
        if name in recording:
            names |= _metric_names(recording[name], recording)
        else:
            assert ":" not in name, f"{name}: a recording rule that deploy/prometheus/rules.yml does not define"
            names.add(name)
    return names


def test_every_panel_queries_metrics_the_mesh_exports(mesh):
    dashboard = json.loads((DEPLOY / "grafana" / "scoremesh.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    recording = {r["record"]: r["expr"] for group in rules["groups"] for r in group["rules"] if "record" in r}
    wanted: dict[str, str] = {}
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in _metric_names(target["expr"], recording):
                wanted[name] = panel["title"]
    assert len(wanted) >= 3

    router_stub(mesh).Score(score_request(3, seed=11), timeout=10)  # a Score: the per-method series exist
    exported = set()
    for instance in mesh.status()["instances"]:
        text = urllib.request.urlopen(instance["metrics"], timeout=5).read().decode()
        exported |= {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}
        # A metric declared (# TYPE) with no series yet, e.g. a signal before the first evaluation round.
        declared = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
        exported |= {name + ("_total" if kind == "counter" else "") for name, kind in declared.items()} | set(declared)
    missing = {name: title for name, title in wanted.items() if name not in exported}
    assert missing == {}, f"panels query metrics no service exports: {missing}"
