"""Where routing configurations come from and how they change: files on one machine, Consul KV
(against the Consul HTTP API double) in a cluster; bad ones refused whole; admin with a token."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import consul
import pytest
import yaml

from domain.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from services.router.admin import RoutingAdmin
from services.router.routing_config import DEFAULT, parse
from services.router.routing_state import CONSUL_KEY, RoutingSource, RoutingState
from services.router.rules import RuleError
from tests.mesh.consul_double import ConsulDouble

SMALL = {"default_route": "only", "routes": {"only": {"ensemble": "ctr_ensemble"}}}


def test_the_state_file_beats_scoremesh_yaml_which_beats_the_builtin_example(tmp_path):
    source = RoutingSource(tmp_path / "scoremesh.yaml", tmp_path / "state" / "routing.yaml")
    assert source.initial() == (DEFAULT, "default")
    (tmp_path / "scoremesh.yaml").write_text(yaml.safe_dump({"router": {"routing": SMALL}}))
    assert source.initial() == (SMALL, f"file {tmp_path / 'scoremesh.yaml'}")
    where = source.store({**SMALL, "default_route": "only"})
    assert where == f"state {tmp_path / 'state' / 'routing.yaml'}" and source.initial()[1] == where


def test_a_changed_file_reloads_and_a_bad_one_is_refused_while_the_running_one_stays(tmp_path):
    config_file = tmp_path / "scoremesh.yaml"
    source = RoutingSource(config_file, tmp_path / "routing.yaml")
    state = RoutingState(parse(DEFAULT), "default")
    seen = []

    def reload(document, origin):
        try:
            seen.append(state.apply(document, origin).version)
        except RuleError as error:
            seen.append(f"refused: {error}")

    async def scenario():
        watcher = asyncio.create_task(source.watch(reload, poll_s=0.05))
        await asyncio.sleep(0.1)
        config_file.write_text(yaml.safe_dump({"router": {"routing": SMALL}}))
        await asyncio.sleep(0.2)
        bad = copy.deepcopy(SMALL)
        bad["routes"]["only"]["split"] = [{"arm": "x", "weight": 0.7}]
        config_file.write_text(yaml.safe_dump({"router": {"routing": bad}}))
        await asyncio.sleep(0.2)
        watcher.cancel()

    asyncio.run(scenario())
    assert seen[0] == parse(SMALL).version
    assert seen[1].startswith("refused: routes.only.split: weights must sum to 1")
    assert state.config.version == parse(SMALL).version  # the running one stayed


def test_consul_kv_is_read_written_and_watched():
    double = ConsulDouble().start()
    try:
        client = consul.Consul(host="127.0.0.1", port=double.port)
        source = RoutingSource(Path("/nonexistent/scoremesh.yaml"), Path("/nonexistent/routing.yaml"), client, watch_wait="1s")
        assert source.initial() == (DEFAULT, "default")  # nothing in KV yet
        assert source.store(SMALL) == f"consul {CONSUL_KEY}"
        assert source.initial() == (SMALL, f"consul {CONSUL_KEY}")
        changes = []

        async def scenario():
            watcher = asyncio.create_task(source.watch(lambda document, origin: changes.append((document, origin))))
            await asyncio.sleep(0.3)
            changed = copy.deepcopy(SMALL)
            changed["routes"]["other"] = {"ensemble": "cvr_ensemble"}
            await asyncio.to_thread(client.kv.put, CONSUL_KEY, yaml.safe_dump(changed))
            for _ in range(50):
                if changes:
                    break
                await asyncio.sleep(0.05)
            watcher.cancel()
            return changed

        changed = asyncio.run(scenario())
        assert changes == [(changed, f"consul {CONSUL_KEY}")]
    finally:
        double.stop()


def test_admin_needs_the_token_validates_whole_and_can_dry_run(tmp_path):
    source = RoutingSource(tmp_path / "scoremesh.yaml", tmp_path / "routing.yaml")
    state = RoutingState(parse(DEFAULT), "default")
    admin = RoutingAdmin(state, source, "s3cret")
    text = yaml.safe_dump(SMALL)
    with pytest.raises(Unauthenticated):
        admin.apply(text, False, "")
    with pytest.raises(PermissionDenied):
        admin.apply(text, False, "Bearer wrong")
    with pytest.raises(InvalidArgument, match=r"yaml: routing.default_route: no route 'nowhere'"):
        admin.apply(yaml.safe_dump({**SMALL, "default_route": "nowhere"}), False, "Bearer s3cret")
    dry = admin.apply(text, True, "Bearer s3cret")
    assert not dry.applied and state.config.version == parse(DEFAULT).version and not (tmp_path / "routing.yaml").exists()
    applied = admin.apply(text, False, "Bearer s3cret")
    assert applied.applied and state.config.version == parse(SMALL).version
    assert yaml.safe_load((tmp_path / "routing.yaml").read_text()) == SMALL  # every router follows the file
    with pytest.raises(FailedPrecondition, match="routing changes are locked"):
        RoutingAdmin(state, source, None).apply(text, False, "Bearer anything")
