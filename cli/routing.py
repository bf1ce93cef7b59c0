"""`scoremesh routing show|apply`: the router's routing configuration."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import grpc

from cli.score import router_address
from mesh import tls
from mesh.admin_auth import admin_token
from mesh.config import MeshSettings
from scoremesh.v1 import router_pb2, router_pb2_grpc


def show(settings: MeshSettings, as_json: bool) -> int:
    address = router_address(settings)
    if address is None:
        return 1
    with tls.Channels(tls.for_cli(settings)).sync(address) as channel:
        response = router_pb2_grpc.RouterStub(channel).GetRoutingConfig(router_pb2.GetRoutingConfigRequest(), timeout=5)
    if as_json:
        print(json.dumps({"version": response.version, "source": response.source, "yaml": response.yaml}, indent=2))
    else:
        print(f"# version {response.version}, from {response.source}")
        print(response.yaml, end="")
    return 0


def apply(settings: MeshSettings, path: Path, dry_run: bool) -> int:
    address = router_address(settings)
    if address is None:
        return 1
    token = admin_token(settings.admin_token, settings.state_dir)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with tls.Channels(tls.for_cli(settings)).sync(address) as channel:
        try:
            response = router_pb2_grpc.RouterStub(channel).ApplyRoutingConfig(
                router_pb2.ApplyRoutingConfigRequest(yaml=path.read_text(), dry_run=dry_run), timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            print(f"scoremesh: refused: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    verb = "valid" if dry_run else "applied"
    print(f"{verb}: version {response.version}, {response.rules} rules, {response.routes} routes")
    return 0
