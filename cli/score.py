"""`scoremesh score`: one Score request through the running mesh (and, with --explain, why it
took its route)."""

from __future__ import annotations

import argparse
import json
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from mesh import tls
from mesh.config import MeshSettings
from mesh.discovery import open_registry
from scoremesh.v1 import router_pb2, router_pb2_grpc
from services.router.converters import score_request_to_proto
from training.synthetic import sample_request


def router_address(settings: MeshSettings) -> str | None:
    routers = open_registry(settings).resolve("router")
    if not routers:
        print(f"scoremesh: no healthy router (is `scoremesh up` running with state in {settings.state_dir}?)", file=sys.stderr)
        return None
    return routers[0].address


def score(settings: MeshSettings, args: argparse.Namespace) -> int:
    address = router_address(settings)
    if address is None:
        return 1
    context, candidates = sample_request(args.candidates, args.data_type, seed=args.seed)
    request = score_request_to_proto(args.request_id or "", context, candidates)
    metadata = (("x-scoremesh-caller", args.caller),) if args.caller else ()
    with tls.Channels(tls.for_cli(settings)).sync(address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        try:
            response = stub.Score(request, timeout=args.timeout, metadata=metadata)
            explanation = stub.ExplainRoute(router_pb2.ExplainRouteRequest(data_type=request.data_type, context=request.context),
                                            timeout=args.timeout) if args.explain else None
        except grpc.RpcError as error:
            print(f"scoremesh: Score failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if args.json:
        document = MessageToDict(response, preserving_proto_field_name=True)
        if explanation is not None:
            document = {"score": document, "explain": MessageToDict(explanation, preserving_proto_field_name=True)}
        print(json.dumps(document, indent=2))
        return 0
    fallback = " (fallback)" if response.fallback_used else ""
    print(f"model {response.model.name} v{response.model.version}{fallback}, route {response.route} (rule {response.rule or 'default'}, "
          f"arm {response.split_arm}), config {response.config_version}, trace {response.trace_id}")
    for c in response.candidates:
        members = ", ".join(f"{m.member}={m.score:.4f}" for m in c.member_scores)
        print(f"  {c.ad_id:<10} score {c.score:.4f}  confidence {c.confidence:.4f}  bid {c.bid:.3f}  [{members}]")
    if explanation is not None:
        print(f"route {explanation.route}: {explanation.reason}")
        for evaluation in explanation.evaluations:
            verdict = "matched" if evaluation.matched else f"no: {evaluation.failed_condition}"
            print(f"  rule {evaluation.rule:<28} {verdict}")
    return 0
