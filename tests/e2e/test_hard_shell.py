"""A shell nothing breaks: whatever an outside caller sends to any RPC of the running mesh, the
answer is OK or a client-error status whose message stays short, OK answers hold only finite
numbers, no service logs an error, and the mesh keeps serving.

Property-based (hypothesis) over the messages of Score, Extract and ModelInfer and the metadata
calls, and byte-level mutations (bit flips, insertions, deletions, truncations, garbage) of valid
requests to every RPC of every service. The numbers of generated cases are printed.
"""

from __future__ import annotations

import json
import math
import random
import urllib.request

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.features.schema_store import SchemaStore
from inference import grpc_service_pb2 as inference_pb2
from scoremesh.v1 import common_pb2, features_pb2, monitoring_pb2, recovery_pb2, router_pb2, supervisor_pb2
from tests.e2e.requests import score_request

pytestmark = pytest.mark.mesh

CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
MAX_DETAILS = 1100  # what the servers cap a status message at, plus a margin
CASES: dict[str, int] = {"count": 0}
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def channels(mesh):
    opened = {service: grpc.insecure_channel(mesh.address(service)) for service in ("router", "features", "inference", "monitoring", "recovery", "supervisor")}
    yield opened
    for channel in opened.values():
        channel.close()


@pytest.fixture(scope="module", autouse=True)
def no_error_is_logged(mesh):
    """Every service's log gains no ERROR entry (no traceback) while these tests run."""
    logs = {path: path.stat().st_size for path in (mesh.state_dir / "logs").glob("*.log")}
    yield
    for path, size in logs.items():
        with open(path) as log:
            log.seek(size)
            errors = [line for line in log if '"level": "ERROR"' in line or "Traceback" in line]
        assert errors == [], f"{path.name}: {errors[:2]}"
    print(f"\nhard shell: {CASES.pop('count')} generated requests, every answer OK or a client error:")
    print("  " + ", ".join(f"{key} {count}" for key, count in sorted(CASES.items())))


def call(channel: grpc.Channel, method: str, message, metadata: tuple = ()) -> tuple[grpc.StatusCode, str, bytes | None]:
    """Send serialized bytes (a message or garbage) to `method`; (code, details, response bytes)."""
    CASES["count"] += 1
    payload = message if isinstance(message, bytes) else message.SerializeToString()
    stub = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        answer = grpc.StatusCode.OK, "", stub(payload, timeout=10, metadata=metadata)
    except grpc.RpcError as error:
        answer = error.code(), error.details() or "", None
    key = f"{method.rsplit('/', 1)[1]} {answer[0].name}"
    CASES[key] = CASES.get(key, 0) + 1
    return answer


def assert_client_error_or_ok(code: grpc.StatusCode, details: str, sent_strings=()) -> None:
    assert code == grpc.StatusCode.OK or code in CLIENT_ERRORS, (code, details[:300])
    assert len(details) <= MAX_DETAILS, len(details)
    for value in sent_strings:  # at most a short prefix of what was sent is quoted
        if len(value) > 80:
            assert value[:80] not in details, details[:200]


# ---------------------------------------------------------------- strategies
def mostly(valid, invalid, odds: int = 9):
    """`valid` about `odds` times in `odds + 1`: requests are realistic enough to reach the
    deep paths (routing, kernels, post-processing), and wrong often enough to test refusals."""
    return st.sampled_from([True] * odds + [False]).flatmap(lambda ok: valid if ok else invalid)


text = st.one_of(st.text(max_size=12), st.text(max_size=400), st.just("x" * 3000))
int32 = st.integers(-(2**31), 2**31 - 1)
doubles = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(1e308), st.just(-1.0))
ids = mostly(st.from_regex(r"(ad|u)[0-9]{1,4}", fullmatch=True), text)
words = mostly(st.sampled_from(["", "search", "content", "social", "mobile", "desktop", "tablet", "US", "EU", "ASIA", "m", "f",
                                "gaming", "finance", "food", "spaceships"]), text)


def optional(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def contexts(draw) -> common_pb2.RequestContext:
    user = common_pb2.User(user_id=draw(ids), gender=draw(words), location=draw(words), device_type=draw(words))
    for name, valid in (("age", st.integers(0, 120)),):
        value = draw(optional(mostly(valid, int32)))
        if value is not None:
            setattr(user, name, value)
    context = common_pb2.RequestContext(user=user, page_type=draw(words))
    for name, valid in (("hour", st.integers(0, 23)), ("day_of_week", st.integers(0, 6))):
        value = draw(optional(mostly(valid, int32)))
        if value is not None:
            setattr(context, name, value)
    if draw(st.integers(0, 9)) == 0:
        context.ClearField("user")
    return context


candidate = st.builds(
    common_pb2.Candidate, ad_id=ids, category=words,
    bid_amount=mostly(st.floats(0, 50), doubles, odds=19), quality_score=mostly(st.floats(0, 1), doubles, odds=19),
)
candidates = mostly(st.lists(candidate, min_size=1, max_size=6), st.just([]) | st.lists(candidate, min_size=1001, max_size=1001), odds=19)
data_types = mostly(st.sampled_from([1, 2, 3]), st.one_of(st.just(0), int32))


def strings_of(message) -> list[str]:
    found = []
    for descriptor, value in message.ListFields():
        if descriptor.type == descriptor.TYPE_STRING:
            found += list(value) if descriptor.is_repeated else [value]
        elif descriptor.type == descriptor.TYPE_MESSAGE:
            for item in value if descriptor.is_repeated else [value]:
                if hasattr(item, "ListFields"):
                    found += strings_of(item)
    return found


# ---------------------------------------------------------------- properties
@PROPERTY
@given(request_id=text, data_type=data_types, context=contexts(), candidates=candidates)
def test_score_answers_any_request_with_ok_or_a_client_error(channels, request_id, data_type, context, candidates):
    request = router_pb2.ScoreRequest(request_id=request_id, data_type=data_type, context=context, candidates=candidates)
    code, details, payload = call(channels["router"], "/scoremesh.v1.Router/Score", request)
    assert_client_error_or_ok(code, details, strings_of(request))
    if code == grpc.StatusCode.OK:
        response = router_pb2.ScoreResponse.FromString(payload)
        assert len(response.candidates) == len(candidates)
        for c in response.candidates:
            assert 0.0 <= c.score <= 1.0 and math.isfinite(c.confidence) and math.isfinite(c.bid)
            assert all(0.0 <= m.score <= 1.0 for m in c.member_scores)


@PROPERTY
@given(data_type=data_types, context=contexts(), candidates=candidates, schema_version=st.one_of(st.just(""), st.just("1"), text), typed=st.booleans())
def test_extract_answers_any_request_with_ok_or_a_client_error(channels, data_type, context, candidates, schema_version, typed):
    request = features_pb2.ExtractRequest(data_type=data_type, context=context, candidates=candidates, schema_version=schema_version, typed_values=typed)
    code, details, payload = call(channels["features"], "/scoremesh.v1.FeatureService/Extract", request)
    assert_client_error_or_ok(code, details, strings_of(request))
    if code == grpc.StatusCode.OK:
        response = features_pb2.ExtractResponse.FromString(payload)
        values = np.asarray(response.values) if typed else np.frombuffer(response.raw_values, dtype="<f4")
        assert values.size == response.rows * response.cols and np.isfinite(values).all()


FLOAT_EXTREMES = [0.0, -0.0, 1.0, 1e-45, 3.4028235e38, -3.4028235e38, 1e30, float("nan"), float("inf"), -float("inf"), 65504.0]


@st.composite
def infer_requests(draw, dim: int) -> inference_pb2.ModelInferRequest:
    """A valid request (right-sized FP32, FP16 or BF16 features, values from everyday to the
    float limits) with, now and then, any part of it replaced by something arbitrary."""
    request = inference_pb2.ModelInferRequest(
        model_name=draw(mostly(st.sampled_from(["ctr_ensemble", "cvr_ensemble", "quality_ensemble", "ctr_stacking"]), text)),
        model_version=draw(mostly(st.sampled_from(["", "1"]), text)),
        id=draw(ids),
    )
    for _ in range(draw(mostly(st.just(1), st.integers(0, 3)))):
        rows = draw(st.integers(0, 5))
        datatype = draw(mostly(st.sampled_from(["FP32", "FP32", "FP16", "BF16"]), st.sampled_from(["INT64", "FP64"]) | text))
        shape = draw(mostly(st.just([rows, dim]), st.lists(st.integers(-3, 2**62), max_size=3) | st.lists(st.just(1), min_size=30, max_size=70)))
        tensor = request.inputs.add(name=draw(mostly(st.just("features"), text)), datatype=datatype, shape=shape)
        count = rows * dim
        if datatype == "FP32" and shape == [rows, dim] and draw(mostly(st.just(True), st.just(False))):
            values = draw(st.lists(mostly(st.floats(-10, 10, width=32), st.sampled_from(FLOAT_EXTREMES), odds=20), min_size=count, max_size=count))
            if draw(st.booleans()):
                request.raw_input_contents.append(np.asarray(values, dtype="<f4").tobytes())
            else:
                tensor.contents.fp32_contents.extend(values)
        elif datatype in ("FP16", "BF16") and shape == [rows, dim]:
            encoded = np.asarray(draw(st.lists(st.floats(-10, 10, width=16), min_size=count, max_size=count)), dtype="<f2")
            if datatype == "BF16":  # the top half of each float32: bfloat16's bit pattern
                encoded = (np.asarray(encoded, dtype="<f4").view("<u4") >> 16).astype("<u2")
            request.raw_input_contents.append(draw(mostly(st.just(encoded.tobytes()), st.binary(min_size=2 * count, max_size=2 * count))))
        else:
            request.raw_input_contents.append(draw(st.binary(max_size=64)))
    if len(request.raw_input_contents) not in (0, len(request.inputs)):
        del request.raw_input_contents[:]
        if draw(st.booleans()):
            request.raw_input_contents.append(b"")
    for name in draw(st.lists(mostly(st.sampled_from(["score", "member_scores", "confidence"]), text), max_size=3)):
        request.outputs.add(name=name)
    choice = draw(st.integers(0, 4))
    if choice == 1:
        request.parameters["feature_schema"].string_param = draw(mostly(st.just("ads/1"), text, odds=3))
    elif choice == 2:
        request.parameters["feature_schema"].int64_param = draw(int32)
    return request


@pytest.fixture(scope="module")
def feature_dim(mesh) -> int:
    return SchemaStore(mesh.state_dir / "features").load("ads", "1").dim


@PROPERTY
@given(data=st.data())
def test_model_infer_answers_any_request_with_ok_or_a_client_error_and_never_nan(channels, feature_dim, data):
    request = data.draw(infer_requests(feature_dim))
    code, details, payload = call(channels["inference"], "/inference.GRPCInferenceService/ModelInfer", request)
    assert_client_error_or_ok(code, details, strings_of(request))
    if code == grpc.StatusCode.OK:
        response = inference_pb2.ModelInferResponse.FromString(payload)
        for raw in response.raw_output_contents:
            assert np.isfinite(np.frombuffer(raw, dtype="<f4")).all()


@PROPERTY
@given(name=st.sampled_from(["ctr_ensemble", ""]) | text, version=st.sampled_from(["", "1", "2"]) | text, data_type=data_types, context=contexts())
def test_metadata_calls_answer_with_ok_or_a_client_error(channels, name, version, data_type, context):
    for channel, method, message in (
        ("inference", "/inference.GRPCInferenceService/ModelMetadata", inference_pb2.ModelMetadataRequest(name=name, version=version)),
        ("inference", "/inference.GRPCInferenceService/ModelReady", inference_pb2.ModelReadyRequest(name=name, version=version)),
        ("inference", "/inference.GRPCInferenceService/ModelStatistics", inference_pb2.ModelStatisticsRequest(name=name, version=version)),
        ("features", "/scoremesh.v1.FeatureService/GetSchema", features_pb2.GetSchemaRequest(schema_version=version)),
        ("router", "/scoremesh.v1.Router/ExplainRoute", router_pb2.ExplainRouteRequest(data_type=data_type, context=context)),
        ("monitoring", "/scoremesh.v1.Monitoring/GetSLO", monitoring_pb2.GetSLORequest(model_name=name, window_seconds=data_type)),
    ):
        code, details, _ = call(channels[channel], method, message)
        assert_client_error_or_ok(code, details, strings_of(message))


# ---------------------------------------------------------------- byte-level mutations
def valid_requests() -> list[tuple[str, str, bytes]]:
    """(service, method, a valid serialized request) for every RPC an outside caller reaches.
    Admin calls name no real model or instance, so no mutation can unload or restart one."""
    score = score_request(3, seed=1)
    infer = inference_pb2.ModelInferRequest(model_name="ctr_ensemble", id="m")
    infer.inputs.add(name="features", datatype="FP32", shape=[1, 4])
    infer.raw_input_contents.append(np.zeros(4, dtype="<f4").tobytes())
    extract = features_pb2.ExtractRequest(data_type=score.data_type, context=score.context, candidates=score.candidates)
    rows = [
        ("router", "/scoremesh.v1.Router/Score", score),
        ("router", "/scoremesh.v1.Router/ExplainRoute", router_pb2.ExplainRouteRequest(data_type=score.data_type, context=score.context)),
        ("features", "/scoremesh.v1.FeatureService/Extract", extract),
        ("features", "/scoremesh.v1.FeatureService/GetSchema", features_pb2.GetSchemaRequest(schema_version="1")),
        ("features", "/scoremesh.v1.FeatureService/ClearCache", features_pb2.ClearCacheRequest(reason="hard shell")),
        ("inference", "/inference.GRPCInferenceService/ModelInfer", infer),
        ("inference", "/inference.GRPCInferenceService/ModelMetadata", inference_pb2.ModelMetadataRequest(name="ctr_ensemble")),
        ("inference", "/inference.GRPCInferenceService/ModelReady", inference_pb2.ModelReadyRequest(name="ctr_ensemble", version="1")),
        ("inference", "/inference.GRPCInferenceService/ModelStatistics", inference_pb2.ModelStatisticsRequest(name="ctr_ensemble")),
        ("inference", "/inference.GRPCInferenceService/ServerMetadata", inference_pb2.ServerMetadataRequest()),
        ("inference", "/inference.GRPCInferenceService/RepositoryIndex", inference_pb2.RepositoryIndexRequest(ready=True)),
        ("inference", "/inference.GRPCInferenceService/RepositoryModelLoad", inference_pb2.RepositoryModelLoadRequest(model_name="ghost-model")),
        ("inference", "/inference.GRPCInferenceService/RepositoryModelUnload", inference_pb2.RepositoryModelUnloadRequest(model_name="ghost-model")),
        ("monitoring", "/scoremesh.v1.Monitoring/GetSLO", monitoring_pb2.GetSLORequest(model_name="ctr_ensemble", window_seconds=60,
                                                                                       route="search", split_arm="main")),
        ("monitoring", "/scoremesh.v1.Monitoring/GetDrift", monitoring_pb2.GetDriftRequest(model_name="ctr_ensemble", window_seconds=60)),
        ("monitoring", "/scoremesh.v1.Monitoring/ListIncidents", monitoring_pb2.ListIncidentsRequest(open_only=True, limit=5)),
        ("monitoring", "/scoremesh.v1.Monitoring/GetQuality", monitoring_pb2.GetQualityRequest(model_name="ctr_ensemble", split_arm="main")),
        ("monitoring", "/scoremesh.v1.Monitoring/GetExperiment", monitoring_pb2.GetExperimentRequest(route="search", window_seconds=60)),
        ("monitoring", "/scoremesh.v1.Monitoring/GetWeighting", monitoring_pb2.GetWeightingRequest(model_name="ctr_ensemble")),
        ("monitoring", "/scoremesh.v1.Monitoring/SetWeighting", monitoring_pb2.SetWeightingRequest(model_name="ctr_ensemble", action="disable")),
        ("recovery", "/scoremesh.v1.Recovery/GetStatus", recovery_pb2.GetStatusRequest()),
        ("recovery", "/scoremesh.v1.Recovery/ListActions", recovery_pb2.ListActionsRequest(limit=5)),
        ("recovery", "/scoremesh.v1.Recovery/Trigger", recovery_pb2.TriggerRequest(action="restart_service", instance_id="ghost-instance")),
        ("recovery", "/scoremesh.v1.Recovery/Trigger", recovery_pb2.TriggerRequest(action="rollback_version", target="ghost-model:9")),
        ("recovery", "/scoremesh.v1.Recovery/Trigger", recovery_pb2.TriggerRequest(action="promote_version", target="ghost-model:9")),
        ("recovery", "/scoremesh.v1.Recovery/Trigger", recovery_pb2.TriggerRequest(action="rollback_promotion", target="ghost-model")),
        ("supervisor", "/scoremesh.v1.Supervisor/ListProcesses", supervisor_pb2.ListProcessesRequest()),
        ("supervisor", "/scoremesh.v1.Supervisor/RestartInstance", supervisor_pb2.RestartInstanceRequest(instance_id="ghost-instance")),
        ("supervisor", "/scoremesh.v1.Supervisor/AddReplica", supervisor_pb2.AddReplicaRequest(service="ghost-service", max_replicas=1)),
    ]
    return [(service, method, message.SerializeToString()) for service, method, message in rows]


def mutate(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        position = rng.randrange(len(buffer) + 1)
        if kind == 0 and buffer:  # flip a bit
            i = rng.randrange(len(buffer))
            buffer[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # insert random bytes
            buffer[position:position] = rng.randbytes(rng.randint(1, 8))
        elif kind == 2 and buffer:  # delete a run
            del buffer[position : position + rng.randint(1, 8)]
        elif kind == 3:  # truncate
            del buffer[position:]
        elif kind == 4 and buffer:  # an invalid UTF-8 byte in the middle of whatever is there
            buffer[rng.randrange(len(buffer))] = rng.choice([0x80, 0xC0, 0xFF])
        else:  # garbage
            buffer = bytearray(rng.randbytes(rng.randint(0, 40)))
    return bytes(buffer)


MUTATIONS_PER_METHOD = 60


def test_mutated_bytes_to_every_rpc_get_ok_or_a_client_error(mesh, channels):
    rng = random.Random(20261122)
    outcomes: dict[str, int] = {}
    for service, method, valid in valid_requests():
        code, details, _ = call(channels[service], method, valid)
        assert code == grpc.StatusCode.OK or code in CLIENT_ERRORS, (method, code, details)
        for _ in range(MUTATIONS_PER_METHOD):
            code, details, _ = call(channels[service], method, mutate(valid, rng))
            assert code == grpc.StatusCode.OK or code in CLIENT_ERRORS, (method, code, details[:300])
            assert len(details) <= MAX_DETAILS
            outcomes[code.name] = outcomes.get(code.name, 0) + 1
    # Streams too: a Report or Feedback whose batches do not parse is refused, and nothing is stored.
    stream = channels["monitoring"].stream_unary("/scoremesh.v1.Monitoring/Report", request_serializer=None, response_deserializer=None)
    for _ in range(20):
        try:
            stream(iter([mutate(b"\x0a\x05\x12\x03abc", rng) for _ in range(3)]), timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        assert code == grpc.StatusCode.OK or code in CLIENT_ERRORS, code
    feedback = channels["monitoring"].stream_unary("/scoremesh.v1.Monitoring/Feedback", request_serializer=None, response_deserializer=None)
    valid_outcomes = monitoring_pb2.FeedbackRequest(outcomes=[monitoring_pb2.Outcome(request_id="r-1", ad_id="ad7", label="click",
                                                                                     positive=True, timestamp=1.0)]).SerializeToString()
    for _ in range(20):
        try:
            feedback(iter([mutate(valid_outcomes, rng) for _ in range(3)]), timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        assert code == grpc.StatusCode.OK or code in CLIENT_ERRORS, code
    assert outcomes.get("INVALID_ARGUMENT", 0) > 100, outcomes
    # Undecodable bytes are counted.
    text = urllib.request.urlopen(mesh.instances("router")[0]["metrics"], timeout=5).read().decode()
    assert 'scoremesh_grpc_undecodable_requests_total{grpc_method="Score",grpc_service="scoremesh.v1.Router"}' in text


def test_undecodable_bytes_name_the_message_type(channels):
    invalid_utf8 = router_pb2.ScoreRequest(request_id="abc").SerializeToString().replace(b"abc", b"a\xffc")
    code, details, _ = call(channels["router"], "/scoremesh.v1.Router/Score", invalid_utf8)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "request: the bytes are not a valid scoremesh.v1.ScoreRequest message (DecodeError)"


def test_huge_fields_are_quoted_by_a_short_prefix(mesh, channels):
    admin = (("authorization", f"Bearer {(mesh.state_dir / 'admin-token').read_text().strip()}"),)
    for service, method, message in (
        ("inference", "/inference.GRPCInferenceService/ModelMetadata", inference_pb2.ModelMetadataRequest(name="n" * 1_000_000)),
        ("features", "/scoremesh.v1.FeatureService/GetSchema", features_pb2.GetSchemaRequest(schema_version="7" * 1_000_000)),
        ("recovery", "/scoremesh.v1.Recovery/Trigger", recovery_pb2.TriggerRequest(action="r" * 1_000_000, instance_id="x")),
    ):
        code, details, _ = call(channels[service], method, message, admin if service == "recovery" else ())
        assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), (method, code, details[:100])
        assert "(1000000 characters)" in details and len(details) < 300


def test_the_mesh_still_serves_after_all_that(mesh, channels):
    code, details, payload = call(channels["router"], "/scoremesh.v1.Router/Score", score_request(3, seed=9))
    assert code == grpc.StatusCode.OK, details
    assert len(router_pb2.ScoreResponse.FromString(payload).candidates) == 3
    assert json.loads(json.dumps(mesh.status()))["returncode"] == 0
