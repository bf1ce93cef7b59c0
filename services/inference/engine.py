"""The models an inference instance serves, and running them. No gRPC here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from kernels.dispatch import score_ensemble
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.features.schema import SchemaError
from services.features.schema_store import SchemaStore
from services.inference.protocol import INPUT_NAME, SCHEMA_MISMATCH
from services.inference.repository import LoadedModel, ModelLoadError, load_latest

log = logging.getLogger(__name__)



def tensor_metadata(model: LoadedModel) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
    """(inputs, outputs) as (name, datatype, shape) with -1 for the batch dimension."""
    inputs = [(INPUT_NAME, "FP32", [-1, model.packed.input_dim])]
    outputs = [
        ("score", "FP32", [-1]),
        ("member_scores", "FP32", [-1, model.packed.members]),
        ("confidence", "FP32", [-1]),
    ]
    return inputs, outputs


class InferenceEngine:
    def __init__(self, repository: Path, feature_dir: Path, device: str = "cpu") -> None:
        self.repository = repository
        self.schemas = SchemaStore(feature_dir)
        self.device = device
        self.models: dict[str, LoadedModel] = {}
        self.ready = False

    def load(self) -> None:
        """Load the newest version of every model; refuse a schema the features service lacks."""
        models = load_latest(self.repository)
        if not models:
            raise ModelLoadError(f"{self.repository}: no models (run `scoremesh train`)")
        for model in models.values():
            schema_name, schema_version = model.schema
            try:
                schema = self.schemas.load(schema_name, schema_version)
            except SchemaError as error:
                raise ModelLoadError(f"{model.name} v{model.version}: feature_schema: {error}") from None
            if schema.dim != model.packed.input_dim:
                raise ModelLoadError(
                    f"{model.name} v{model.version}: input_dim {model.packed.input_dim} != "
                    f"schema {schema_name} v{schema_version} dimension {schema.dim}"
                )
        self.models = {name: LoadedModel(m.name, m.version, m.config, m.packed.to(self.device)) for name, m in models.items()}
        log.info("loaded %s", ", ".join(f"{m.name} v{m.version}" for m in self.models.values()))

    def warm_up(self) -> None:
        for model in self.models.values():
            self.run(model, np.zeros((4, model.packed.input_dim), dtype=np.float32))
        self.ready = True

    def get(self, name: str, version: str = "") -> LoadedModel:
        if not self.ready:
            raise Unavailable("models are still loading")
        model = self.models.get(name)
        if model is None:
            raise NotFound(f"model {name!r} is not served here (served: {', '.join(sorted(self.models))})")
        if version and version != model.version:
            raise NotFound(f"model {name!r} has no ready version {version!r} (ready: {model.version})")
        return model

    @staticmethod
    def check_schema(model: LoadedModel, declared: str) -> None:
        """`declared` ("name/version", from the request) must be the model's training schema."""
        expected = "/".join(model.schema)
        if declared and declared != expected:
            raise FailedPrecondition(
                f"model {model.name} v{model.version} was trained on feature schema {expected}; the features are {declared}",
                reason=SCHEMA_MISMATCH,
                info={"expected": expected, "got": declared},
            )

    def run(self, model: LoadedModel, features: np.ndarray) -> dict[str, np.ndarray]:
        if features.ndim != 2 or features.shape[1] != model.packed.input_dim:
            raise InvalidArgument(
                f"input '{INPUT_NAME}': shape must be [-1, {model.packed.input_dim}] (got {list(features.shape)})"
            )
        if not np.isfinite(features).all():
            raise InvalidArgument(f"input '{INPUT_NAME}': holds NaN or infinity")
        # A private copy: request buffers are read-only and must never be written through.
        x = torch.from_numpy(np.array(features, dtype=np.float32, order="C")).to(self.device)
        with torch.inference_mode():
            out = score_ensemble(x, model.packed)
        return {
            "score": out.score.float().cpu().numpy(),
            "member_scores": out.member_scores.float().cpu().numpy(),
            "confidence": out.confidence.float().cpu().numpy(),
        }
