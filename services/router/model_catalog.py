"""Which version of a model the router asks for, the feature schema that version was trained
on, and which inference replicas serve it. No gRPC here: listing replicas and describing a
model on one replica (its ModelMetadata) are injected.

Every replica is described (ModelMetadata: the versions it serves, and per version the feature
schema, which never changes for a version, and its stage). The chosen version is the newest
production one that every replica serving the model has, so a request can go to any of them
while a new version rolls out replica by replica; when the replicas share none, the newest
production one overall, sent only to the replicas that serve it. A staging version answers only
where a split arm or shadow names it. A choice is reused for `max_age_s`, then refreshed in the background
while the old one keeps answering; `invalidate` (a replica refused the version) forces a fresh
look on the next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from domain.errors import MeshError, Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelDescription:
    """What one replica says of a model (ModelMetadata)."""

    versions: tuple[str, ...]
    """Every version it serves."""
    version: str
    """The version described."""
    feature_schema: str
    """"name/version" that version was trained on."""
    stages: tuple[tuple[str, str], ...] = ()
    """(version, stage) of every version it serves; a version it does not name is production."""


@dataclass(frozen=True)
class ModelChoice:
    model: str
    version: str
    feature_schema: str
    addresses: frozenset[str]
    """The replicas that serve this version."""

    @property
    def schema_version(self) -> str:
        return self.feature_schema.rpartition("/")[2]


ListReplicas = Callable[[], Awaitable[list[str]]]
# describe(address, model, version "" = newest) -> what that replica serves
Describe = Callable[[str, str, str], Awaitable[ModelDescription]]


def _version_key(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)


class VersionNotServed(Unavailable):
    """The model is served, but no replica serves the version asked for (rolled back, unloaded)."""


@dataclass
class _Look:
    """One refresh of a model's view: the generation it began in (None while it waits for the
    look before it)."""

    began: int | None = None
    task: asyncio.Task = field(init=False)


class ModelCatalog:
    def __init__(self, replicas: ListReplicas, describe: Describe, max_age_s: float = 2.0) -> None:
        self._replicas = replicas
        self._describe = describe
        self.max_age_s = max_age_s
        self._served: dict[str, tuple[float, dict[str, frozenset[str]]]] = {}  # model -> (when, address -> versions)
        self._schemas: dict[tuple[str, str], str] = {}  # (model, version) -> feature schema
        self._stages: dict[str, dict[str, str]] = {}  # model -> version -> stage (absent: production)
        self._choices: dict[tuple[str, str], ModelChoice] = {}  # from the current view of each model
        self._refreshing: dict[str, _Look] = {}  # model -> its newest look
        self._generations: dict[str, int] = {}  # model -> invalidations so far

    async def choose(self, model: str, version: str = "") -> ModelChoice:
        """The version to ask for ("" = the newest all replicas share, else exactly `version`),
        its feature schema and the replicas that serve it."""
        choice = self._choices.get((model, version))
        entry = self._served.get(model)
        if entry is None:
            # The view this refresh found (another request may invalidate it meanwhile).
            entry = await asyncio.shield(self._refresh(model))
        elif time.monotonic() - entry[0] > self.max_age_s:
            self._refresh(model)  # in the background; the current view answers meanwhile
        if choice is not None:
            return choice
        return await self._choice(model, version, entry[1])

    def invalidate(self, model: str) -> None:
        """Forget the view of `model`: the next caller waits for replicas asked after now."""
        self._generations[model] = self._generations.get(model, 0) + 1
        self._served.pop(model, None)
        for key in [k for k in self._choices if k[0] == model]:
            del self._choices[key]

    def _refresh(self, model: str) -> asyncio.Task:
        """The look callers share: the newest one, unless it began asking the replicas before
        the last `invalidate` (it may have read them before what invalidated the view: a
        version unloaded on one of them during a rollback); then a new one, begun once that one
        ended — one look in flight per model and at most one waiting, however many requests
        invalidate (each failing request does during an outage)."""
        generation = self._generations.get(model, 0)
        newest = self._refreshing.get(model)
        if newest is not None and (newest.began is None or newest.began >= generation):
            return newest.task
        look = _Look()
        look.task = asyncio.create_task(self._look(model, look, newest.task if newest is not None else None), name=f"catalog-{model}")
        self._refreshing[model] = look
        look.task.add_done_callback(lambda done: self._finished(model, look))
        return look.task

    def _finished(self, model: str, look: _Look) -> None:
        if self._refreshing.get(model) is look:
            del self._refreshing[model]
        task = look.task
        if not task.cancelled() and task.exception() is not None and model in self._served:
            log.warning("model catalog refresh of %s failed (the previous view stays): %s", model, task.exception())

    async def _look(self, model: str, look: _Look, after: asyncio.Task | None) -> tuple[float, dict[str, frozenset[str]]]:
        if after is not None:
            await asyncio.wait([after])
        generation = look.began = self._generations.get(model, 0)
        addresses = await self._replicas()
        answers = await asyncio.gather(*(self._describe(a, model, "") for a in addresses), return_exceptions=True)
        served: dict[str, frozenset[str]] = {}
        stages: dict[str, str] = {}
        errors: list[BaseException] = []
        for address, answer in zip(addresses, answers):
            if isinstance(answer, BaseException):
                errors.append(answer)
                continue
            self._schemas[(model, answer.version)] = answer.feature_schema
            served[address] = frozenset(answer.versions)
            stages.update(answer.stages)
        if not served:
            if errors and isinstance(errors[0], MeshError):
                raise errors[0]
            raise Unavailable(f"inference: no healthy replica serves model {model!r}")
        if generation < self._generations.get(model, 0):
            return time.monotonic(), served  # invalidated while asking: answers its callers, not the view
        previous, previous_stages = self._served.get(model), self._stages.get(model)
        entry = self._served[model] = (time.monotonic(), served)
        self._stages[model] = stages
        if previous is None or previous[1] != served or previous_stages != stages:  # a promotion changes the choice too
            for key in [k for k in self._choices if k[0] == model]:
                del self._choices[key]
        return entry

    async def _choice(self, model: str, version: str, served: dict[str, frozenset[str]]) -> ModelChoice:
        if version:
            if not any(version in versions for versions in served.values()):
                raise VersionNotServed(f"inference: no replica serves model {model!r} version {version!r} (served: "
                                  f"{', '.join(sorted(set().union(*served.values()), key=_version_key))})")
            chosen = version
        else:
            common = frozenset.intersection(*served.values())
            candidates = common or frozenset().union(*served.values())
            # The newest production version; a staging one only where an arm pins it (or, with
            # no production version served at all, the newest, rather than nothing).
            stages = self._stages.get(model, {})
            production = [v for v in candidates if stages.get(v, "production") == "production"]
            chosen = max(production or candidates, key=_version_key)
        if (model, chosen) not in self._schemas:
            address = next(a for a, versions in served.items() if chosen in versions)
            self._schemas[(model, chosen)] = (await self._describe(address, model, chosen)).feature_schema
        choice = ModelChoice(model, chosen, self._schemas[(model, chosen)], frozenset(a for a, v in served.items() if chosen in v))
        self._choices[(model, version)] = choice
        return choice
