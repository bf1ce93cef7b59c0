"""Open Inference Protocol messages <-> the data plane's typed requests and responses (types.py).
Pure functions, round-trip tested.

Decoding checks what the wire can get wrong before anything is allocated: datatypes, negative
dimensions, rank, element counts (exact integers: no overflow), byte lengths against shapes.
"""

from __future__ import annotations

import math

import numpy as np

from domain.errors import InvalidArgument, quote
from domain.inference_protocol import DATATYPES, FEATURE_SCHEMA_HEADER, MODEL_VERSION_HEADER, VERSION_STAGES_HEADER, stages_header
from inference import grpc_service_pb2 as pb
from scoremesh.v1 import monitoring_pb2
from services.inference.statistics import VersionStatistics
from services.inference.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RepositoryEntry,
    ServerMetadata,
    Tensor,
)

# Tensors of more dimensions are refused (NumPy's own limit is 64).
MAX_RANK = 32


def _parameter(value: pb.InferParameter) -> object:
    kind = value.WhichOneof("parameter_choice")
    return None if kind is None else getattr(value, kind)


def _decode_tensor(tensor, raw: bytes | None) -> Tensor:
    where = f"input {quote(tensor.name, 20)}"
    if tensor.datatype not in DATATYPES:
        raise InvalidArgument(f"{where}: datatype {quote(tensor.datatype, 20)} is not supported ({', '.join(DATATYPES)})")
    dtype, field = DATATYPES[tensor.datatype]
    shape = list(tensor.shape)
    if len(shape) > MAX_RANK:
        raise InvalidArgument(f"{where}: shape has {len(shape)} dimensions (at most {MAX_RANK})")
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"{where}: shape {shape} has a negative dimension")
    count = math.prod(shape)  # Python integers: a product of huge dimensions cannot overflow
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise InvalidArgument(
                f"{where}: {len(raw)} raw bytes, expected {count * dtype.itemsize} for shape {shape} {tensor.datatype}"
            )
        values = np.frombuffer(raw, dtype=dtype)
    else:
        if field is None:
            raise InvalidArgument(f"{where}: datatype {tensor.datatype} must be sent as raw_input_contents")
        contents = getattr(tensor.contents, field)
        if len(contents) != count:
            raise InvalidArgument(f"{where}: {len(contents)} values in contents, expected {count} for shape {shape}")
        values = np.asarray(contents, dtype=dtype)
    return Tensor(tensor.name, tensor.datatype, values.reshape(shape))


def infer_request_from_proto(request: pb.ModelInferRequest, deadline: float | None) -> InferenceRequest:
    """Every input tensor decoded to the shape it declares; errors name the tensor."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} inputs")
    inputs = []
    seen = set()
    for index, tensor in enumerate(request.inputs):
        if tensor.name in seen:
            raise InvalidArgument(f"input {quote(tensor.name, 20)}: given twice")
        seen.add(tensor.name)
        inputs.append(_decode_tensor(tensor, raw[index] if raw else None))
    return InferenceRequest(
        model_name=request.model_name,
        model_version=request.model_version,
        id=request.id,
        inputs=tuple(inputs),
        outputs=tuple(o.name for o in request.outputs),
        parameters={key: _parameter(value) for key, value in request.parameters.items()},
        deadline=deadline,
    )


def infer_response_to_proto(response: InferenceResponse) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version, id=response.id)
    for key, value in response.parameters.items():
        message.parameters[key].string_param = value
    for tensor in response.outputs:
        array = np.ascontiguousarray(tensor.data, dtype="<f4")
        message.outputs.add(name=tensor.name, datatype="FP32", shape=list(array.shape))
        message.raw_output_contents.append(array.tobytes())
    return message


def model_metadata_to_proto(metadata: ModelMetadata) -> tuple[pb.ModelMetadataResponse, tuple[tuple[str, str], ...]]:
    """The response and its headers (the version described and its feature schema)."""
    response = pb.ModelMetadataResponse(name=metadata.name, versions=list(metadata.versions), platform=metadata.platform)
    for spec in metadata.inputs:
        response.inputs.add(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))
    for spec in metadata.outputs:
        response.outputs.add(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))
    return response, ((MODEL_VERSION_HEADER, metadata.version), (FEATURE_SCHEMA_HEADER, metadata.feature_schema),
                      (VERSION_STAGES_HEADER, stages_header(metadata.stages)))


def server_metadata_to_proto(metadata: ServerMetadata) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=metadata.name, version=metadata.version, extensions=list(metadata.extensions))


def _duration(message: pb.StatisticDuration, value) -> None:
    message.count, message.ns = value.count, value.ns


def statistics_to_proto(found: list[VersionStatistics]) -> pb.ModelStatisticsResponse:
    response = pb.ModelStatisticsResponse()
    for stats in found:
        entry = response.model_stats.add(
            name=stats.name, version=stats.version, last_inference=stats.last_inference_ms,
            inference_count=stats.inference_count, execution_count=stats.execution_count,
        )
        for field in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output"):
            _duration(getattr(entry.inference_stats, field), getattr(stats, field))
        for rows, duration in sorted(stats.batches.items()):
            batch = entry.batch_stats.add(batch_size=rows)
            _duration(batch.compute_infer, duration)
    return response


def repository_index_to_proto(entries: list[RepositoryEntry]) -> pb.RepositoryIndexResponse:
    response = pb.RepositoryIndexResponse()
    for entry in entries:
        response.models.add(name=entry.name, version=entry.version, state=entry.state, reason=entry.reason)
    return response


UNLOAD_PARAMETERS = ("version", "reason")


def unload_request_from_proto(request: pb.RepositoryModelUnloadRequest) -> tuple[str, str, str]:
    """(model name, version or "", reason): the `version` and `reason` string parameters say
    which one version to hold back, and why (shown in the repository index)."""
    found = {}
    for key, value in request.parameters.items():
        if key not in UNLOAD_PARAMETERS:
            raise InvalidArgument(f"parameters[{quote(key, 20)}]: unknown (known: {', '.join(UNLOAD_PARAMETERS)})")
        if value.WhichOneof("parameter_choice") != "string_param":
            raise InvalidArgument(f"parameters[{key!r}]: must be a string_param")
        found[key] = value.string_param
    version = found.get("version", "")
    if version and not version.isdigit():
        raise InvalidArgument(f"parameters['version']: must be a version number (got {quote(version, 20)})")
    return request.model_name, version, found.get("reason", "")[:200]


def rows_of(response: InferenceResponse) -> int:
    """Rows scored: the first dimension of the first output (0 when there is none)."""
    return int(response.outputs[0].data.shape[0]) if response.outputs and response.outputs[0].data.ndim else 0


def telemetry_to_proto(batch: list[dict]) -> monitoring_pb2.ReportRequest:
    return monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord(**record) for record in batch])
