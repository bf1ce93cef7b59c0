"""`scoremesh models list|promote|rollback`: model versions and their stages."""

from __future__ import annotations

import sys

import grpc

from domain.inference_protocol import VERSION_STAGES_HEADER, parse_stages_header
from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from cli.instances import first_address
from mesh import tls
from mesh.admin_auth import admin_token
from mesh.config import MeshSettings
from scoremesh.v1 import recovery_pb2, recovery_pb2_grpc


def list_models(settings: MeshSettings) -> int:
    """Every model version a replica knows, its state and its stage."""
    address = first_address(settings, "inference")
    if address is None:
        return 1
    with tls.Channels(tls.for_cli(settings)).sync(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
        stages: dict[tuple[str, str], str] = {}
        for name in sorted({m.name for m in index.models}):
            try:
                call = stub.ModelMetadata.with_call(pb.ModelMetadataRequest(name=name), timeout=10)
            except grpc.RpcError:
                continue  # nothing of it serves
            header = dict(call[1].initial_metadata() or ()).get(VERSION_STAGES_HEADER, "")
            stages.update({(name, v): s for v, s in parse_stages_header(header)})
    for m in sorted(index.models, key=lambda m: (m.name, int(m.version) if m.version.isdigit() else 0)):
        stage = stages.get((m.name, m.version), "-")
        print(f"{m.name:<17} v{m.version:<4} {stage:<11} {m.state}{f' ({m.reason})' if m.reason else ''}")
    return 0


def change(settings: MeshSettings, action: str, target: str, reason: str, dry_run: bool) -> int:
    """promote_version (target model:version) or rollback_promotion (target model), through
    recovery's promotion gate (admin token); exits 1 unless it succeeded."""
    address = first_address(settings, "recovery")
    if address is None:
        return 1
    token = admin_token(settings.admin_token, settings.state_dir)
    request = recovery_pb2.TriggerRequest(action=action, target=target, reason=reason or f"{action} by an operator", dry_run=dry_run)
    with tls.Channels(tls.for_cli(settings)).sync(address) as channel:
        try:
            answer = recovery_pb2_grpc.RecoveryStub(channel).Trigger(request, timeout=120,
                                                                     metadata=(("authorization", f"Bearer {token}"),) if token else ())
        except grpc.RpcError as error:
            print(f"scoremesh: {action} failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print(answer.action.outcome)
    return 0 if answer.action.outcome.startswith(("succeeded", "dry run")) else 1
