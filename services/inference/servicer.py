"""`inference.GRPCInferenceService` (Open Inference Protocol): protobuf in, protobuf out; the work
is in model_manager.py and batching.py."""

from __future__ import annotations

import hmac
import time

from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from mesh.errors import InvalidArgument, MeshError, NotFound, PermissionDenied, Unauthenticated
from services.inference import converters
from services.inference.model_manager import ModelManager, ServedVersion, check_features, to_tensor
from services.inference.protocol import FEATURE_SCHEMA_PARAMETER, INPUT_NAME, MEMBER_NAMES_PARAMETER, OUTPUT_NAMES

SERVER_NAME = "scoremesh-inference"
SERVER_VERSION = "0.1.0"
INPUT_DATATYPES = ("FP32", "FP16", "BF16")


def tensor_metadata(served: ServedVersion):
    packed = served.model.packed
    inputs = [(INPUT_NAME, "FP32", [-1, packed.input_dim])]
    outputs = [("score", "FP32", [-1]), ("member_scores", "FP32", [-1, packed.members]), ("confidence", "FP32", [-1])]
    return inputs, outputs


def _duration(message: pb.StatisticDuration, value) -> None:
    message.count, message.ns = value.count, value.ns


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, manager: ModelManager, admin_token: str | None = None) -> None:
        self.manager = manager
        self.admin_token = admin_token

    # ---------------------------------------------------------------- health & metadata
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.manager.ready)

    async def ModelReady(self, request, context):
        try:
            self.manager.get(request.name, request.version)
        except MeshError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=["model_repository", "statistics"])

    async def ModelMetadata(self, request, context):
        served = self.manager.get(request.name, request.version)
        inputs, outputs = tensor_metadata(served)
        versions = sorted(self.manager.served[request.name], key=int)
        response = pb.ModelMetadataResponse(name=served.model.name, versions=versions, platform="scoremesh_ensemble")
        for name, datatype, shape in inputs:
            response.inputs.add(name=name, datatype=datatype, shape=shape)
        for name, datatype, shape in outputs:
            response.outputs.add(name=name, datatype=datatype, shape=shape)
        return response

    # ---------------------------------------------------------------- inference
    async def ModelInfer(self, request, context):
        started = time.monotonic()
        served = self.manager.get(request.model_name, request.model_version)
        try:
            if FEATURE_SCHEMA_PARAMETER in request.parameters:
                self.manager.check_schema(served, request.parameters[FEATURE_SCHEMA_PARAMETER].string_param)
            arrays = converters.decode_inputs(request)
            if set(arrays) != {INPUT_NAME}:
                raise InvalidArgument(f"inputs: expected exactly one input '{INPUT_NAME}' (got {sorted(arrays) or 'none'})")
            array, datatype = arrays[INPUT_NAME]
            if datatype not in INPUT_DATATYPES:
                raise InvalidArgument(f"input '{INPUT_NAME}': datatype must be one of {', '.join(INPUT_DATATYPES)} (got {datatype})")
            wanted = [o.name for o in request.outputs] or list(OUTPUT_NAMES)
            unknown = [name for name in wanted if name not in OUTPUT_NAMES]
            if unknown:
                raise InvalidArgument(f"outputs: unknown output {unknown[0]!r} (outputs: {', '.join(OUTPUT_NAMES)})")
            x = to_tensor(array, datatype)
            check_features(served, x)
            remaining = context.time_remaining()
            deadline = None if remaining is None else time.monotonic() + remaining
            input_s = time.monotonic() - started
            outputs, timing = await served.infer(x, deadline)
            encoded_at = time.monotonic()
            response = converters.encode_response(
                served.model.name, served.version, request.id,
                {name: outputs[name].float().cpu().numpy() for name in wanted},
                {MEMBER_NAMES_PARAMETER: ",".join(served.model.packed.member_names), FEATURE_SCHEMA_PARAMETER: "/".join(served.model.schema)},
            )
        except MeshError as error:
            served.stats.record_failure(time.monotonic() - started, error.status)
            raise
        except Exception:
            served.stats.record_failure(time.monotonic() - started, "INTERNAL")
            raise
        done = time.monotonic()
        served.stats.record_success(int(x.shape[0]), done - started, timing.queue_s, timing.compute_s, input_s, done - encoded_at)
        return response

    # ---------------------------------------------------------------- statistics
    async def ModelStatistics(self, request, context):
        if request.name and request.name not in self.manager.served:
            raise NotFound(f"name: model {request.name!r} is not served here")
        response = pb.ModelStatisticsResponse()
        for name in sorted(self.manager.served):
            if request.name and name != request.name:
                continue
            versions = self.manager.served[name]
            if request.version and request.version not in versions:
                raise NotFound(f"version: model {name!r} has no ready version {request.version!r}")
            for version in sorted(versions, key=int):
                if request.version and version != request.version:
                    continue
                stats = versions[version].stats
                entry = response.model_stats.add(
                    name=name, version=version, last_inference=stats.last_inference_ms,
                    inference_count=stats.inference_count, execution_count=stats.execution_count,
                )
                for field in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output"):
                    _duration(getattr(entry.inference_stats, field), getattr(stats, field))
                for rows, duration in sorted(stats.batches.items()):
                    batch = entry.batch_stats.add(batch_size=rows)
                    _duration(batch.compute_infer, duration)
        return response

    # ---------------------------------------------------------------- repository (admin)
    def _authorize(self, context) -> None:
        if not self.admin_token:
            return
        headers = dict(context.invocation_metadata() or ())
        given = headers.get("authorization", "")
        if not given:
            raise Unauthenticated("repository calls need an 'authorization: Bearer <token>' header")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.admin_token}".encode()):
            raise PermissionDenied("the bearer token is not the admin token")

    async def RepositoryIndex(self, request, context):
        response = pb.RepositoryIndexResponse()
        for name, version, state, reason in self.manager.index():
            if request.ready and state != "READY":
                continue
            response.models.add(name=name, version=version, state=state, reason=reason)
        return response

    async def RepositoryModelLoad(self, request, context):
        self._authorize(context)
        if not request.model_name:
            raise InvalidArgument("model_name: required")
        await self.manager.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request, context):
        self._authorize(context)
        if not request.model_name:
            raise InvalidArgument("model_name: required")
        await self.manager.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()
