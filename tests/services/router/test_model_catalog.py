"""The router's model catalog: versions and feature schemas from ModelMetadata, per replica."""

from __future__ import annotations

import asyncio

import pytest

from domain.errors import MeshError, UpstreamError
from services.router.model_catalog import ModelCatalog, ModelDescription

SCHEMAS = {"1": "ads/1", "2": "ads/2", "3": "ads/2"}


def fleet(served: dict[str, tuple[str, ...]], calls: list | None = None, failing: frozenset[str] = frozenset()):
    """A catalog over replicas that serve the given versions of model `m`."""

    async def replicas():
        return list(served)

    async def describe(address, model, version):
        if calls is not None:
            calls.append((address, version))
        await asyncio.sleep(0)
        if address in failing:
            raise UpstreamError("inference", "UNAVAILABLE", "connection refused")
        versions = served[address]
        if not versions:
            raise UpstreamError("inference", "NOT_FOUND", f"model {model!r} is not served here")
        described = version or max(versions, key=int)
        return ModelDescription(versions, described, SCHEMAS[described])

    return ModelCatalog(replicas, describe, max_age_s=60)


def choose(catalog, model="m"):
    return asyncio.run(catalog.choose(model))


def test_the_newest_version_every_replica_serves_goes_to_all_of_them():
    choice = choose(fleet({"a:1": ("1", "2"), "b:1": ("1", "2")}))
    assert (choice.version, choice.feature_schema, choice.schema_version, choice.addresses) == ("2", "ads/2", "2", {"a:1", "b:1"})


def test_while_a_version_rolls_out_the_one_all_replicas_serve_is_used():
    calls = []
    choice = choose(fleet({"a:1": ("2", "3"), "b:1": ("1", "2")}, calls))
    assert (choice.version, choice.feature_schema, choice.addresses) == ("2", "ads/2", {"a:1", "b:1"})
    # a:1 described v3 (its newest), b:1 described v2: no extra call was needed for v2's schema.
    assert sorted(calls) == [("a:1", ""), ("b:1", "")]


def test_replicas_without_a_common_version_get_the_newest_only_where_it_is_served():
    calls = []
    choice = choose(fleet({"a:1": ("3",), "b:1": ("1",)}, calls))
    assert (choice.version, choice.feature_schema, choice.addresses) == ("3", "ads/2", {"a:1"})


def test_the_schema_of_a_version_no_replica_described_is_asked_for_once():
    calls = []
    choice = choose(fleet({"a:1": ("1", "3"), "b:1": ("1", "2")}, calls))
    assert (choice.version, choice.feature_schema) == ("1", "ads/1")
    assert ("a:1", "1") in calls or ("b:1", "1") in calls


def test_unreachable_and_non_serving_replicas_are_left_out():
    choice = choose(fleet({"a:1": ("1",), "b:1": (), "c:1": ("1", "2")}, failing=frozenset({"c:1"})))
    assert (choice.version, choice.addresses) == ("1", {"a:1"})


def test_a_model_no_replica_serves_keeps_the_replicas_answer():
    with pytest.raises(UpstreamError) as raised:
        choose(fleet({"a:1": (), "b:1": ()}))
    assert raised.value.status == "NOT_FOUND"
    with pytest.raises(MeshError) as none:
        choose(fleet({}))
    assert none.value.status == "UNAVAILABLE"


def test_concurrent_first_requests_share_one_look():
    calls = []
    catalog = fleet({"a:1": ("1",)}, calls)

    async def many():
        return await asyncio.gather(*(catalog.choose("m") for _ in range(10)))

    choices = asyncio.run(many())
    assert len(set(choices)) == 1 and calls == [("a:1", "")]


def test_invalidate_forces_a_fresh_look():
    calls = []
    served = {"a:1": ("1",)}
    catalog = fleet(served, calls)

    async def scenario():
        first = await catalog.choose("m")
        served["a:1"] = ("1", "2")
        cached = await catalog.choose("m")
        catalog.invalidate("m")
        return first, cached, await catalog.choose("m")

    first, cached, fresh = asyncio.run(scenario())
    assert (first.version, cached.version, fresh.version) == ("1", "1", "2")


def test_a_request_waiting_on_a_look_gets_its_answer_even_when_another_invalidates_meanwhile():
    catalog = fleet({"a:1": ("1", "2")})

    async def scenario():
        waiting = asyncio.create_task(catalog.choose("m"))
        await asyncio.sleep(0)  # the look has started; `waiting` waits for it
        look = next(t for t in asyncio.all_tasks() if t.get_name() == "catalog-m")
        # Between the look's end and the waiter's turn, a request that met a rolled-back version invalidates.
        look.add_done_callback(lambda _: catalog.invalidate("m"))
        return await waiting

    assert asyncio.run(scenario()).version == "2"  # was a KeyError (INTERNAL to the caller)


def test_a_look_begun_before_an_invalidate_answers_no_request_made_after_it():
    """A request that met a version gone from a replica (a rollback under way) must not be given
    the view read before that replica dropped it."""
    served = {"a:1": ("1", "2"), "b:1": ("1", "2")}

    async def replicas():
        return list(served)

    async def describe(address, model, version):
        versions = served[address]  # read now, answered a moment later
        await asyncio.sleep(0.01)
        return ModelDescription(versions, max(versions), SCHEMAS[max(versions)])

    catalog = ModelCatalog(replicas, describe, max_age_s=60)

    async def scenario():
        before = asyncio.create_task(catalog.choose("m"))
        await asyncio.sleep(0.001)  # the look has asked the replicas
        served["a:1"] = ("1",)  # meanwhile v2 is held back on a:1, and a request met it gone there
        catalog.invalidate("m")
        after = await catalog.choose("m")
        return await before, after, await catalog.choose("m")

    before, after, later = asyncio.run(scenario())
    assert before.addresses == {"a:1", "b:1"}  # what it was given by the look it waited on
    assert (after.version, after.addresses) == ("1", {"a:1", "b:1"}) and later == after  # the stale look never became the view


def test_requests_that_invalidate_by_the_hundred_start_one_look_at_a_time():
    """During an outage every failing request invalidates: one look in flight, one waiting."""
    calls = []
    catalog = fleet({"a:1": ("1",), "b:1": ("1",)}, calls)

    async def scenario():
        await catalog.choose("m")
        calls.clear()

        async def failing_request():
            catalog.invalidate("m")
            return await catalog.choose("m")

        return await asyncio.gather(*(failing_request() for _ in range(100)))

    choices = asyncio.run(scenario())
    assert {c.version for c in choices} == {"1"}
    assert len(calls) <= 2 * 2  # at most two looks over the two replicas, not one per request


def test_unpinned_traffic_goes_to_the_newest_production_version_and_a_staging_one_only_when_asked_for():
    stages = {"1": "archived", "2": "production", "3": "staging"}

    async def replicas():
        return ["a:1"]

    async def describe(address, model, version):
        return ModelDescription(("2", "3"), version or "3", SCHEMAS[version or "3"], tuple(stages.items()))

    async def scenario():
        catalog = ModelCatalog(replicas, describe, max_age_s=0.0)
        unpinned = await catalog.choose("m")
        pinned = await catalog.choose("m", "3")  # a canary arm naming the staging version
        stages["3"], stages["2"] = "production", "archived"  # promoted
        await catalog.choose("m")  # the stale view answers while the refresh runs
        await asyncio.sleep(0.01)
        return unpinned.version, pinned.version, (await catalog.choose("m")).version

    assert asyncio.run(scenario()) == ("2", "3", "3")
