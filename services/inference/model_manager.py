"""The models an instance serves: several versions at once under a version policy, loaded from
the repository, picked up when new versions appear, unloaded after draining. No gRPC here.

A failed load of a new version is recorded (UNAVAILABLE with the reason) and leaves the
versions already serving untouched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from domain.errors import FailedPrecondition, NotFound, Unavailable, quote
from domain.features.schema import SchemaError
from domain.features.schema_store import SchemaStore
from domain.inference_protocol import NOT_LOADED_BY_POLICY, SCHEMA_MISMATCH
from domain.models.ensemble_weights import WEIGHTED_METHODS, apply_newest, newest_number
from domain.models.repository import LoadedModel, ModelLoadError, load_model, scan
from domain.models.stages import read_stage
from kernels.dispatch import score_ensemble
from kernels.fused_scoring import keep_tuning
from kernels.packing import safe_input_bound
from kernels.tuning import buckets_up_to, tune
from services.inference.batching import BatchingPolicy, DynamicBatcher, Outputs, Timing
from services.inference.gpu_dispatch import GpuDispatcher
from services.inference.statistics import VersionStatistics

log = logging.getLogger(__name__)

READY, UNAVAILABLE, LOADING, UNLOADING = "READY", "UNAVAILABLE", "LOADING", "UNLOADING"
# A model whose weights let inputs this small overflow float32 is refused at load: ordinary
# (standardized) features would already turn into NaN.
MIN_INPUT_BOUND = 1e3


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model to serve: the newest `latest` ones, or an explicit list."""

    latest: int = 2
    specific: tuple[str, ...] = ()

    def choose(self, available: list[str]) -> list[str]:
        if self.specific:
            return [v for v in available if v in self.specific]
        return available[-self.latest :] if self.latest > 0 else []


@dataclass
class ServedVersion:
    model: LoadedModel
    batcher: DynamicBatcher
    stats: VersionStatistics
    device: str
    compute_dtype: torch.dtype
    input_bound: float
    """Largest |feature| this version computes without overflow (kernels.packing.safe_input_bound)."""

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def feature_schema(self) -> str:
        return "/".join(self.model.schema)

    async def infer(self, x: torch.Tensor, deadline: float | None) -> tuple[Outputs, Timing]:
        return await self.batcher.submit(x.to(self.compute_dtype), deadline)


@dataclass
class VersionState:
    state: str
    reason: str = ""


@dataclass
class ModelManager:
    repository: Path
    feature_dir: Path
    device: str = "cpu"
    compute_dtype: torch.dtype = torch.float32
    precision: str = "ieee"
    """How float32 inputs are multiplied on a GPU: "ieee" or "tf32" (kernels.fused_scoring)."""
    tuning_cache: Path | None = None
    """Where the kernel configs tuned at load are kept across restarts (GPU only)."""
    batching: BatchingPolicy = field(default_factory=BatchingPolicy)
    default_policy: VersionPolicy = field(default_factory=VersionPolicy)
    policies: dict[str, VersionPolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.served: dict[str, dict[str, ServedVersion]] = {}
        self.states: dict[tuple[str, str], VersionState] = {}
        self.schemas = SchemaStore(self.feature_dir)
        self.unloaded: set[str] = set()  # unloaded by request: stays so until loaded again
        # Versions held back by request (a rollback): not served, whatever the poller sees, until
        # the model is loaded again by request. (name, version) -> why.
        self.held: dict[tuple[str, str], str] = {}
        self._all_loaded = False
        self._lock = asyncio.Lock()
        # One thread and stream launch every batch on the GPU (services/inference/gpu_dispatch.py).
        self.dispatcher = GpuDispatcher(self.device) if torch.device(self.device).type == "cuda" else None

    # ------------------------------------------------------------------ loading
    def _validate_schema(self, model: LoadedModel) -> None:
        name, version = model.schema
        try:
            schema = self.schemas.load(name, version)
        except SchemaError as error:
            raise ModelLoadError(f"{model.name} v{model.version}: feature_schema: {error}") from None
        if schema.dim != model.packed.input_dim:
            raise ModelLoadError(f"{model.name} v{model.version}: input_dim {model.packed.input_dim} != schema {name} v{version} dimension {schema.dim}")

    def _run(self, packed):
        def run(x: torch.Tensor) -> Outputs:
            with torch.inference_mode():
                out = score_ensemble(x.to(self.device), packed, precision=self.precision)
            return {"score": out.score, "member_scores": out.member_scores, "confidence": out.confidence}

        return run

    def _load_version(self, path: Path) -> LoadedModel:
        """The blocking part of a load (runs in a thread): read, validate, move, warm up."""
        model = apply_newest(load_model(path), path)  # with the newest ensemble weights written for it
        if model.name != path.parent.name or model.version != path.name:
            raise ModelLoadError(f"{path / 'config.yaml'}: name/version say {model.name} v{model.version}, the folder says {path.parent.name} v{path.name}")
        self._validate_schema(model)
        bound = safe_input_bound(model.packed)
        if bound < MIN_INPUT_BOUND:
            raise ModelLoadError(f"{model.name} v{model.version}: weights so large that inputs beyond {bound:.3g} overflow float32")
        packed = model.packed.to(self.device)
        self._run(packed)(torch.zeros(4, packed.input_dim, dtype=self.compute_dtype))  # warm-up (compiles the kernel on a GPU)
        if self.dispatcher is not None:
            # Kernel configs for every batch the batcher can form, tuned now (or read from the
            # cache) rather than on traffic; on this thread's stream, beside serving versions.
            tune(packed, self.compute_dtype, self.device, buckets_up_to(self.batching.max_batch_rows), self.tuning_cache, self.precision)
        return LoadedModel(model.name, model.version, model.config, packed, model.weights_version)

    async def _reweigh(self, name: str, version: str, served: ServedVersion, path: Path) -> str | None:
        """Serve the newest ensemble weights written for a version, if newer than its own;
        in place, no reload (requests in flight finish with the weights they started with).
        Returns the problem, if the new weights are refused (the old ones keep serving)."""
        number = await asyncio.to_thread(newest_number, path)
        if number <= served.model.weights_version or served.model.packed.combine.method not in WEIGHTED_METHODS:
            return None
        try:
            model = await asyncio.to_thread(apply_newest, served.model, path, True)
            model = dataclasses.replace(model, packed=model.packed.to(self.device))
            keep_tuning(served.model.packed, model.packed)  # same shapes: the tuning done at load still holds
        except ModelLoadError as error:
            reason = f"new ensemble weights refused: {error}"
            if self.states.get((name, version), VersionState("")).reason == reason:
                return None  # reported once
            self.states[(name, version)] = VersionState(READY, reason)
            return reason
        served.model = model
        served.batcher.run = self._run(model.packed)
        self.states[(name, version)] = VersionState(READY)
        log.info("%s v%s combines with ensemble weights #%d: %s", name, version, model.weights_version,
                 dict(zip(model.packed.member_names, model.packed.combine.weights)))
        return None

    def _serve(self, model: LoadedModel) -> ServedVersion:
        stats = VersionStatistics(model.name, model.version)
        batcher = DynamicBatcher(self._run(model.packed), self.batching, name=f"{model.name} v{model.version}", executor=self.dispatcher)
        batcher.on_batch = stats.record_batch
        bound = min(safe_input_bound(model.packed), float(torch.finfo(self.compute_dtype).max))
        return ServedVersion(model, batcher, stats, self.device, self.compute_dtype, bound)

    async def sync(self, only: str | None = None) -> list[str]:
        """Bring what is served in line with the repository and the version policies; returns
        the problems met (failed loads), which never disturb serving versions."""
        async with self._lock:
            problems = []
            repository = await asyncio.to_thread(scan, self.repository)
            names = [only] if only else sorted(set(repository) | set(self.served))
            for name in names:
                folders = [p.name for p in repository.get(name, [])]
                available = [v for v in folders if (name, v) not in self.held]
                paths = {p.name: p for p in repository.get(name, [])}
                policy = self.policies.get(name, self.default_policy)
                current = self.served.setdefault(name, {})
                while True:
                    # Versions that failed to load are skipped, so the policy falls back on
                    # the ones serving now rather than dropping them.
                    loadable = [v for v in available if self.states.get((name, v), VersionState("")).state != UNAVAILABLE or v in current]
                    wanted = [] if name in self.unloaded else policy.choose(loadable)
                    # The newest production version serves whatever the policy says of the newest
                    # ones (they may all be staging, waiting for promotion).
                    production = [v for v in loadable if read_stage(paths[v]) == "production"]
                    if wanted and production and production[-1] not in wanted and not policy.specific:
                        wanted = sorted({*wanted, production[-1]}, key=int)
                    missing = [v for v in wanted if v not in current]
                    if not missing:
                        break
                    for version in missing:
                        self.states[(name, version)] = VersionState(LOADING)
                        try:
                            current[version] = self._serve(await asyncio.to_thread(self._load_version, paths[version]))
                        except Exception as error:  # any failed load is recorded; serving versions stay
                            self.states[(name, version)] = VersionState(UNAVAILABLE, str(error))
                            problems.append(str(error))
                            log.error("load of %s v%s failed: %s", name, version, error)
                            continue
                        self.states[(name, version)] = VersionState(READY)
                        log.info("serving %s v%s", name, version)
                for version in [v for v in current if v not in wanted]:
                    await self._unload(name, version)
                for version, served in current.items():
                    problem = await self._reweigh(name, version, served, paths[version]) if version in paths else None
                    if problem:
                        problems.append(problem)
                for key in [k for k in self.states if k[0] == name and k[1] not in folders and k[1] not in current]:
                    del self.states[key]  # the folder is gone: forget its state
                    self.held.pop(key, None)
                for key, why in self.held.items():
                    if key[0] == name:
                        self.states[key] = VersionState(UNAVAILABLE, f"held back: {why}")
                if not current:
                    self.served.pop(name, None)
            return problems

    async def _unload(self, name: str, version: str) -> None:
        served = self.served[name].pop(version)
        self.states[(name, version)] = VersionState(UNLOADING)
        await served.batcher.drain()
        self.states.pop((name, version), None)
        log.info("unloaded %s v%s", name, version)

    async def load(self, name: str) -> None:
        """RepositoryModelLoad: (re)load a model's versions now; a retry of failed versions."""
        if name not in await asyncio.to_thread(scan, self.repository):
            raise NotFound(f"model_name: no model {quote(name)} in the repository")
        self.unloaded.discard(name)
        for key in [k for k in self.states if k[0] == name and self.states[k].state == UNAVAILABLE]:
            del self.states[key]
            self.held.pop(key, None)
        problems = await self.sync(only=name)
        if name not in self.served:
            raise FailedPrecondition(f"model {quote(name)} could not be loaded: {'; '.join(problems)}")

    async def unload(self, name: str) -> None:
        """RepositoryModelUnload: stop serving every version of a model, after draining."""
        async with self._lock:
            if name not in self.served:
                raise NotFound(f"model_name: model {quote(name)} is not loaded")
            for version in list(self.served[name]):
                await self._unload(name, version)
            self.served.pop(name, None)
            # Keep it unloaded until an explicit load, even if the poller sees its folder.
            self.unloaded.add(name)

    async def hold_back(self, name: str, version: str, reason: str) -> None:
        """RepositoryModelUnload of one version (a rollback): stop serving it, after draining,
        and keep it out until the model is loaded again by request; the version policy then
        serves the versions before it."""
        folders = [p.name for p in (await asyncio.to_thread(scan, self.repository)).get(name, [])]
        if version not in folders and version not in self.served.get(name, {}):
            raise NotFound(f"parameters['version']: model {quote(name)} has no version {quote(version)}")
        self.held[(name, version)] = reason or "unloaded by request"
        await self.sync(only=name)

    async def unload_all(self) -> None:
        for name in list(self.served):
            for version in list(self.served[name]):
                await self._unload(name, version)
        if self.dispatcher is not None:
            self.dispatcher.close()

    # ------------------------------------------------------------------ lookups
    @property
    def ready(self) -> bool:
        """Some model serves, and every model not unloaded on purpose has a version serving."""
        return bool(self.served) and all(self.served.values()) and self._all_loaded

    async def refresh(self) -> list[str]:
        """`sync`, then note whether every model of the repository is serving."""
        problems = await self.sync()
        repository = await asyncio.to_thread(scan, self.repository)
        # A model unloaded by request, or with every version held back, is not missing.
        names = {name for name, paths in repository.items() if any((name, p.name) not in self.held for p in paths)} - self.unloaded
        self._all_loaded = names <= set(self.served)
        return problems

    def get(self, name: str, version: str = "") -> ServedVersion:
        versions = self.served.get(name)
        if not versions:
            state = [f"v{v}: {s.reason}" for (n, v), s in self.states.items() if n == name and s.reason]
            if state:
                raise Unavailable(f"model {quote(name)} has no ready version ({'; '.join(state)})")
            raise NotFound(f"model {quote(name)} is not served here (served: {', '.join(sorted(self.served)) or 'none'})")
        if not version:
            return versions[max(versions, key=int)]
        if version not in versions:
            state = self.states.get((name, version))
            if state is not None and state.state != READY:
                raise Unavailable(f"model {quote(name)} version {quote(version)} is {state.state}{': ' + state.reason if state.reason else ''}")
            raise NotFound(f"model {quote(name)} has no ready version {quote(version)} (ready: {', '.join(sorted(versions, key=int))})")
        return versions[version]

    def index(self) -> list[tuple[str, str, str, str]]:
        """(name, version, state, reason) of every version known, repository order."""
        rows = {}
        for (name, version), state in self.states.items():
            rows[(name, version)] = (name, version, state.state, state.reason)
        for path_name, paths in scan(self.repository).items():
            for path in paths:
                rows.setdefault((path_name, path.name), (path_name, path.name, UNAVAILABLE, NOT_LOADED_BY_POLICY))
        return sorted(rows.values(), key=lambda r: (r[0], int(r[1])))

    @staticmethod
    def check_schema(served: ServedVersion, declared: str) -> None:
        expected = served.feature_schema
        if declared and declared != expected:
            raise FailedPrecondition(
                f"model {served.model.name} v{served.version} was trained on feature schema {expected}; the features are {quote(declared)}",
                reason=SCHEMA_MISMATCH,
                info={"expected": expected, "got": declared[:64]},
            )
