"""`inference.GRPCInferenceService`: protobuf in, protobuf out; the work is in engine.py."""

from __future__ import annotations

import asyncio

from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from mesh.errors import InvalidArgument
from services.inference import converters
from services.inference.engine import InferenceEngine, tensor_metadata
from services.inference.protocol import FEATURE_SCHEMA_PARAMETER, INPUT_NAME, MEMBER_NAMES_PARAMETER, OUTPUT_NAMES

SERVER_NAME = "scoremesh-inference"
SERVER_VERSION = "0.1.0"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.engine.ready)

    async def ModelReady(self, request, context):
        model = self.engine.models.get(request.name)
        ready = self.engine.ready and model is not None and request.version in ("", model.version)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=["model_repository", "statistics"])

    async def ModelMetadata(self, request, context):
        model = self.engine.get(request.name, request.version)
        inputs, outputs = tensor_metadata(model)
        response = pb.ModelMetadataResponse(name=model.name, versions=[model.version], platform="scoremesh_ensemble")
        for name, datatype, shape in inputs:
            response.inputs.add(name=name, datatype=datatype, shape=shape)
        for name, datatype, shape in outputs:
            response.outputs.add(name=name, datatype=datatype, shape=shape)
        return response

    async def ModelInfer(self, request, context):
        model = self.engine.get(request.model_name, request.model_version)
        if FEATURE_SCHEMA_PARAMETER in request.parameters:
            self.engine.check_schema(model, request.parameters[FEATURE_SCHEMA_PARAMETER].string_param)
        arrays = converters.decode_inputs(request)
        if set(arrays) != {INPUT_NAME}:
            raise InvalidArgument(f"inputs: expected exactly one input '{INPUT_NAME}' (got {sorted(arrays)})")
        wanted = [o.name for o in request.outputs] or list(OUTPUT_NAMES)
        unknown = [name for name in wanted if name not in OUTPUT_NAMES]
        if unknown:
            raise InvalidArgument(f"outputs: unknown output {unknown[0]!r} (outputs: {', '.join(OUTPUT_NAMES)})")
        results = await asyncio.to_thread(self.engine.run, model, arrays[INPUT_NAME])
        # member_scores columns follow the ensemble's member order; name them for the caller.
        parameters = {MEMBER_NAMES_PARAMETER: ",".join(model.packed.member_names), FEATURE_SCHEMA_PARAMETER: "/".join(model.schema)}
        return converters.encode_response(
            model.name, model.version, request.id, {n: results[n] for n in wanted}, parameters
        )
