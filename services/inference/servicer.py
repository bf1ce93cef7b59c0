"""`inference.GRPCInferenceService` (Open Inference Protocol): protobuf in, protobuf out; the
work is in handler.py."""

from __future__ import annotations

import time

from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from domain.errors import MeshError
from mesh.handlers import header
from mesh.telemetry_buffer import TelemetryBuffer
from services.inference import converters
from services.inference.handler import InferenceHandler


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, handler: InferenceHandler, telemetry: TelemetryBuffer | None = None, instance_id: str = "") -> None:
        self.handler = handler
        self.telemetry = telemetry
        self.instance_id = instance_id

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=self.handler.live())

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.handler.ready())

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.handler.model_ready(request.name, request.version))

    async def ServerMetadata(self, request, context):
        return converters.server_metadata_to_proto(self.handler.server_metadata())

    async def ModelMetadata(self, request, context):
        response, headers = converters.model_metadata_to_proto(self.handler.model_metadata(request.name, request.version))
        await context.send_initial_metadata(headers)
        return response

    async def ModelInfer(self, request, context):
        started = time.perf_counter()
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            response = await self.handler.infer(converters.infer_request_from_proto(request, deadline))
        except MeshError as error:
            # A version not served here (rolled back, unloaded, never loaded) is the caller's
            # routing miss, which the router reports; the replica's own record would make a
            # healthy replica look like an outlier during a rollback.
            if self.handler.model_ready(request.model_name, request.model_version):
                self._report(request.model_name, request.model_version, error.status, started, 0)
            raise
        answer = converters.infer_response_to_proto(response)
        self._report(response.model_name, response.model_version, "OK", started, converters.rows_of(response))
        return answer

    def _report(self, model: str, version: str, status: str, started: float, rows: int) -> None:
        """One record per ModelInfer to monitoring, off the hot path (a full buffer drops it)."""
        if self.telemetry is not None:
            self.telemetry.offer({
                "service": "inference", "instance_id": self.instance_id, "model_name": model[:128], "model_version": version[:128],
                "status": status, "latency_ms": (time.perf_counter() - started) * 1000, "candidates": rows, "timestamp": time.time(),
            })

    async def ModelStatistics(self, request, context):
        return converters.statistics_to_proto(self.handler.statistics(request.name, request.version))

    async def RepositoryIndex(self, request, context):
        return converters.repository_index_to_proto(self.handler.repository_index(request.ready))

    async def RepositoryModelLoad(self, request, context):
        await self.handler.load(request.model_name, header(context, "authorization"))
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request, context):
        name, version, reason = converters.unload_request_from_proto(request)
        await self.handler.unload(name, header(context, "authorization"), version, reason)
        return pb.RepositoryModelUnloadResponse()
