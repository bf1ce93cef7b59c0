"""`scoremesh experiments show`: the arms of each route's traffic split compared on feedback."""

from __future__ import annotations

import json
import math
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from cli.instances import first_address
from mesh import tls
from mesh.config import MeshSettings
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc


def _estimate(e) -> str:
    if math.isnan(e.value):
        return "n/a"
    return f"{e.value:.4f}" + ("" if math.isnan(e.low) else f" [{e.low:.4f}, {e.high:.4f}]")


def show(settings: MeshSettings, route: str, window_s: float, as_json: bool) -> int:
    address = first_address(settings, "monitoring")
    if address is None:
        return 1
    with tls.Channels(tls.for_cli(settings)).sync(address) as channel:
        try:
            response = monitoring_pb2_grpc.MonitoringStub(channel).GetExperiment(
                monitoring_pb2.GetExperimentRequest(route=route, window_seconds=window_s), timeout=30)
        except grpc.RpcError as error:
            print(f"scoremesh: experiments failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps(MessageToDict(response, preserving_proto_field_name=True), indent=2))
        return 0
    if not response.routes:
        print("no joined outcomes in the window (send feedback: Monitoring/Feedback, or `scoremesh simulate`)")
    for experiment in response.routes:
        print(f"route {experiment.route}:")
        for arm in experiment.arms:
            p = "" if math.isnan(arm.log_loss_p_value) else f", p {arm.log_loss_p_value:.3g}"
            print(f"  {arm.arm:<12} {arm.verdict:<12}{p}  {arm.outcomes} outcomes ({', '.join(arm.models)})")
            print(f"      rate {_estimate(arm.positive_rate)}  log loss {_estimate(arm.log_loss)}  AUC {_estimate(arm.auc)}")
    return 0
