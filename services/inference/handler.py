"""The inference data plane: every Open Inference Protocol call as a typed method, with no
protobuf (as MLServer's data plane). The servicer converts messages and calls these; the model
manager and the batcher do the work.

A request is checked before it queues, so a malformed one fails alone: one input named
`features`, a float datatype, shape [-1, D], finite values within the model's overflow-free
bound. A model output that is not finite is an error of the model (INTERNAL with reason
NON_FINITE_OUTPUT, counted), never a result.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from domain.models.stages import read_stage
from domain.errors import InvalidArgument, MeshError, ModelError, NotFound, quote
from domain.inference_protocol import FEATURE_SCHEMA_PARAMETER, INPUT_NAME, MEMBER_NAMES_PARAMETER, NON_FINITE_OUTPUT, OUTPUT_NAMES
from mesh.admin_auth import check_bearer
from services.inference.batching import Timing
from services.inference.model_manager import ModelManager, ServedVersion
from services.inference.statistics import VersionStatistics
from services.inference.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RepositoryEntry,
    ServerMetadata,
    Tensor,
    TensorSpec,
)

SERVER_NAME = "scoremesh-inference"
SERVER_VERSION = "0.1.0"
PLATFORM = "scoremesh_ensemble"
INPUT_DATATYPES = ("FP32", "FP16", "BF16")


def to_tensor(array: np.ndarray, datatype: str) -> torch.Tensor:
    """A decoded input as a tensor: BF16 arrives as uint16 bit patterns (NumPy has no bf16)."""
    if datatype == "BF16":
        return torch.from_numpy(np.array(array, dtype=np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(np.array(array))  # a private, writable copy of the request buffer


def check_features(served: ServedVersion, x: torch.Tensor) -> None:
    """Shape [-1, D]; every value finite and within the version's overflow-free bound."""
    d = served.model.packed.input_dim
    if x.dim() != 2 or x.shape[1] != d:
        raise InvalidArgument(f"input '{INPUT_NAME}': shape must be [-1, {d}] (got {list(x.shape)})")
    if x.shape[0] == 0:
        return
    # One pass; NaN propagates, so the test below catches it too. NumPy where it can (a view of
    # the same memory): its reduction costs a fraction of PyTorch's dispatch on a few rows.
    largest = float(np.abs(x.numpy()).max()) if x.dtype != torch.bfloat16 else float(x.abs().max())
    if largest <= served.input_bound:
        return
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        row, column = (int(i) for i in torch.nonzero(~finite)[0])
        raise InvalidArgument(f"input '{INPUT_NAME}': holds NaN or infinity (row {row}, column {column})")
    row, column = (int(i) for i in torch.nonzero(x.abs() > served.input_bound)[0])
    raise InvalidArgument(
        f"input '{INPUT_NAME}': values must be within +-{served.input_bound:.3g} for {served.model.name} v{served.version}, "
        f"beyond which its float32 arithmetic overflows (row {row}, column {column} holds {float(x[row, column]):.3g})"
    )


def _string_parameter(request: InferenceRequest, key: str) -> str | None:
    value = request.parameters.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"parameters[{key!r}]: must be a string_param")
    return value


class InferenceHandler:
    def __init__(self, manager: ModelManager, admin_token: str | None = None) -> None:
        self.manager = manager
        self.admin_token = admin_token

    # ---------------------------------------------------------------- health & metadata
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.manager.ready

    def model_ready(self, name: str, version: str) -> bool:
        try:
            self.manager.get(name, version)
        except MeshError:
            return False
        return True

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(SERVER_NAME, SERVER_VERSION, ("model_repository", "statistics"))

    def model_metadata(self, name: str, version: str) -> ModelMetadata:
        served = self.manager.get(name, version)
        packed = served.model.packed
        return ModelMetadata(
            name=served.model.name,
            version=served.version,
            versions=tuple(sorted(self.manager.served[name], key=int)),
            platform=PLATFORM,
            inputs=(TensorSpec(INPUT_NAME, "FP32", (-1, packed.input_dim)),),
            outputs=(
                TensorSpec("score", "FP32", (-1,)),
                TensorSpec("member_scores", "FP32", (-1, packed.members)),
                TensorSpec("confidence", "FP32", (-1,)),
            ),
            feature_schema=served.feature_schema,
            stages=tuple((v, read_stage(self.manager.repository / name / v)) for v in sorted(self.manager.served[name], key=int)),
        )

    # ---------------------------------------------------------------- inference
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        started = time.monotonic()
        served = self.manager.get(request.model_name, request.model_version)
        try:
            declared = _string_parameter(request, FEATURE_SCHEMA_PARAMETER)
            if declared is not None:
                self.manager.check_schema(served, declared)
            tensor = self._the_input(request)
            wanted = request.outputs or OUTPUT_NAMES
            unknown = [name for name in wanted if name not in OUTPUT_NAMES]
            if unknown:
                raise InvalidArgument(f"outputs: unknown output {quote(unknown[0])} (outputs: {', '.join(OUTPUT_NAMES)})")
            x = to_tensor(tensor.data, tensor.datatype)
            check_features(served, x)
            input_s = time.monotonic() - started
            if x.shape[0]:
                outputs, timing = await served.infer(x, request.deadline)
                arrays = {name: outputs[name].float().cpu().numpy() for name in OUTPUT_NAMES}
            else:  # nothing to score: no batch, no kernel launch
                timing = Timing(0.0, 0.0, 0)
                arrays = self._empty_outputs(served)
            encoded_at = time.monotonic()
            self._check_finite(served, arrays)
            response = InferenceResponse(
                served.model.name, served.version, request.id,
                tuple(Tensor(name, "FP32", arrays[name]) for name in wanted),
                {MEMBER_NAMES_PARAMETER: ",".join(served.model.packed.member_names), FEATURE_SCHEMA_PARAMETER: served.feature_schema},
            )
        except MeshError as error:
            served.stats.record_failure(time.monotonic() - started, error.status)
            raise
        except Exception:
            served.stats.record_failure(time.monotonic() - started, "INTERNAL")
            raise
        done = time.monotonic()
        served.stats.record_success(int(x.shape[0]), done - started, timing.queue_s, timing.compute_s, input_s, done - encoded_at)
        return response

    @staticmethod
    def _the_input(request: InferenceRequest) -> Tensor:
        names = [t.name for t in request.inputs]
        if names != [INPUT_NAME]:
            shown = ", ".join(quote(n, 20) for n in names[:4]) + (", ..." if len(names) > 4 else "")
            raise InvalidArgument(f"inputs: expected exactly one input '{INPUT_NAME}' (got {shown or 'none'})")
        tensor = request.inputs[0]
        if tensor.datatype not in INPUT_DATATYPES:  # a protocol datatype (decoding checked it): safe to echo
            raise InvalidArgument(f"input '{INPUT_NAME}': datatype must be one of {', '.join(INPUT_DATATYPES)} (got {tensor.datatype})")
        return tensor

    @staticmethod
    def _empty_outputs(served: ServedVersion) -> dict[str, np.ndarray]:
        members = served.model.packed.members
        return {"score": np.zeros(0, np.float32), "member_scores": np.zeros((0, members), np.float32), "confidence": np.zeros(0, np.float32)}

    @staticmethod
    def _check_finite(served: ServedVersion, arrays: dict[str, np.ndarray]) -> None:
        bad = [name for name, array in arrays.items() if not np.isfinite(array).all()]
        if bad:
            rows = int(np.count_nonzero(~np.isfinite(arrays[bad[0]]).reshape(len(arrays[bad[0]]), -1).all(axis=1)))
            served.stats.record_non_finite()
            raise ModelError(
                f"model {served.model.name} v{served.version} produced non-finite {', '.join(bad)} for {rows} of "
                f"{len(arrays[bad[0]])} rows; the result is withheld",
                reason=NON_FINITE_OUTPUT,
                info={"model": served.model.name, "version": served.version},
            )

    # ---------------------------------------------------------------- statistics
    def statistics(self, name: str, version: str) -> list[VersionStatistics]:
        if name and name not in self.manager.served:
            raise NotFound(f"name: model {quote(name)} is not served here")
        found = []
        for model in sorted(self.manager.served):
            if name and model != name:
                continue
            versions = self.manager.served[model]
            if version and version not in versions:
                raise NotFound(f"version: model {quote(model)} has no ready version {quote(version)}")
            found += [versions[v].stats for v in sorted(versions, key=int) if not version or v == version]
        return found

    # ---------------------------------------------------------------- repository (admin)
    def repository_index(self, ready_only: bool) -> list[RepositoryEntry]:
        return [RepositoryEntry(*row) for row in self.manager.index() if not ready_only or row[2] == "READY"]

    def authorize(self, authorization: str) -> None:
        """The admin bearer token (mesh.admin_auth); no token configured = locked."""
        check_bearer(authorization, self.admin_token, "repository calls")

    async def load(self, name: str, authorization: str) -> None:
        self.authorize(authorization)
        if not name:
            raise InvalidArgument("model_name: required")
        await self.manager.load(name)

    async def unload(self, name: str, authorization: str, version: str = "", reason: str = "") -> None:
        """Every version of the model, or with `version` only that one, held back until the
        model is loaded again (a rollback)."""
        self.authorize(authorization)
        if not name:
            raise InvalidArgument("model_name: required")
        if version:
            await self.manager.hold_back(name, version, reason)
        else:
            await self.manager.unload(name)
