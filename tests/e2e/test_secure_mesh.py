"""`scoremesh up --tls`: the whole mesh over mTLS with a local CA, admin calls locked by the
token `up` generates. Score, status and grpcurl work with the CA; plaintext, a certificate of
another CA and a client without a certificate are refused; every admin RPC answers
UNAUTHENTICATED without the token, PERMISSION_DENIED with a wrong one, and works with it."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys

import grpc
import pytest
from google.protobuf.json_format import MessageToJson

from inference import grpc_service_pb2 as oip
from inference import grpc_service_pb2_grpc as oip_grpc
from mesh import tls
from mesh.certificates import CertificateAuthority
from scoremesh.v1 import recovery_pb2, recovery_pb2_grpc, router_pb2, router_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc
from tests.e2e.mesh_process import MeshProcess, scoremesh
from tests.e2e.requests import score_request
from training.train import TrainOptions, train

pytestmark = pytest.mark.mesh


@pytest.fixture(scope="module")
def secure_mesh(tmp_path_factory):
    state = tmp_path_factory.mktemp("secure") / "state"
    train(state / "models", state / "features", TrainOptions(rows=3000, max_epochs=1), progress=lambda _: None)
    process = MeshProcess(state, args=("--tls",))
    try:
        process.start()
        yield process
    finally:
        process.stop()


def _material(mesh: MeshProcess, name: str = "cli") -> tls.TlsMaterial:
    directory = mesh.state_dir / "tls"
    return tls.load(directory / "ca.pem", directory / f"{name}.pem", directory / f"{name}.key")


def _channel(mesh: MeshProcess, service: str) -> grpc.Channel:
    return tls.Channels(_material(mesh)).sync(mesh.address(service))


def _code(call) -> str:
    try:
        call()
    except grpc.RpcError as error:
        return error.code().name
    return "OK"


def test_the_cli_scores_and_reports_status_over_mtls(secure_mesh):
    status = secure_mesh.status()
    assert status["returncode"] == 0 and status["healthy"] and len(status["instances"]) == 7
    result = scoremesh("score", "--json", state_dir=secure_mesh.state_dir)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["candidates"]) > 0
    with _channel(secure_mesh, "router") as channel:
        response = router_pb2_grpc.RouterStub(channel).Score(score_request(4, seed=1), timeout=10)
    assert len(response.candidates) == 4 and all(0.0 < c.score < 1.0 for c in response.candidates)


def test_keys_are_private_and_certificates_name_the_instance(secure_mesh):
    directory = secure_mesh.state_dir / "tls"
    for key in directory.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    token = secure_mesh.state_dir / "admin-token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    names = {p.stem for p in directory.glob("*.pem")}
    assert {"ca", "cli", "supervisor", "router-1", "features-1", "inference-1", "inference-2", "monitoring-1", "recovery-1"} <= names
    assert token.read_text().strip() not in secure_mesh.log()  # never logged


def test_plaintext_another_ca_and_no_client_certificate_are_refused(secure_mesh, tmp_path):
    address = secure_mesh.address("router")
    request = score_request(2, seed=2)
    with grpc.insecure_channel(address) as channel:
        assert _code(lambda: router_pb2_grpc.RouterStub(channel).Score(request, timeout=3)) == "UNAVAILABLE"
    stranger = CertificateAuthority(tmp_path / "other-ca").issue("cli")
    forged = tls.TlsMaterial((secure_mesh.state_dir / "tls" / "ca.pem").read_bytes(), stranger.cert.read_bytes(), stranger.key.read_bytes())
    with tls.Channels(forged).sync(address) as channel:  # trusts the mesh, but its certificate is not the mesh's
        assert _code(lambda: router_pb2_grpc.RouterStub(channel).Score(request, timeout=3)) == "UNAVAILABLE"
    mesh_ca = (secure_mesh.state_dir / "tls" / "ca.pem").read_bytes()
    with grpc.secure_channel(address, grpc.ssl_channel_credentials(mesh_ca)) as channel:  # TLS without a client certificate
        assert _code(lambda: router_pb2_grpc.RouterStub(channel).Score(request, timeout=3)) == "UNAVAILABLE"
    with _channel(secure_mesh, "router") as channel:  # and the mesh still serves
        assert _code(lambda: router_pb2_grpc.RouterStub(channel).Score(request, timeout=10)) == "OK"


def test_grpcurl_works_with_the_ca_and_not_without(secure_mesh):
    assert shutil.which("grpcurl")
    directory = secure_mesh.state_dir / "tls"
    address = secure_mesh.address("router")
    with_ca = ["grpcurl", "-cacert", str(directory / "ca.pem"), "-cert", str(directory / "cli.pem"), "-key", str(directory / "cli.key")]
    listed = subprocess.run([*with_ca, address, "list"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0 and "scoremesh.v1.Router" in listed.stdout.split(), listed.stderr
    request = score_request(1, seed=7)
    body = MessageToJson(request)
    scored = subprocess.run([*with_ca, "-d", body, address, "scoremesh.v1.Router/Score"], capture_output=True, text=True, timeout=30)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["candidates"][0]["ad_id"] == request.candidates[0].ad_id  # grpcurl keeps proto names
    plaintext = subprocess.run(["grpcurl", "-plaintext", "-connect-timeout", "2", address, "list"], capture_output=True, text=True, timeout=30)
    assert plaintext.returncode != 0


def test_every_admin_rpc_needs_the_token(secure_mesh):
    token = (secure_mesh.state_dir / "admin-token").read_text().strip()
    headers = {"none": (), "wrong": (("authorization", "Bearer not-the-token"),), "right": (("authorization", f"Bearer {token}"),)}
    with _channel(secure_mesh, "router") as channel:
        current = router_pb2_grpc.RouterStub(channel).GetRoutingConfig(router_pb2.GetRoutingConfigRequest(), timeout=5).yaml
    calls = {
        "inference RepositoryModelLoad": ("inference", lambda c, m: oip_grpc.GRPCInferenceServiceStub(c).RepositoryModelLoad(
            oip.RepositoryModelLoadRequest(model_name="ctr_ensemble"), timeout=30, metadata=m)),
        "router ApplyRoutingConfig": ("router", lambda c, m: router_pb2_grpc.RouterStub(c).ApplyRoutingConfig(
            router_pb2.ApplyRoutingConfigRequest(yaml=current, dry_run=True), timeout=10, metadata=m)),
        "recovery Trigger": ("recovery", lambda c, m: recovery_pb2_grpc.RecoveryStub(c).Trigger(
            recovery_pb2.TriggerRequest(action="restart_service", instance_id="monitoring-1", reason="test"), timeout=60, metadata=m)),
        "supervisor RestartInstance": ("supervisor", lambda c, m: supervisor_pb2_grpc.SupervisorStub(c).RestartInstance(
            supervisor_pb2.RestartInstanceRequest(instance_id="monitoring-1", reason="test"), timeout=60, metadata=m)),
    }
    outcomes = {}
    for name, (service, call) in calls.items():
        with _channel(secure_mesh, service) as channel:
            outcomes[name] = [_code(lambda: call(channel, headers[kind])) for kind in ("none", "wrong", "right")]
    assert outcomes == {name: ["UNAUTHENTICATED", "PERMISSION_DENIED", "OK"] for name in calls}


def test_the_exec_health_probe_checks_over_mtls(secure_mesh):
    """What Kubernetes runs as the liveness/readiness probe of a pod on mTLS."""
    directory = secure_mesh.state_dir / "tls"
    address = secure_mesh.address("router")
    base = [sys.executable, "-m", "mesh.health_probe", "-addr", address]
    flags = ["-tls", "-tls-ca-cert", str(directory / "ca.pem"), "-tls-client-cert", str(directory / "cli.pem"),
             "-tls-client-key", str(directory / "cli.key")]
    for service in ("liveness", ""):
        result = subprocess.run([*base, "-service", service, *flags], capture_output=True, text=True, timeout=30)
        assert (result.returncode, result.stdout.strip()) == (0, "status: SERVING"), result.stderr
    assert subprocess.run([*base, "-service", "no.such.Service", *flags], capture_output=True, timeout=30).returncode == 3
    assert subprocess.run(base, capture_output=True, timeout=30).returncode == 2  # plaintext: no connection
