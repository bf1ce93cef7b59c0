"""Routing rules: every operator, missing fields, priorities, the default route, explanations."""

from __future__ import annotations

import pytest

from domain.request import Context
from services.router.routing_config import DEFAULT, parse
from services.router.rules import RequestView, RuleError, compile_condition, experiment_bucket

VIEW = RequestView(Context("search", "u42", 30, "f", "EU", "mobile", 14, 2, "social"), ("gaming", "food"))
EMPTY = RequestView(Context("display"))  # every optional field absent


@pytest.mark.parametrize(
    "spec,expected",
    [
        ({"field": "data_type", "op": "eq", "value": "search"}, True),
        ({"field": "data_type", "op": "ne", "value": "search"}, False),
        ({"field": "context.region", "op": "in", "value": ["US", "EU"]}, True),
        ({"field": "context.user.location", "op": "not_in", "value": ["US", "EU"]}, False),
        ({"field": "context.hour", "op": "gt", "value": 14}, False),
        ({"field": "context.hour", "op": "gte", "value": 14}, True),
        ({"field": "context.user.age", "op": "lt", "value": 30}, False),
        ({"field": "context.user.age", "op": "lte", "value": 30}, True),
        ({"field": "context.page_type", "op": "regex", "value": "^soc"}, True),
        ({"field": "context.device_type", "op": "exists", "value": True}, True),
        ({"field": "candidates.category", "op": "eq", "value": "food"}, True),  # any candidate
        ({"field": "candidates.category", "op": "in", "value": ["travel", "finance"]}, False),
        ({"field": "candidates.category", "op": "ne", "value": "travel"}, True),  # no candidate is travel
        ({"field": "experiment_bucket", "op": "eq", "value": experiment_bucket("u42")}, True),
        ({"all": [{"field": "data_type", "op": "eq", "value": "search"}, {"field": "context.hour", "op": "lt", "value": 9}]}, False),
        ({"any": [{"field": "data_type", "op": "eq", "value": "display"}, {"field": "context.hour", "op": "lt", "value": 20}]}, True),
        ({"not": {"field": "data_type", "op": "eq", "value": "display"}}, True),
    ],
)
def test_every_operator(spec, expected):
    assert compile_condition(spec, "when").matches(VIEW) is expected


@pytest.mark.parametrize(
    "spec",
    [
        {"field": "context.hour", "op": "lt", "value": 12},
        {"field": "context.hour", "op": "ne", "value": 12},  # missing is never "not equal" either
        {"field": "context.user.age", "op": "gte", "value": 0},
        {"field": "context.region", "op": "not_in", "value": ["US"]},
        {"field": "context.page_type", "op": "regex", "value": ".*"},
        {"field": "experiment_bucket", "op": "lt", "value": 100},  # no user id: no bucket
        {"field": "candidates.category", "op": "ne", "value": "x"},
        {"field": "context.device_type", "op": "exists", "value": True},
    ],
)
def test_a_missing_field_compares_false_and_never_crashes(spec):
    assert compile_condition(spec, "when").matches(EMPTY) is False


def test_exists_false_matches_a_missing_field_and_type_mismatches_are_false():
    assert compile_condition({"field": "context.hour", "op": "exists", "value": False}, "w").matches(EMPTY)
    assert not compile_condition({"field": "context.hour", "op": "eq", "value": "14"}, "w").matches(VIEW)


def test_buckets_are_stable_and_spread():
    assert experiment_bucket("u42") == experiment_bucket("u42") and experiment_bucket("") is None
    buckets = [experiment_bucket(f"u{i}") for i in range(10_000)]
    assert min(buckets) == 0 and max(buckets) == 99
    assert abs(sum(b < 10 for b in buckets) / 10_000 - 0.10) < 0.015


ROUTES = {"a": {"ensemble": "ctr_ensemble"}, "b": {"ensemble": "cvr_ensemble"}, "c": {"ensemble": "quality_ensemble"}}


def test_priorities_order_the_rules_and_the_default_route_catches_the_rest():
    config = parse({
        "default_route": "c",
        "routes": ROUTES,
        "rules": [
            {"name": "late", "priority": 50, "route": "b", "when": {"field": "data_type", "op": "eq", "value": "search"}},
            {"name": "early", "priority": 5, "route": "a", "when": {"field": "context.region", "op": "eq", "value": "EU"}},
            {"name": "tie-first", "priority": 50, "route": "c", "when": {"field": "data_type", "op": "eq", "value": "search"}},
        ],
    })
    assert [r.name for r in config.rules.rules] == ["early", "late", "tie-first"]
    assert config.rules.rule_for(VIEW) == ("a", "early")
    assert config.rules.rule_for(RequestView(Context("search", location="US"))) == ("b", "late")
    assert config.rules.rule_for(EMPTY) == ("c", "")


def test_explain_names_the_match_and_why_each_earlier_rule_failed():
    config = parse(DEFAULT)
    view = RequestView(Context("conversion", "u1", location="US", device_type="desktop"))
    match = config.rules.explain(view)
    assert (match.route, match.rule) == ("conversion", "conversion")
    assert [(e.rule, e.matched, e.failed) for e in match.evaluations] == [
        ("search-stacking-experiment", False, "data_type eq 'search'"),
        ("eu-mobile-search", False, "data_type eq 'search'"),
        ("search", False, "data_type eq 'search'"),
        ("conversion", True, ""),
    ]


def test_the_shipped_example_routes_the_ads_traffic():
    rules = parse(DEFAULT).rules
    users = [f"u{i}" for i in range(2000)]
    search = [rules.match(RequestView(Context("search", u, location="US", device_type="desktop"))) for u in users]
    assert set(search) == {"search", "search_stacking"}
    assert abs(search.count("search_stacking") / len(search) - 0.10) < 0.03  # the experiment's share
    assert rules.match(RequestView(Context("search", "u1", location="EU", device_type="mobile"))) == "search_stacking"
    assert rules.match(RequestView(Context("conversion", "u1"))) == "conversion"
    assert rules.match(RequestView(Context("display", "u1", device_type="mobile"))) == "quality"
    assert rules.match(RequestView(Context("display", "u1", device_type="tablet", page_type="content"))) == "search"
    assert rules.match(RequestView(Context("display"))) == "quality"  # nothing known: never a crash


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["rules"][0]["when"]["all"][0].update(op="like"), "rules[0] (search-stacking-experiment).when.all[0].op: unknown operator 'like'"),
        (lambda d: d["rules"][2]["when"].update(op="like"), "rules[2] (search).when.op: unknown operator 'like'"),
        (lambda d: d["rules"][2]["when"].update(field="context.weather"), "rules[2] (search).when.field: unknown field 'context.weather'"),
        (lambda d: d["rules"][2].update(route="nowhere"), "rules[2] (search).route: no route 'nowhere'"),
        (lambda d: d["rules"][3]["when"].update(op="in", value="conversion"), "rules[3] (conversion).when.value: in needs a non-empty list"),
        (lambda d: d["rules"][3]["when"].update(op="gt", value="3"), "rules[3] (conversion).when.value: gt needs a number"),
        (lambda d: d["rules"][3]["when"].update(op="regex", value="("), "rules[3] (conversion).when.value: not a valid regular expression"),
        (lambda d: d["rules"].append(dict(d["rules"][0])), "rules[5] (search-stacking-experiment).name: used twice"),
        (lambda d: d.update(default_route="gone"), "routing.default_route: no route 'gone'"),
        (lambda d: d["routes"]["search"].update(split=[{"arm": "a", "version": "1", "weight": 0.5}]), "routes.search.split: weights must sum to 1"),
        (lambda d: d["routes"]["search"].update(shadow={"ensemble": "x", "percent": 150}), "routes.search.shadow.percent: must be a number [0, 100]"),
        (lambda d: d["routes"]["search"].update(colour="red"), "routes.search: unknown key 'colour'"),
        (lambda d: d["pipelines"]["ads"][1].update(on_error="pray"), "pipelines.ads[1].on_error: one of fail, skip, retry, fallback"),
        (lambda d: d["pipelines"]["ads"][2].update(depends_on=[]), "pipelines.ads: stage post_processing needs depends_on: [model_inference]"),
    ],
)
def test_a_bad_rule_set_is_refused_naming_the_rule_and_field(mutate, message):
    import copy

    document = copy.deepcopy(DEFAULT)
    mutate(document)
    with pytest.raises(RuleError) as raised:
        parse(document)
    assert message in str(raised.value)


def test_versions_follow_content():
    import copy

    same = parse(copy.deepcopy(DEFAULT))
    assert same.version == parse(DEFAULT).version and len(same.version) == 12
    changed = copy.deepcopy(DEFAULT)
    changed["rules"][0]["when"]["all"][1]["value"] = 20
    assert parse(changed).version != same.version
