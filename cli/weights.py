"""`scoremesh weights show|enable|disable|rollback MODEL`: online ensemble weighting."""

from __future__ import annotations

import datetime
import json
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from cli.instances import first_address
from mesh import tls
from mesh.admin_auth import admin_token
from mesh.config import MeshSettings
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc


def weights(settings: MeshSettings, action: str, model: str, reason: str = "", as_json: bool = False) -> int:
    address = first_address(settings, "monitoring")
    if address is None:
        return 1
    token = admin_token(settings.admin_token, settings.state_dir)
    with tls.Channels(tls.for_cli(settings)).sync(address) as channel:
        stub = monitoring_pb2_grpc.MonitoringStub(channel)
        try:
            if action == "show":
                status = stub.GetWeighting(monitoring_pb2.GetWeightingRequest(model_name=model), timeout=10).status
            else:
                status = stub.SetWeighting(monitoring_pb2.SetWeightingRequest(model_name=model, action=action, reason=reason), timeout=10,
                                           metadata=(("authorization", f"Bearer {token}"),) if token else ()).status
        except grpc.RpcError as error:
            print(f"scoremesh: {action} failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps(MessageToDict(status, preserving_proto_field_name=True), indent=2))
        return 0
    print(f"{status.model_name}: online weighting {'on' if status.enabled else 'off'}")
    for version in status.versions:
        current = version.current
        print(f"  v{version.model_version}: weights #{current.number} {dict(current.weights)} ({current.source or 'training'}); "
              f"{version.outcomes_learned} outcomes learned since")
        for past in version.history:
            when = datetime.datetime.fromtimestamp(past.created_at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            print(f"    #{past.number} {when} {past.source}: {dict(past.weights)} - {past.reason}")
    return 0
