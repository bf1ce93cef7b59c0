"""The router's calls to other services over gRPC: the adapters behind the domain's injected
`extract`, `infer` and model descriptions, and the telemetry stream to monitoring."""

from __future__ import annotations

import logging

import grpc
import numpy as np

from domain.errors import InvalidArgument, UpstreamError
from domain.inference_protocol import (FEATURE_SCHEMA_HEADER, FEATURE_SCHEMA_PARAMETER, MEMBER_NAMES_PARAMETER, MODEL_VERSION_HEADER,
                                       VERSION_STAGES_HEADER, parse_stages_header)
from inference import grpc_service_pb2 as inference_pb2
from mesh.client import ServiceClient
from mesh.common_messages import candidates_to_proto, context_to_proto
from mesh.inference_client import decode_response, encode_request
from mesh.status_details import error_info
from scoremesh.v1 import features_pb2
from services.router.model_catalog import ModelChoice, ModelDescription
from services.router.scoring import Features, Inference, ScoreRequest

log = logging.getLogger(__name__)

DESCRIBE_TIMEOUT_S = 2.0


class FeaturesCalls:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def extract(self, request: ScoreRequest, schema_version: str, timeout: float, attempts: int | None = None) -> Features:
        """Extract with the caller's own messages relayed as they came; the features service
        validates them, and its verdict on the caller's fields is the caller's error."""
        wire = request.wire
        if wire is not None:
            # ScoreRequest's fields 1-4 are ExtractRequest's fields 1-4 (tests/protos checks it):
            # the caller's bytes parse as an ExtractRequest, and the router's own fields, appended,
            # override theirs. Several times cheaper than copying the candidates message by message.
            own = features_pb2.ExtractRequest(request_id=request.request_id, schema_version=schema_version).SerializeToString()
            message = features_pb2.ExtractRequest.FromString(wire.SerializeToString() + own)
        else:
            data_type, context = context_to_proto(request.context)
            message = features_pb2.ExtractRequest(
                request_id=request.request_id, data_type=data_type, context=context,
                candidates=candidates_to_proto(request.candidates), schema_version=schema_version,
            )
        try:
            response = await self.client.call("Extract", message, timeout, attempts=attempts)
        except UpstreamError as error:
            if error.status == "INVALID_ARGUMENT":
                raise InvalidArgument(error.upstream_message) from None
            raise
        # The router never asks for typed values; an answer with them is converted once.
        payload = response.raw_values or np.asarray(response.values, dtype="<f4").tobytes()
        if len(payload) != response.rows * response.cols * 4:
            raise UpstreamError("features", "INTERNAL", f"feature matrix of {len(payload)} bytes for {response.rows}x{response.cols}")
        return Features(payload, response.rows, response.cols, response.schema_name, response.schema_version, response.store_degraded)


class InferenceCalls:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def replicas(self) -> list[str]:
        return [i.address for i in await self.client.instances()]

    async def describe(self, address: str, model: str, version: str) -> ModelDescription:
        """ModelMetadata on one replica: the versions it serves, and from the response headers
        the version described and the feature schema it was trained on."""
        call = self.client.stub(address).ModelMetadata(inference_pb2.ModelMetadataRequest(name=model, version=version), timeout=DESCRIBE_TIMEOUT_S)
        try:
            response = await call
            headers = dict(await call.initial_metadata() or ())
        except grpc.aio.AioRpcError as error:
            raise UpstreamError("inference", error.code().name, error.details() or "", *error_info(error)) from None
        return ModelDescription(tuple(response.versions), headers.get(MODEL_VERSION_HEADER, version), headers.get(FEATURE_SCHEMA_HEADER, ""),
                                parse_stages_header(headers.get(VERSION_STAGES_HEADER, "")))

    async def infer(self, choice: ModelChoice, request_id: str, features: Features, timeout: float, attempts: int | None = None) -> Inference:
        message = encode_request(
            choice.model, features.payload, request_id, choice.version,
            parameters={FEATURE_SCHEMA_PARAMETER: features.schema}, shape=(features.rows, features.cols),
        )
        answer = await self.client.call_answered("ModelInfer", message, timeout, eligible=choice.addresses, attempts=attempts)
        response = answer.response
        try:
            outputs = decode_response(response)
            members = response.parameters[MEMBER_NAMES_PARAMETER].string_param.split(",")
            score, member_scores, confidence = outputs["score"], outputs["member_scores"], outputs["confidence"]
        except (InvalidArgument, KeyError, ValueError) as error:
            raise UpstreamError("inference", "INTERNAL", f"malformed ModelInfer answer: {error}") from None
        rows = features.rows
        if score.shape != (rows,) or confidence.shape != (rows,) or member_scores.shape != (rows, len(members)):
            raise UpstreamError("inference", "INTERNAL", f"ModelInfer answered shapes {score.shape}, {member_scores.shape}, {confidence.shape} for {rows} rows")
        return Inference(response.model_name, response.model_version, members, score, member_scores, confidence,
                         answer.first_instance_id, answer.first_seconds * 1000, answer.first_outrun)
