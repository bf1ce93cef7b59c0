"""deploy/kubernetes: validated offline against the Kubernetes 1.31 OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), then what a production cluster
expects of it."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "scoremesh.yaml"
KUBERNETES_VERSION = "1.31.0"
SERVICES = {"router": "scoremesh.v1.Router", "features": "scoremesh.v1.FeatureService", "inference": "inference.GRPCInferenceService",
            "monitoring": "scoremesh.v1.Monitoring", "recovery": "scoremesh.v1.Recovery"}


def _documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def _of(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == kind}


def test_every_resource_validates_against_the_kubernetes_schemas():
    documents = _documents()
    assert len(documents) >= 20
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises on any schema error


def test_probes_resources_and_no_root():
    deployments = _of("Deployment")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and {"cpu", "memory"} <= set(container["resources"]["limits"])
        probes = {kind: container[kind]["exec"]["command"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
        for command in probes.values():
            assert command[:3] == ["python", "-m", "mesh.health_probe"] and "-tls" in command  # mTLS: exec probes
        service_of = {kind: command[command.index("-service") + 1] for kind, command in probes.items()}
        assert service_of == {"livenessProbe": "liveness", "readinessProbe": SERVICES[name], "startupProbe": "liveness"}, name
        env = {e["name"]: e for e in container["env"]}
        assert env["SCOREMESH_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "scoremesh-admin"
        assert env["SCOREMESH_CONSUL_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "scoremesh-consul"
        assert {"secret": {"secretName": "scoremesh-tls", "defaultMode": 0o440}, "name": "tls"} in pod["volumes"]
    config = _of("ConfigMap")["scoremesh-env"]["data"]
    assert config["SCOREMESH_RESTARTS_BY"] == "orchestrator" and config["SCOREMESH_HOST"] == "0.0.0.0"
    assert config["SCOREMESH_TLS_CA"] == "/tls/ca.crt"


def test_autoscaling_and_disruption_budgets_as_the_design_says():
    autoscalers = _of("HorizontalPodAutoscaler")
    assert "inference" in autoscalers
    for hpa in autoscalers.values():
        spec = hpa["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 10)
        targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in spec["metrics"]}
        assert targets == {"cpu": 70, "memory": 80}
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    budgets = _of("PodDisruptionBudget")
    assert set(autoscalers) <= set(budgets)


def test_only_the_router_is_reachable_from_outside():
    policies = _of("NetworkPolicy")
    deny = policies["scoremesh-default-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "scoremesh"}} and "ingress" not in deny
    open_to_all = [p["spec"] for p in policies.values() if any("from" not in rule for rule in p["spec"].get("ingress", []))]
    assert [p["podSelector"] for p in open_to_all] == [{"matchLabels": {"app": "router"}}]
    for deployment in _of("Deployment").values():
        assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "scoremesh"
