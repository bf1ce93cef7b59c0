from __future__ import annotations

import numpy as np
import pytest

from inference import grpc_service_pb2 as pb
from mesh.errors import InvalidArgument
from services.inference import converters


def test_request_round_trip_raw_and_typed():
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    request = converters.encode_request("m", x, request_id="r1")
    array, datatype = converters.decode_inputs(request)["features"]
    np.testing.assert_array_equal(array, x)
    assert datatype == "FP32"
    typed = pb.ModelInferRequest(model_name="m")
    typed.inputs.add(name="features", datatype="FP32", shape=[2, 3]).contents.fp32_contents.extend(x.ravel())
    np.testing.assert_array_equal(converters.decode_inputs(typed)["features"][0], x)


def test_16_bit_raw_inputs_are_decoded():
    import torch

    from services.inference.model_manager import to_tensor

    x = np.array([[0.5, -1.25]], dtype=np.float16)
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="features", datatype="FP16", shape=[1, 2])
    request.raw_input_contents.append(x.tobytes())
    array, datatype = converters.decode_inputs(request)["features"]
    assert to_tensor(array, datatype).tolist() == [[0.5, -1.25]]
    bf16 = torch.tensor([[0.5, -1.25, 3.0]], dtype=torch.bfloat16)
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="features", datatype="BF16", shape=[1, 3])
    request.raw_input_contents.append(bf16.view(torch.uint16).numpy().tobytes())
    array, datatype = converters.decode_inputs(request)["features"]
    decoded = to_tensor(array, datatype)
    assert decoded.dtype == torch.bfloat16 and decoded.tolist() == [[0.5, -1.25, 3.0]]


def test_response_round_trip_with_parameters():
    outputs = {"score": np.array([0.25, 0.5], dtype=np.float32), "member_scores": np.ones((2, 3), dtype=np.float32)}
    response = converters.encode_response("m", "2", "r9", outputs, {"member_names": "a,b,c"})
    assert (response.model_name, response.model_version, response.id) == ("m", "2", "r9")
    assert response.parameters["member_names"].string_param == "a,b,c"
    decoded = converters.decode_response(response)
    for name, value in outputs.items():
        np.testing.assert_array_equal(decoded[name], value)


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda r: (r.inputs.add(name="features", datatype="FP32", shape=[2, 3]), r.raw_input_contents.append(b"\x00" * 20)), "input 'features': 20 raw bytes, expected 24"),
        (lambda r: r.inputs.add(name="features", datatype="STRING", shape=[1]), "input 'features': datatype 'STRING' is not supported"),
        (lambda r: r.inputs.add(name="features", datatype="FP32", shape=[-1, 3]), "input 'features': shape [-1, 3] has a negative dimension"),
        (lambda r: r.inputs.add(name="features", datatype="FP32", shape=[2, 2]).contents.fp32_contents.extend([1.0]), "input 'features': 1 values in contents, expected 4"),
        (lambda r: r.inputs.add(name="features", datatype="FP16", shape=[1]), "input 'features': datatype FP16 must be sent as raw_input_contents"),
    ],
)
def test_malformed_inputs_name_the_tensor(build, message):
    request = pb.ModelInferRequest(model_name="m")
    build(request)
    with pytest.raises(InvalidArgument) as raised:
        converters.decode_inputs(request)
    assert message in raised.value.message
