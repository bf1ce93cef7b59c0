"""Routing rules: which route a request takes, and why (no gRPC here).

A rule has a name, a priority (lower first; ties keep their order in the file), a condition and
the route it picks. Conditions test dotted request fields:

    data_type, context.user.{user_id, age, gender, location, device_type},
    context.{hour, day_of_week, page_type}, context.region (= context.user.location),
    context.device_type (= context.user.device_type), candidates.category (true when any
    candidate's category satisfies the test), experiment_bucket (stable hash of the user id
    mod 100: the same user always falls in the same bucket)

with operators eq, ne, in, not_in, gt, gte, lt, lte, regex, exists, combined with
`{all: [...]}`, `{any: [...]}` and `{not: ...}`. A missing field (an absent age or hour, an
empty string) makes every test false except `exists: false`: it never crashes and never
matches by accident. Everything is checked and compiled once when a rule set is loaded; a bad
rule set is refused whole with an error naming the rule and the field.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.request import Context

OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "regex", "exists")
BUCKETS = 100


class RuleError(ValueError):
    """A rule set that cannot apply; the message names the rule and the field."""


@dataclass(frozen=True)
class RequestView:
    """What conditions see of a request."""

    context: Context
    categories: tuple[str, ...] = ()
    outputs: dict[str, Any] | None = None
    """What earlier pipeline stages produced ("model_inference.confidence_mean", ...)."""

    @property
    def experiment_bucket(self) -> int | None:
        return experiment_bucket(self.context.user_id)


def experiment_bucket(user_id: str, salt: str = "", buckets: int = BUCKETS) -> int | None:
    """Stable bucket of a user (crc32, the same on every router and across restarts)."""
    if not user_id:
        return None
    return zlib.crc32(f"{salt}|{user_id}".encode()) % buckets


def _context_field(name: str) -> Callable[[RequestView], Any]:
    return lambda view: getattr(view.context, name)


FIELDS: dict[str, Callable[[RequestView], Any]] = {
    "data_type": _context_field("data_type"),
    "context.user.user_id": _context_field("user_id"),
    "context.user.age": _context_field("age"),
    "context.user.gender": _context_field("gender"),
    "context.user.location": _context_field("location"),
    "context.user.device_type": _context_field("device_type"),
    "context.region": _context_field("location"),
    "context.device_type": _context_field("device_type"),
    "context.hour": _context_field("hour"),
    "context.day_of_week": _context_field("day_of_week"),
    "context.page_type": _context_field("page_type"),
    "experiment_bucket": lambda view: view.experiment_bucket,
}
ANY_CANDIDATE_FIELDS = {"candidates.category"}
NUMERIC_OPERATORS = ("gt", "gte", "lt", "lte")


def _missing(value: Any) -> bool:
    return value is None or value == ""


@dataclass(frozen=True)
class Test:
    """One compiled `{field, op, value}`."""

    field: str
    op: str
    value: Any
    check: Callable[[Any], bool]

    def describe(self) -> str:
        return f"{self.field} {self.op} {self.value!r}"


class Condition:
    """A compiled condition; `failing(view)` names the test that made it false (or None)."""

    def __init__(self, kind: str, tests: tuple[Test, ...] = (), children: tuple["Condition", ...] = ()) -> None:
        self.kind, self.tests, self.children = kind, tests, children

    def failing(self, view: RequestView) -> str | None:
        if self.kind == "test":
            (test,) = self.tests
            return None if _evaluate(test, view) else test.describe()
        if self.kind == "all":
            for child in self.children:
                reason = child.failing(view)
                if reason is not None:
                    return reason
            return None
        if self.kind == "any":
            reasons = [child.failing(view) for child in self.children]
            return None if any(r is None for r in reasons) else "none of: " + "; ".join(r for r in reasons if r)
        if self.kind == "not":
            (child,) = self.children
            return "not: it holds" if child.failing(view) is None else None
        return None  # "always"

    def matches(self, view: RequestView) -> bool:
        """The hot path: a verdict only, no explanation formatted."""
        if self.kind == "test":
            return _evaluate(self.tests[0], view)
        if self.kind == "all":
            return all(child.matches(view) for child in self.children)
        if self.kind == "any":
            return any(child.matches(view) for child in self.children)
        if self.kind == "not":
            return not self.children[0].matches(view)
        return True


def _evaluate(test: Test, view: RequestView) -> bool:
    if test.field in ANY_CANDIDATE_FIELDS:
        if test.op == "exists":
            return bool(any(not _missing(c) for c in view.categories)) == test.value
        if test.op in ("ne", "not_in"):  # true when no candidate has that value (and some have one)
            present = [c for c in view.categories if not _missing(c)]
            return bool(present) and all(test.check(c) for c in present)
        return any(not _missing(c) and test.check(c) for c in view.categories)
    getter = FIELDS.get(test.field)
    value = getter(view) if getter is not None else (view.outputs or {}).get(test.field)
    if test.op == "exists":
        return (not _missing(value)) == test.value
    if _missing(value):
        return False
    try:
        return test.check(value)
    except TypeError:  # e.g. a number compared with a string: false, never a crash
        return False


def _compile_test(spec: dict, where: str, fields: set[str] | None) -> Test:
    unknown = set(spec) - {"field", "op", "operator", "value"}
    if unknown:
        raise RuleError(f"{where}: unknown key {sorted(unknown)[0]!r} (a test has field, op, value)")
    field = spec.get("field")
    op = spec.get("op", spec.get("operator"))
    allowed = fields if fields is not None else set(FIELDS) | ANY_CANDIDATE_FIELDS
    if field not in allowed:
        raise RuleError(f"{where}.field: unknown field {field!r} (fields: {', '.join(sorted(allowed))})")
    if op not in OPERATORS:
        raise RuleError(f"{where}.op: unknown operator {op!r} (operators: {', '.join(OPERATORS)})")
    if "value" not in spec:
        raise RuleError(f"{where}.value: required")
    value = spec["value"]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError(f"{where}.value: {op} needs a non-empty list (got {value!r})")
        choices = frozenset(value)
        check = (lambda v: v in choices) if op == "in" else (lambda v: v not in choices)
    elif op in NUMERIC_OPERATORS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RuleError(f"{where}.value: {op} needs a number (got {value!r})")
        check = {"gt": lambda v: v > value, "gte": lambda v: v >= value, "lt": lambda v: v < value, "lte": lambda v: v <= value}[op]
    elif op == "regex":
        if not isinstance(value, str):
            raise RuleError(f"{where}.value: regex needs a string (got {value!r})")
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise RuleError(f"{where}.value: not a valid regular expression ({error})") from None
        check = lambda v: isinstance(v, str) and pattern.search(v) is not None  # noqa: E731
    elif op == "exists":
        if not isinstance(value, bool):
            raise RuleError(f"{where}.value: exists needs true or false (got {value!r})")
        check = lambda v: True  # noqa: E731 - decided in _evaluate
    else:
        check = (lambda v: v == value) if op == "eq" else (lambda v: v != value)
    return Test(field, op, value, check)


def compile_condition(spec: Any, where: str, fields: set[str] | None = None) -> Condition:
    """`fields`: the field names allowed (default: the request's)."""
    if spec is None:
        return Condition("always")
    if not isinstance(spec, dict):
        raise RuleError(f"{where}: a condition is a mapping (got {spec!r})")
    for combinator in ("all", "any"):
        if combinator in spec:
            if len(spec) != 1 or not isinstance(spec[combinator], list) or not spec[combinator]:
                raise RuleError(f"{where}.{combinator}: a non-empty list of conditions, alone in its mapping")
            return Condition(combinator, children=tuple(compile_condition(c, f"{where}.{combinator}[{i}]", fields) for i, c in enumerate(spec[combinator])))
    if "not" in spec:
        if len(spec) != 1:
            raise RuleError(f"{where}.not: alone in its mapping")
        return Condition("not", children=(compile_condition(spec["not"], f"{where}.not", fields),))
    return Condition("test", tests=(_compile_test(spec, where, fields),))


@dataclass(frozen=True)
class Rule:
    name: str
    priority: int
    condition: Condition
    route: str


@dataclass(frozen=True)
class Evaluation:
    rule: str
    matched: bool
    failed: str = ""
    """For a rule that did not match: the test that failed."""


@dataclass(frozen=True)
class Match:
    route: str
    rule: str
    """The rule that matched, or "" when the default route applies."""
    evaluations: tuple[Evaluation, ...]


class RuleSet:
    def __init__(self, rules: list[Rule], default_route: str) -> None:
        self.rules = sorted(rules, key=lambda r: r.priority)  # stable: equal priorities keep file order
        self.default_route = default_route

    def match(self, view: RequestView) -> str:
        """The route of a request (the hot path: no explanation built)."""
        for rule in self.rules:
            if rule.condition.matches(view):
                return rule.route
        return self.default_route

    def rule_for(self, view: RequestView) -> tuple[str, str]:
        """(route, rule name or "")."""
        for rule in self.rules:
            if rule.condition.matches(view):
                return rule.route, rule.name
        return self.default_route, ""

    def explain(self, view: RequestView) -> Match:
        evaluations = []
        for rule in self.rules:
            failed = rule.condition.failing(view)
            evaluations.append(Evaluation(rule.name, failed is None, failed or ""))
            if failed is None:
                return Match(rule.route, rule.name, tuple(evaluations))
        return Match(self.default_route, "", tuple(evaluations))
