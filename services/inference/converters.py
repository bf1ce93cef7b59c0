"""Open Inference Protocol messages <-> NumPy arrays. Pure functions, round-trip tested."""

from __future__ import annotations

import numpy as np

from inference import grpc_service_pb2 as pb
from mesh.errors import InvalidArgument

# Protocol datatype -> (NumPy dtype, typed-contents field). FP16 and BF16 travel only as raw
# bytes (the protocol has no typed field for them); BF16 decodes to its uint16 bit patterns,
# since NumPy has no bfloat16.
DATATYPES = {
    "FP32": (np.dtype("<f4"), "fp32_contents"),
    "FP16": (np.dtype("<f2"), None),
    "BF16": (np.dtype("<u2"), None),
    "FP64": (np.dtype("<f8"), "fp64_contents"),
    "INT32": (np.dtype("<i4"), "int_contents"),
    "INT64": (np.dtype("<i8"), "int64_contents"),
}


def decode_inputs(request: pb.ModelInferRequest) -> dict[str, tuple[np.ndarray, str]]:
    """Every input tensor as (array of its declared shape, datatype); errors name the tensor."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} inputs"
        )
    arrays: dict[str, tuple[np.ndarray, str]] = {}
    for index, tensor in enumerate(request.inputs):
        where = f"input '{tensor.name}'"
        if tensor.datatype not in DATATYPES:
            raise InvalidArgument(f"{where}: datatype {tensor.datatype!r} is not supported ({', '.join(DATATYPES)})")
        dtype, field = DATATYPES[tensor.datatype]
        shape = list(tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidArgument(f"{where}: shape {shape} has a negative dimension")
        count = int(np.prod(shape)) if shape else 1
        if raw:
            if len(raw[index]) != count * dtype.itemsize:
                raise InvalidArgument(
                    f"{where}: {len(raw[index])} raw bytes, expected {count * dtype.itemsize} for shape {shape} {tensor.datatype}"
                )
            values = np.frombuffer(raw[index], dtype=dtype)
        else:
            if field is None:
                raise InvalidArgument(f"{where}: datatype {tensor.datatype} must be sent as raw_input_contents")
            values = np.asarray(getattr(tensor.contents, field), dtype=dtype)
            if values.size != count:
                raise InvalidArgument(f"{where}: {values.size} values in contents, expected {count} for shape {shape}")
        if tensor.name in arrays:
            raise InvalidArgument(f"{where}: given twice")
        arrays[tensor.name] = (values.reshape(shape), tensor.datatype)
    return arrays


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: dict[str, np.ndarray],
    parameters: dict[str, str] | None = None,
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id)
    for key, value in (parameters or {}).items():
        response.parameters[key].string_param = value
    for name, array in outputs.items():
        array = np.ascontiguousarray(array, dtype="<f4")
        response.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
        response.raw_output_contents.append(array.tobytes())
    return response


def decode_response(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """The inverse of `encode_response` (used by the router, a client of the protocol)."""
    out: dict[str, np.ndarray] = {}
    raw = list(response.raw_output_contents)
    for index, tensor in enumerate(response.outputs):
        dtype, field = DATATYPES[tensor.datatype]
        if raw:
            values = np.frombuffer(raw[index], dtype=dtype)
        else:
            values = np.asarray(getattr(tensor.contents, field), dtype=dtype)
        out[tensor.name] = values.reshape(list(tensor.shape))
    return out


def encode_request(
    model_name: str, features: np.ndarray, request_id: str = "", model_version: str = "", parameters: dict[str, str] | None = None
) -> pb.ModelInferRequest:
    features = np.ascontiguousarray(features, dtype="<f4")
    request = pb.ModelInferRequest(model_name=model_name, model_version=model_version, id=request_id)
    for key, value in (parameters or {}).items():
        request.parameters[key].string_param = value
    request.inputs.add(name="features", datatype="FP32", shape=list(features.shape))
    request.raw_input_contents.append(features.tobytes())
    return request
