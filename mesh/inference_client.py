"""The client side of the Open Inference Protocol: build ModelInfer requests and read their
responses. Shared by every caller of an inference service (the router, benchmarks)."""

from __future__ import annotations

import numpy as np

from domain.errors import InvalidArgument
from domain.inference_protocol import DATATYPES, INPUT_NAME
from inference import grpc_service_pb2 as pb


def encode_request(
    model_name: str,
    features: np.ndarray | bytes,
    request_id: str = "",
    model_version: str = "",
    parameters: dict[str, str] | None = None,
    shape: tuple[int, int] | None = None,
) -> pb.ModelInferRequest:
    """A ModelInfer request with the FP32 feature matrix as raw bytes. `features` is a matrix,
    or its little-endian float32 bytes as they arrived from the features service (then `shape`
    says [rows, cols]): relayed as they are, never decoded and encoded again."""
    if isinstance(features, bytes):
        if shape is None:
            raise ValueError("raw feature bytes need their shape")
        payload = features
    else:
        array = np.ascontiguousarray(features, dtype="<f4")
        payload, shape = array.tobytes(), array.shape
    request = pb.ModelInferRequest(model_name=model_name, model_version=model_version, id=request_id)
    for key, value in (parameters or {}).items():
        request.parameters[key].string_param = value
    request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=list(shape))
    request.raw_input_contents.append(payload)
    return request


def decode_response(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """Every output as an array of its shape. A malformed answer raises InvalidArgument."""
    out: dict[str, np.ndarray] = {}
    raw = list(response.raw_output_contents)
    for index, tensor in enumerate(response.outputs):
        if tensor.datatype not in DATATYPES:
            raise InvalidArgument(f"output {tensor.name!r}: datatype {tensor.datatype!r} is not supported")
        dtype, field = DATATYPES[tensor.datatype]
        values = np.frombuffer(raw[index], dtype=dtype) if raw else np.asarray(getattr(tensor.contents, field), dtype=dtype)
        out[tensor.name] = values.reshape(list(tensor.shape))
    return out
