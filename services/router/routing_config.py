"""The router's dynamic configuration: rules, routes (ensemble, version split, shadow,
fallback, admission), pipelines. Parsed and validated whole — a bad document is refused with an
error naming the rule or route and the field, and the running one stays — then frozen and
versioned by its content (the same document has the same version on every router). No gRPC.

    default_route: quality
    rules:
      - {name: search, priority: 20, when: {field: data_type, op: eq, value: search}, route: search}
    routes:
      search:
        ensemble: ctr_ensemble
        fallback: ctr_stacking          # really called when ctr_ensemble cannot answer
        split: [{arm: canary, version: "2", weight: 0.1}, {arm: stable, version: "1", weight: 0.9}]
        sticky: true                    # a user keeps their arm (hash of route and user id)
        shadow: {ensemble: ctr_stacking, percent: 10}
        admission: {rate: 500, burst: 1000}
        pipeline: ads
    pipelines:
      ads:
        - {name: feature_extraction, on_error: retry}
        - {name: model_inference, depends_on: [feature_extraction], on_error: fallback}
        - {name: post_processing, depends_on: [model_inference], kind: soft,
           when: {field: model_inference.confidence_mean, op: gt, value: 0.5}}
    admission: {per_caller_rate: 0, per_caller_burst: 0}   # 0 = no limit
"""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from services.router.rules import FIELDS, Condition, Rule, RuleError, RuleSet, compile_condition

STAGES = ("feature_extraction", "model_inference", "post_processing")
REQUIRED = ("feature_extraction", "model_inference")  # no answer without them
ON_ERROR = ("fail", "skip", "retry", "fallback")
KINDS = ("hard", "soft", "optional")
# What stages may test besides the request's fields: outputs of the stages before them.
STAGE_OUTPUTS = ("feature_extraction.degraded", "model_inference.confidence_mean", "model_inference.confidence_min",
                 "model_inference.score_mean", "model_inference.fallback_used")


@dataclass(frozen=True)
class Arm:
    name: str
    version: str
    """"" = the newest version every replica serves."""
    weight: float


@dataclass(frozen=True)
class Shadow:
    ensemble: str
    version: str
    percent: float


@dataclass(frozen=True)
class Admission:
    rate: float = 0.0
    """Tokens per second; 0 = no limit."""
    burst: float = 0.0


@dataclass(frozen=True)
class Route:
    name: str
    ensemble: str
    arms: tuple[Arm, ...]
    fallback: str = ""
    sticky: bool = False
    shadow: Shadow | None = None
    admission: Admission = Admission()
    pipeline: str = "ads"

    def arm(self, user_id: str, rng: random.Random) -> Arm:
        """The split arm of one request: weighted; sticky per user when asked (the same user
        keeps their arm as long as this route's weights stay)."""
        if len(self.arms) == 1:
            return self.arms[0]
        if self.sticky and user_id:
            u = (zlib.crc32(f"{self.name}|{user_id}".encode()) % 1_000_000) / 1_000_000
        else:
            u = rng.random()
        for arm in self.arms:
            u -= arm.weight
            if u < 0:
                return arm
        return self.arms[-1]

    def mirrors(self, rng: random.Random) -> bool:
        return self.shadow is not None and rng.random() * 100 < self.shadow.percent


@dataclass(frozen=True)
class Stage:
    name: str
    depends_on: tuple[str, ...] = ()
    when: Condition | None = None
    on_error: str = "fail"
    kind: str = "hard"
    timeout_share: float = 1.0
    """Of the time left in the request when the stage starts."""
    attempts: int = 3
    """With on_error retry: calls the mesh client may make (within its retry budget)."""


@dataclass(frozen=True)
class RoutingConfig:
    version: str
    rules: RuleSet
    routes: dict[str, Route]
    pipelines: dict[str, tuple[Stage, ...]]
    per_caller: Admission
    document: dict[str, Any] = field(repr=False, compare=False)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.document, sort_keys=False)


def _require(spec: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(spec, dict) or key not in spec:
        raise RuleError(f"{where}.{key}: required")
    value = spec[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise RuleError(f"{where}.{key}: wrong type (got {value!r})")
    return value


def _number(spec: dict, key: str, where: str, default: float, low: float = 0.0, high: float | None = None) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (high is not None and value > high):
        bound = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise RuleError(f"{where}.{key}: must be a number {bound} (got {value!r})")
    return float(value)


def _keys(spec: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise RuleError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(allowed))})")


def _admission(spec: Any, where: str) -> Admission:
    if spec is None:
        return Admission()
    if not isinstance(spec, dict):
        raise RuleError(f"{where}: a mapping of rate and burst")
    _keys(spec, {"rate", "burst"}, where)
    rate = _number(spec, "rate", where, 0.0)
    return Admission(rate, _number(spec, "burst", where, rate))


def _route(name: str, spec: Any, pipelines: set[str]) -> Route:
    where = f"routes.{name}"
    if not isinstance(spec, dict):
        raise RuleError(f"{where}: a mapping")
    _keys(spec, {"ensemble", "fallback", "split", "sticky", "shadow", "admission", "pipeline", "version"}, where)
    ensemble = _require(spec, "ensemble", str, where)
    if not ensemble:
        raise RuleError(f"{where}.ensemble: required")
    if "split" in spec and "version" in spec:
        raise RuleError(f"{where}: either version or split, not both")
    if "split" in spec:
        split = spec["split"]
        if not isinstance(split, list) or not split:
            raise RuleError(f"{where}.split: a non-empty list of arms")
        arms = []
        for i, arm in enumerate(split):
            arm_where = f"{where}.split[{i}]"
            if not isinstance(arm, dict):
                raise RuleError(f"{arm_where}: a mapping of arm, version, weight")
            _keys(arm, {"arm", "version", "weight"}, arm_where)
            arms.append(Arm(str(arm.get("arm", f"arm{i}")), str(arm.get("version", "")), _number(arm, "weight", arm_where, -1.0, 0.0, 1.0)))
        total = sum(a.weight for a in arms)
        if abs(total - 1.0) > 1e-6:
            raise RuleError(f"{where}.split: weights must sum to 1 (they sum to {total:g})")
        if len({a.name for a in arms}) != len(arms):
            raise RuleError(f"{where}.split: arm names must be unique")
    else:
        arms = [Arm("main", str(spec.get("version", "")), 1.0)]
    shadow = None
    if spec.get("shadow") is not None:
        shadow_spec = spec["shadow"]
        shadow_where = f"{where}.shadow"
        if not isinstance(shadow_spec, dict):
            raise RuleError(f"{shadow_where}: a mapping of ensemble, version, percent")
        _keys(shadow_spec, {"ensemble", "version", "percent"}, shadow_where)
        shadow = Shadow(_require(shadow_spec, "ensemble", str, shadow_where), str(shadow_spec.get("version", "")),
                        _number(shadow_spec, "percent", shadow_where, 100.0, 0.0, 100.0))
    pipeline = spec.get("pipeline", "ads")
    if pipeline not in pipelines:
        raise RuleError(f"{where}.pipeline: no pipeline {pipeline!r} (pipelines: {', '.join(sorted(pipelines))})")
    fallback = spec.get("fallback", "") or ""
    if not isinstance(fallback, str) or fallback == ensemble:
        raise RuleError(f"{where}.fallback: another ensemble's name (got {fallback!r})")
    sticky = spec.get("sticky", False)
    if not isinstance(sticky, bool):
        raise RuleError(f"{where}.sticky: true or false (got {sticky!r})")
    return Route(name, ensemble, tuple(arms), fallback, sticky, shadow, _admission(spec.get("admission"), f"{where}.admission"), pipeline)


def _pipeline(name: str, spec: Any) -> tuple[Stage, ...]:
    where = f"pipelines.{name}"
    if not isinstance(spec, list) or not spec:
        raise RuleError(f"{where}: a non-empty list of stages")
    stages: list[Stage] = []
    fields = set(FIELDS) | set(STAGE_OUTPUTS)
    for i, stage in enumerate(spec):
        stage_where = f"{where}[{i}]"
        if not isinstance(stage, dict):
            raise RuleError(f"{stage_where}: a mapping")
        _keys(stage, {"name", "depends_on", "when", "on_error", "kind", "timeout_share", "attempts"}, stage_where)
        stage_name = _require(stage, "name", str, stage_where)
        if stage_name not in STAGES:
            raise RuleError(f"{stage_where}.name: unknown stage {stage_name!r} (stages: {', '.join(STAGES)})")
        if any(s.name == stage_name for s in stages):
            raise RuleError(f"{stage_where}.name: {stage_name!r} twice")
        depends = tuple(stage.get("depends_on", ()))
        for dependency in depends:
            if dependency not in {s.name for s in stages}:
                raise RuleError(f"{stage_where}.depends_on: {dependency!r} is not a stage listed before it")
        on_error = stage.get("on_error", "fail")
        if on_error not in ON_ERROR:
            raise RuleError(f"{stage_where}.on_error: one of {', '.join(ON_ERROR)} (got {on_error!r})")
        if on_error == "fallback" and stage_name != "model_inference":
            raise RuleError(f"{stage_where}.on_error: fallback applies to model_inference only")
        kind = stage.get("kind", "hard")
        if kind not in KINDS:
            raise RuleError(f"{stage_where}.kind: one of {', '.join(KINDS)} (got {kind!r})")
        if stage_name in REQUIRED and (kind != "hard" or on_error == "skip" or stage.get("when") is not None):
            raise RuleError(f"{stage_where}: {stage_name} is needed for any answer: hard, never skipped, no condition")
        when = compile_condition(stage["when"], f"{stage_where}.when", fields) if stage.get("when") is not None else None
        stages.append(Stage(stage_name, depends, when, on_error, kind, _number(stage, "timeout_share", stage_where, 1.0, 0.01, 1.0),
                            int(_number(stage, "attempts", stage_where, 3, 1, 10))))
    needs = {"model_inference": "feature_extraction", "post_processing": "model_inference"}
    for stage in stages:
        if stage.name in needs and needs[stage.name] not in stage.depends_on:
            raise RuleError(f"{where}: stage {stage.name} needs depends_on: [{needs[stage.name]}]")
    if "model_inference" not in {s.name for s in stages}:
        raise RuleError(f"{where}: a pipeline needs a model_inference stage")
    return tuple(stages)


def parse(document: Any) -> RoutingConfig:
    """The configuration of a document, or RuleError naming what is wrong."""
    if not isinstance(document, dict):
        raise RuleError("routing: a mapping with rules, routes, default_route")
    _keys(document, {"default_route", "rules", "routes", "pipelines", "admission"}, "routing")
    pipelines_spec = document.get("pipelines") or DEFAULT["pipelines"]
    if not isinstance(pipelines_spec, dict):
        raise RuleError("pipelines: a mapping of pipeline names to stages")
    pipelines = {name: _pipeline(name, spec) for name, spec in pipelines_spec.items()}
    routes_spec = _require(document, "routes", dict, "routing")
    routes = {name: _route(name, spec, set(pipelines)) for name, spec in routes_spec.items()}
    default_route = _require(document, "default_route", str, "routing")
    if default_route not in routes:
        raise RuleError(f"routing.default_route: no route {default_route!r} (routes: {', '.join(sorted(routes))})")
    rules = []
    for i, spec in enumerate(document.get("rules") or []):
        where = f"rules[{i}]"
        if not isinstance(spec, dict):
            raise RuleError(f"{where}: a mapping of name, priority, when, route")
        name = _require(spec, "name", str, where)
        where = f"rules[{i}] ({name})"
        _keys(spec, {"name", "priority", "when", "route"}, where)
        if any(r.name == name for r in rules):
            raise RuleError(f"{where}.name: used twice")
        route = _require(spec, "route", str, where)
        if route not in routes:
            raise RuleError(f"{where}.route: no route {route!r} (routes: {', '.join(sorted(routes))})")
        priority = spec.get("priority", 100)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise RuleError(f"{where}.priority: an integer (got {priority!r})")
        rules.append(Rule(name, priority, compile_condition(spec.get("when"), f"{where}.when"), route))
    admission = document.get("admission") or {}
    if not isinstance(admission, dict):
        raise RuleError("routing.admission: a mapping of per_caller_rate, per_caller_burst")
    _keys(admission, {"per_caller_rate", "per_caller_burst"}, "routing.admission")
    rate = _number(admission, "per_caller_rate", "routing.admission", 0.0)
    per_caller = Admission(rate, _number(admission, "per_caller_burst", "routing.admission", rate))
    canonical = json.dumps(document, sort_keys=True, default=str)
    version = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return RoutingConfig(version, RuleSet(rules, default_route), routes, pipelines, per_caller, document)


def parse_yaml(text: str) -> RoutingConfig:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleError(f"routing: not valid YAML ({str(error)[:200]})") from None
    return parse(document)


# The ads example (shared/REFERENCE.md): search -> ctr_ensemble, conversion -> cvr_ensemble,
# anything else -> quality_ensemble; 10% of search users (by experiment bucket) on the stacked
# CTR model; EU mobile search on the stacked model too; tablets on display pages scored for
# clicks; the ads pipeline with a real fallback between the two CTR ensembles.
DEFAULT: dict[str, Any] = yaml.safe_load("""
default_route: quality
rules:
  - {name: search-stacking-experiment, priority: 10, route: search_stacking,
     when: {all: [{field: data_type, op: eq, value: search}, {field: experiment_bucket, op: lt, value: 10}]}}
  - {name: eu-mobile-search, priority: 15, route: search_stacking,
     when: {all: [{field: data_type, op: eq, value: search}, {field: context.region, op: eq, value: EU},
                  {field: context.device_type, op: eq, value: mobile}]}}
  - {name: search, priority: 20, route: search, when: {field: data_type, op: eq, value: search}}
  - {name: conversion, priority: 30, route: conversion, when: {field: data_type, op: eq, value: conversion}}
  - {name: tablet-display, priority: 40, route: search,
     when: {all: [{field: data_type, op: eq, value: display}, {field: context.device_type, op: eq, value: tablet},
                  {field: context.page_type, op: in, value: [content, social]}]}}
routes:
  search: {ensemble: ctr_ensemble, fallback: ctr_stacking}
  search_stacking: {ensemble: ctr_stacking, fallback: ctr_ensemble}
  conversion: {ensemble: cvr_ensemble}
  quality: {ensemble: quality_ensemble}
pipelines:
  ads:
    - {name: feature_extraction, on_error: retry, timeout_share: 0.5}
    - {name: model_inference, depends_on: [feature_extraction], on_error: fallback}
    - {name: post_processing, depends_on: [model_inference], kind: soft,
       when: {field: model_inference.confidence_mean, op: gt, value: 0.5}}
""")
