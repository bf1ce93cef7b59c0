"""Open Inference Protocol messages <-> the data plane's typed requests and responses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domain.errors import InvalidArgument
from inference import grpc_service_pb2 as pb
from mesh.inference_client import decode_response, encode_request
from services.inference import converters
from services.inference.handler import to_tensor
from services.inference.types import InferenceResponse, ModelMetadata, Tensor, TensorSpec


def test_request_round_trip_raw_and_typed():
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    request = encode_request("m", x, request_id="r1", model_version="4", parameters={"feature_schema": "ads/2"})
    decoded = converters.infer_request_from_proto(request, deadline=12.5)
    assert (decoded.model_name, decoded.model_version, decoded.id, decoded.deadline) == ("m", "4", "r1", 12.5)
    assert decoded.parameters == {"feature_schema": "ads/2"} and decoded.outputs == ()
    (tensor,) = decoded.inputs
    assert (tensor.name, tensor.datatype) == ("features", "FP32")
    np.testing.assert_array_equal(tensor.data, x)
    typed = pb.ModelInferRequest(model_name="m")
    typed.inputs.add(name="features", datatype="FP32", shape=[2, 3]).contents.fp32_contents.extend(x.ravel())
    typed.outputs.add(name="score")
    typed.parameters["n"].int64_param = 7
    decoded = converters.infer_request_from_proto(typed, None)
    np.testing.assert_array_equal(decoded.inputs[0].data, x)
    assert decoded.outputs == ("score",) and decoded.parameters == {"n": 7}


def test_raw_feature_bytes_are_relayed_without_decoding():
    x = np.arange(4, dtype="<f4").reshape(2, 2)
    request = encode_request("m", x.tobytes(), shape=(2, 2))
    assert request.raw_input_contents[0] == x.tobytes() and list(request.inputs[0].shape) == [2, 2]
    with pytest.raises(ValueError, match="need their shape"):
        encode_request("m", x.tobytes())


def test_16_bit_raw_inputs_are_decoded():
    x = np.array([[0.5, -1.25]], dtype=np.float16)
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="features", datatype="FP16", shape=[1, 2])
    request.raw_input_contents.append(x.tobytes())
    (tensor,) = converters.infer_request_from_proto(request, None).inputs
    assert to_tensor(tensor.data, tensor.datatype).tolist() == [[0.5, -1.25]]
    bf16 = torch.tensor([[0.5, -1.25, 3.0]], dtype=torch.bfloat16)
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="features", datatype="BF16", shape=[1, 3])
    request.raw_input_contents.append(bf16.view(torch.uint16).numpy().tobytes())
    (tensor,) = converters.infer_request_from_proto(request, None).inputs
    decoded = to_tensor(tensor.data, tensor.datatype)
    assert decoded.dtype == torch.bfloat16 and decoded.tolist() == [[0.5, -1.25, 3.0]]


def test_response_round_trip_with_parameters():
    outputs = (Tensor("score", "FP32", np.array([0.25, 0.5], dtype=np.float32)), Tensor("member_scores", "FP32", np.ones((2, 3), dtype=np.float32)))
    response = converters.infer_response_to_proto(InferenceResponse("m", "2", "r9", outputs, {"member_names": "a,b,c"}))
    assert (response.model_name, response.model_version, response.id) == ("m", "2", "r9")
    assert response.parameters["member_names"].string_param == "a,b,c"
    decoded = decode_response(response)
    assert list(decoded) == ["score", "member_scores"]
    for tensor in outputs:
        np.testing.assert_array_equal(decoded[tensor.name], tensor.data)


def test_model_metadata_carries_version_feature_schema_and_stages_in_headers():
    metadata = ModelMetadata("m", "3", ("2", "3"), "scoremesh_ensemble", (TensorSpec("features", "FP32", (-1, 9)),),
                             (TensorSpec("score", "FP32", (-1,)),), "ads/4", (("2", "production"), ("3", "staging")))
    response, headers = converters.model_metadata_to_proto(metadata)
    assert (response.name, list(response.versions), response.platform) == ("m", ["2", "3"], "scoremesh_ensemble")
    assert [(t.name, t.datatype, list(t.shape)) for t in response.inputs] == [("features", "FP32", [-1, 9])]
    assert dict(headers) == {"scoremesh-model-version": "3", "scoremesh-feature-schema": "ads/4",
                             "scoremesh-version-stages": "2=production,3=staging"}


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda r: (r.inputs.add(name="features", datatype="FP32", shape=[2, 3]), r.raw_input_contents.append(b"\x00" * 20)), "input 'features': 20 raw bytes, expected 24"),
        (lambda r: r.inputs.add(name="features", datatype="STRING", shape=[1]), "input 'features': datatype 'STRING' is not supported"),
        (lambda r: r.inputs.add(name="features", datatype="FP32", shape=[-1, 3]), "input 'features': shape [-1, 3] has a negative dimension"),
        (lambda r: r.inputs.add(name="features", datatype="FP32", shape=[2, 2]).contents.fp32_contents.extend([1.0]), "input 'features': 1 values in contents, expected 4"),
        (lambda r: r.inputs.add(name="features", datatype="FP16", shape=[1]), "input 'features': datatype FP16 must be sent as raw_input_contents"),
        (lambda r: r.inputs.add(name="features", datatype="FP32", shape=[1] * 33), "input 'features': shape has 33 dimensions (at most 32)"),
        # 2^62 x 2^62 elements: the product overflows int64; counted exactly, it is refused.
        (lambda r: (r.inputs.add(name="features", datatype="FP32", shape=[2**62, 2**62]), r.raw_input_contents.append(b"")),
         "input 'features': 0 raw bytes, expected 85070591730234615865843651857942052864"),
        (lambda r: [r.inputs.add(name="features", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0) for _ in range(2)],
         "input 'features': given twice"),
        (lambda r: (r.inputs.add(name="x" * 5000, datatype="FP32", shape=[1]), r.raw_input_contents.extend([b"", b""])), "raw_input_contents: 2 entries for 1 inputs"),
        (lambda r: r.inputs.add(name="y" * 5000, datatype="INT8", shape=[1]), "input 'yyyyyyyyyyyyyyyyyyyy'... (5000 characters): datatype 'INT8' is not supported"),
    ],
)
def test_malformed_inputs_name_the_tensor(build, message):
    request = pb.ModelInferRequest(model_name="m")
    build(request)
    with pytest.raises(InvalidArgument) as raised:
        converters.infer_request_from_proto(request, None)
    assert message in raised.value.message
    assert len(raised.value.message) < 300


def test_unload_parameters_name_one_version_and_why_and_refuse_anything_else():
    request = pb.RepositoryModelUnloadRequest(model_name="ctr_ensemble")
    assert converters.unload_request_from_proto(request) == ("ctr_ensemble", "", "")
    request.parameters["version"].string_param = "12"
    request.parameters["reason"].string_param = "x" * 500
    assert converters.unload_request_from_proto(request) == ("ctr_ensemble", "12", "x" * 200)
    for key, setter, message in (
        ("version", lambda p: setattr(p, "string_param", "v2"), "parameters\\['version'\\]: must be a version number \\(got 'v2'\\)"),
        ("version", lambda p: setattr(p, "int64_param", 2), "parameters\\['version'\\]: must be a string_param"),
        ("unload_dependents", lambda p: setattr(p, "bool_param", True), "parameters\\['unload_dependents'\\]: unknown"),
    ):
        bad = pb.RepositoryModelUnloadRequest(model_name="ctr_ensemble")
        setter(bad.parameters[key])
        with pytest.raises(InvalidArgument, match=message):
            converters.unload_request_from_proto(bad)
