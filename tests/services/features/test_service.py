"""The features service over a real gRPC connection (in-process server on loopback).

Includes the training/serving skew test: the same raw rows through the training path and
through `FeatureService/Extract` must give bit-identical matrices."""

from __future__ import annotations

import asyncio
import math

import grpc
import numpy as np
import pytest

from mesh.handlers import add_servicer
from scoremesh.v1 import features_pb2, features_pb2_grpc
from mesh.common_messages import candidates_to_proto, context_to_proto
from services.features import converters
from services.features.enrichment import Enricher
from services.features.extraction import FeatureExtractor, SchemaVersions
from domain.request import CandidateColumns, Context
from domain.features.schema import load_spec
from domain.features.schema_store import SchemaStore
from services.features.servicer import FeatureServicer
from domain.features.store.sqlite_store import SqliteStore
from training.synthetic import generate, make_world
from tests.services.features.test_enrichment import BrokenStore


@pytest.fixture(scope="module")
def world():
    return make_world(seed=4)


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory, world):
    directory = tmp_path_factory.mktemp("features")
    SchemaStore(directory).save(load_spec("ads").fit(generate(3000, seed=4, world=world).batch, "0"))
    store = SqliteStore(directory / "online.sqlite")
    for kind, table in world.store_tables.items():
        store.put_many(kind, table.items())
    store.close()
    return directory


def serve_and_call(feature_dir, calls, store=None, max_candidates=1000, admin_token=None):
    """Start a FeatureService on loopback, run `calls(stub)` against it, stop it."""

    async def scenario():
        online = store or SqliteStore(feature_dir / "online.sqlite")
        extractor = FeatureExtractor(SchemaVersions(SchemaStore(feature_dir), "ads"), Enricher(online, 1.0), max_candidates)
        server = grpc.aio.server()
        add_servicer(server, features_pb2_grpc.add_FeatureServiceServicer_to_server, FeatureServicer(extractor, admin_token))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await calls(features_pb2_grpc.FeatureServiceStub(channel))
        finally:
            await server.stop(0)

    return asyncio.run(scenario())


def _row_request(batch, i: int) -> features_pb2.ExtractRequest:
    def maybe(value):
        return None if math.isnan(value) else int(value)

    context = Context(
        data_type=batch.data_type[i], user_id=batch.user_id[i], age=maybe(batch.age[i]), gender=batch.gender[i],
        location=batch.location[i], device_type=batch.device_type[i], hour=maybe(batch.hour[i]),
        day_of_week=maybe(batch.day_of_week[i]), page_type=batch.page_type[i],
    )
    candidates = CandidateColumns([batch.ad_id[i]], [batch.category[i]], [float(batch.bid_amount[i])], [float(batch.quality_score[i])])
    data_type, proto_context = context_to_proto(context)
    return features_pb2.ExtractRequest(data_type=data_type, context=proto_context, candidates=candidates_to_proto(candidates))


def test_training_and_serving_build_bit_identical_matrices(feature_dir, world):
    data = generate(60, seed=99, world=world)  # rows with missing ages and hours among them
    assert np.isnan(data.batch.age).any() or np.isnan(data.batch.hour).any()
    schema = SchemaStore(feature_dir).load("ads")
    training = schema.transform(data.batch)

    async def calls(stub):
        rows = []
        for i in range(len(data.batch)):
            response = await stub.Extract(_row_request(data.batch, i), timeout=5)
            assert not response.store_degraded and response.schema_version == schema.version
            rows.append(converters.matrix_from_proto(response)[0])
        return np.stack(rows)

    serving = serve_and_call(feature_dir, calls)
    assert serving.dtype == training.dtype == np.float32
    assert np.array_equal(serving, training), np.argwhere(serving != training)[:5]


def test_get_schema_explains_every_column(feature_dir):
    async def calls(stub):
        return await stub.GetSchema(features_pb2.GetSchemaRequest(), timeout=5)

    response = serve_and_call(feature_dir, calls)
    schema = SchemaStore(feature_dir).load("ads")
    assert (response.schema_name, response.schema_version, list(response.versions)) == ("ads", "1", ["1"])
    assert list(response.column_names) == schema.column_names
    covered = []
    for feature in response.features:
        covered += list(response.column_names[feature.first_column : feature.first_column + feature.column_count])
    assert covered == schema.column_names
    hour = next(f for f in response.features if f.name == "hour")
    assert (hour.kind, list(hour.sources)) == ("cyclical", ["hour"])
    assert list(response.column_names[hour.first_column : hour.first_column + 3]) == ["hour_sin", "hour_cos", "hour_missing"]
    assert "mean:" in response.schema_yaml


def _request(**overrides) -> features_pb2.ExtractRequest:
    context = Context("search", "u1", 30, "f", "EU", "mobile", 10, 2, "search")
    candidates = CandidateColumns(["ad1", "ad2"], ["food", "spaceships"], [1.0, 2.0], [0.5, 0.6])
    data_type, proto_context = context_to_proto(context)
    request = features_pb2.ExtractRequest(data_type=data_type, context=proto_context, candidates=candidates_to_proto(candidates))
    for key, value in overrides.items():
        setattr(request, key, value)
    return request


def test_extract_errors_name_the_field_and_the_service_keeps_serving(feature_dir):
    async def calls(stub):
        outcomes = []
        bad_quality = _request()
        bad_quality.candidates[1].quality_score = 1.5
        no_candidates = _request()
        del no_candidates.candidates[:]
        too_many = _request()
        too_many.candidates.extend([too_many.candidates[0]] * 3)
        bad_age = _request()
        bad_age.context.user.age = 500
        for request in (bad_quality, no_candidates, too_many, bad_age, _request(schema_version="42")):
            try:
                await stub.Extract(request, timeout=5)
            except grpc.aio.AioRpcError as error:
                outcomes.append((error.code(), error.details()))
        ok = await stub.Extract(_request(), timeout=5)
        return outcomes, ok

    outcomes, ok = serve_and_call(feature_dir, calls, max_candidates=4)
    assert outcomes == [
        (grpc.StatusCode.INVALID_ARGUMENT, "candidates[1].quality_score: must be in [0, 1] (got 1.5)"),
        (grpc.StatusCode.INVALID_ARGUMENT, "candidates: must not be empty"),
        (grpc.StatusCode.INVALID_ARGUMENT, "candidates: at most 4 per request (got 5)"),
        (grpc.StatusCode.INVALID_ARGUMENT, "context.user.age: must be in [0, 120] (got 500)"),
        (grpc.StatusCode.NOT_FOUND, "schema_version: feature schema ads has no version '42' (versions: 1)"),
    ]
    # An unknown category ("spaceships") is no error: it lands in the OOV column.
    schema = SchemaStore(feature_dir).load("ads")
    matrix = converters.matrix_from_proto(ok)
    assert matrix[1, schema.column_names.index("category=<oov>")] == 1.0


def test_a_down_store_still_answers_flagged_with_defaults(feature_dir):
    async def calls(stub):
        return await stub.Extract(_request(), timeout=5)

    response = serve_and_call(feature_dir, calls, store=BrokenStore())
    assert response.store_degraded and "unavailable" in response.store_status
    schema = SchemaStore(feature_dir).load("ads")
    matrix = converters.matrix_from_proto(response)
    assert matrix[:, schema.column_names.index("ad_ctr_missing")].tolist() == [1.0, 1.0]
    assert matrix[:, schema.column_names.index("user_clicks_7d_missing")].tolist() == [1.0, 1.0]


def test_clear_cache_needs_the_admin_token_and_drops_every_cached_lookup(feature_dir, world):
    data = generate(5, seed=7, world=world)
    admin = [("authorization", "Bearer cache-token")]

    async def calls(stub):
        for i in range(len(data.batch)):
            await stub.Extract(_row_request(data.batch, i), timeout=5)  # each looks up one user and one ad
        try:
            await stub.ClearCache(features_pb2.ClearCacheRequest(), timeout=5)
        except grpc.aio.AioRpcError as error:
            refused = error.code()
        first = await stub.ClearCache(features_pb2.ClearCacheRequest(reason="test"), timeout=5, metadata=admin)
        second = await stub.ClearCache(features_pb2.ClearCacheRequest(reason="test"), timeout=5, metadata=admin)
        return refused, first.entries_dropped, second.entries_dropped

    refused, first, second = serve_and_call(feature_dir, calls, admin_token="cache-token")
    expected = len(set(data.batch.user_id)) + len(set(data.batch.ad_id))
    assert (refused, first, second) == (grpc.StatusCode.UNAUTHENTICATED, expected, 0)
