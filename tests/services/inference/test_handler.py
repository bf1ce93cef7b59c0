"""The inference data plane without gRPC: typed requests through a real model manager."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from domain.errors import FailedPrecondition, InvalidArgument, ModelError, PermissionDenied, Unauthenticated
from domain.features.schema_store import SchemaStore
from domain.models.repository import publish, stage_model
from services.inference.handler import InferenceHandler
from services.inference.model_manager import ModelManager
from services.inference.types import InferenceRequest, Tensor


def write(repo: Path, dim: int, weight: float = 0.5, bias: float = -0.25, version: int = 1) -> Path:
    """A logistic-regression "ensemble" whose score is sigmoid(weight * sum(x) + bias)."""
    config = {
        "name": "toy", "version": version, "input_dim": dim, "feature_schema": {"name": "ads", "version": "1"},
        "ensemble": {"method": "averaging"}, "members": [{"name": "lr", "hidden": 0}],
    }
    tensors = {"lr.linear.weight": torch.full((1, dim), weight), "lr.linear.bias": torch.tensor([bias])}
    return publish(stage_model(repo, config, tensors))


def scenario(tmp_path, feature_dir, body, weight: float = 0.5, admin_token: str | None = None):
    dim = SchemaStore(feature_dir).load("ads", "1").dim
    write(tmp_path / "repo", dim, weight)

    async def main():
        manager = ModelManager(tmp_path / "repo", feature_dir)
        await manager.refresh()
        try:
            return await body(InferenceHandler(manager, admin_token), manager, dim)
        finally:
            await manager.unload_all()

    return asyncio.run(main())


def request(x: np.ndarray, datatype: str = "FP32", **fields) -> InferenceRequest:
    return InferenceRequest("toy", inputs=(Tensor("features", datatype, x),), **fields)


def test_infer_answers_exact_scores_with_members_and_schema(tmp_path, feature_dir):
    async def body(handler, manager, dim):
        x = np.random.default_rng(1).normal(size=(3, dim)).astype(np.float32)
        return x, await handler.infer(request(x, id="r7", outputs=("score", "confidence"), parameters={"feature_schema": "ads/1"}))

    x, response = scenario(tmp_path, feature_dir, body)
    assert (response.model_name, response.model_version, response.id) == ("toy", "1", "r7")
    assert [t.name for t in response.outputs] == ["score", "confidence"]
    expected = 1 / (1 + np.exp(-(0.5 * x.astype(np.float64).sum(1) - 0.25)))
    np.testing.assert_allclose(response.outputs[0].data, expected, rtol=1e-5)
    assert response.parameters == {"member_names": "lr", "feature_schema": "ads/1"}


def test_an_empty_batch_is_answered_with_empty_outputs(tmp_path, feature_dir):
    async def body(handler, manager, dim):
        return await handler.infer(request(np.zeros((0, dim), np.float32)))

    response = scenario(tmp_path, feature_dir, body)
    assert [t.data.shape for t in response.outputs] == [(0,), (0, 1), (0,)]


def test_finite_inputs_beyond_the_overflow_free_bound_are_refused_naming_the_cell(tmp_path, feature_dir):
    async def body(handler, manager, dim):
        bound = manager.get("toy").input_bound
        ok = np.zeros((2, dim), np.float32)
        ok[1, 3] = np.float32(bound * 0.999)  # still safe: finite answer
        answered = await handler.infer(request(ok))
        huge = np.zeros((2, dim), np.float32)
        huge[1, 3] = np.finfo(np.float32).max
        with pytest.raises(InvalidArgument) as too_big:
            await handler.infer(request(huge))
        nan = np.zeros((2, dim), np.float32)
        nan[0, 2] = np.nan
        with pytest.raises(InvalidArgument) as not_finite:
            await handler.infer(request(nan))
        bf16_max = torch.full((1, dim), torch.finfo(torch.bfloat16).max, dtype=torch.bfloat16).view(torch.uint16).numpy()
        with pytest.raises(InvalidArgument) as bf16:
            await handler.infer(request(bf16_max, "BF16"))
        return bound, answered, too_big.value, not_finite.value, bf16.value

    bound, answered, too_big, not_finite, bf16 = scenario(tmp_path, feature_dir, body)
    # One weight of 0.5 per feature: |logit| <= 0.5 * dim * B + 0.25 must stay under 1e30.
    assert 1e26 < bound < 1e30
    assert all(np.isfinite(t.data).all() for t in answered.outputs)
    assert "values must be within +-" in too_big.message and "(row 1, column 3 holds 3.4e+38)" in too_big.message
    assert "holds NaN or infinity (row 0, column 2)" in not_finite.message
    assert "values must be within" in bf16.message


def test_a_non_finite_model_output_is_an_error_of_the_model_never_a_result(tmp_path, feature_dir):
    async def body(handler, manager, dim):
        served = manager.get("toy")
        honest = served.batcher.run

        def broken(x):  # a model bug the input checks cannot foresee: NaN for some rows
            out = honest(x)
            out["score"] = out["score"].clone()
            out["score"][0] = float("nan")
            return out

        served.batcher.run = broken
        with pytest.raises(ModelError) as raised:
            await handler.infer(request(np.zeros((4, dim), np.float32)))
        return raised.value, served.stats

    error, stats = scenario(tmp_path, feature_dir, body)
    assert error.status == "INTERNAL" and error.reason == "NON_FINITE_OUTPUT"
    assert "toy v1 produced non-finite score for 1 of 4 rows; the result is withheld" in error.message
    assert (stats.non_finite, stats.fail.count, stats.success.count) == (1, 1, 0)


def test_request_errors_name_the_field_and_quote_a_short_prefix(tmp_path, feature_dir):
    async def body(handler, manager, dim):
        x = np.zeros((1, dim), np.float32)
        errors = []
        for bad in (
            InferenceRequest("toy", inputs=(Tensor("x" * 10_000, "FP32", x),)),
            InferenceRequest("toy", inputs=()),
            request(x, outputs=("logits" * 1000,)),
            request(x, parameters={"feature_schema": 7}),
            request(x, parameters={"feature_schema": "ads/" + "9" * 100_000}),
            request(x.astype(np.int64), "INT64"),
            InferenceRequest("m" * 100_000),
        ):
            try:
                await handler.infer(bad)
            except (InvalidArgument, FailedPrecondition) as error:
                errors.append(error)
            except Exception as error:  # NotFound and friends
                errors.append(error)
        return errors

    errors = scenario(tmp_path, feature_dir, body)
    messages = [e.message for e in errors]
    assert "inputs: expected exactly one input 'features' (got 'xxxxxxxxxxxxxxxxxxxx'... (10000 characters))" in messages[0]
    assert "inputs: expected exactly one input 'features' (got none)" == messages[1]
    assert "outputs: unknown output 'logitslogitslogits" in messages[2]
    assert "parameters['feature_schema']: must be a string_param" == messages[3]
    assert errors[4].status == "FAILED_PRECONDITION" and len(errors[4].info["got"]) <= 64
    assert "datatype must be one of FP32, FP16, BF16 (got INT64)" in messages[5]
    assert errors[6].status == "NOT_FOUND" and "(100000 characters)" in messages[6]
    assert all(len(m) < 400 for m in messages), [len(m) for m in messages]


def test_metadata_names_the_version_and_its_feature_schema(tmp_path, feature_dir):
    async def body(handler, manager, dim):
        return handler.model_metadata("toy", ""), dim

    metadata, dim = scenario(tmp_path, feature_dir, body)
    assert (metadata.name, metadata.version, metadata.versions, metadata.feature_schema) == ("toy", "1", ("1",), "ads/1")
    assert metadata.inputs[0].shape == (-1, dim) and metadata.outputs[1].shape == (-1, 1)


def test_repository_calls_need_the_admin_token(tmp_path, feature_dir):
    async def body(handler, manager, dim):
        outcomes = []
        for header in ("", "Bearer wrong", "Bearer s3cret"):
            try:
                await handler.unload("toy", header)
                outcomes.append("ok")
            except (Unauthenticated, PermissionDenied) as error:
                outcomes.append(error.status)
        return outcomes

    assert scenario(tmp_path, feature_dir, body, admin_token="s3cret") == ["UNAUTHENTICATED", "PERMISSION_DENIED", "ok"]


def test_repository_calls_are_locked_when_no_token_is_configured(tmp_path, feature_dir):
    async def body(handler, manager, dim):
        outcomes = []
        for header in ("", "Bearer anything"):
            try:
                await handler.unload("toy", header)
                outcomes.append("ok")
            except FailedPrecondition as error:
                outcomes.append(error.status)
        return outcomes, manager.index()

    outcomes, index = scenario(tmp_path, feature_dir, body)
    assert outcomes == ["FAILED_PRECONDITION", "FAILED_PRECONDITION"]
    assert any(row[0] == "toy" and row[2] == "READY" for row in index)  # nothing was unloaded
