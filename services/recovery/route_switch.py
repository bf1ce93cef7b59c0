"""Switching routes to their fallback ensemble and back (REFERENCE's switch_model): pure edits
of the router's routing document, and the switches in effect kept in SQLite so a restart of
recovery still knows what to switch back. No gRPC here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mesh.sqlite_db import Database


@dataclass(frozen=True)
class Switch:
    route: str
    primary: str
    fallback: str
    since: float


def to_fallback(document: str, model: str) -> tuple[str, list[Switch]]:
    """Every route whose ensemble is `model` and that names a fallback now uses the fallback
    first, and `model` as its fallback (so a request the fallback cannot answer still gets the
    primary). The new document and the switches made."""
    config = yaml.safe_load(document) or {}
    switches = []
    for name, route in (config.get("routes") or {}).items():
        if isinstance(route, dict) and route.get("ensemble") == model and route.get("fallback"):
            switches.append(Switch(name, model, route["fallback"], time.time()))
            route["ensemble"], route["fallback"] = route["fallback"], model
    return yaml.safe_dump(config, sort_keys=False), switches


def back(document: str, switches: list[Switch]) -> tuple[str, list[Switch]]:
    """The switched routes back to their primary, where they still look as the switch left them
    (an operator's later change is never undone). The new document and the routes restored."""
    config = yaml.safe_load(document) or {}
    routes = config.get("routes") or {}
    restored = []
    for switch in switches:
        route = routes.get(switch.route)
        if isinstance(route, dict) and route.get("ensemble") == switch.fallback and route.get("fallback") == switch.primary:
            route["ensemble"], route["fallback"] = switch.primary, switch.fallback
            restored.append(switch)
    return yaml.safe_dump(config, sort_keys=False), restored


class Switches:
    """The switches in effect, by primary model."""

    def __init__(self, path: Path) -> None:
        self._database = Database(
            path,
            "CREATE TABLE IF NOT EXISTS route_switches (route TEXT PRIMARY KEY, primary_model TEXT, fallback TEXT, since REAL)",
        )
        self._db, self._lock = self._database.connection, self._database.lock

    def add(self, switches: list[Switch]) -> None:
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO route_switches VALUES (?, ?, ?, ?)",
                                 [(s.route, s.primary, s.fallback, s.since) for s in switches])

    def of(self, model: str) -> list[Switch]:
        with self._lock:
            rows = self._db.execute("SELECT route, primary_model, fallback, since FROM route_switches WHERE primary_model=?", (model,))
            return [Switch(*row) for row in rows]

    def remove(self, switches: list[Switch]) -> None:
        with self._lock, self._db:
            self._db.executemany("DELETE FROM route_switches WHERE route=?", [(s.route,) for s in switches])

    def close(self) -> None:
        with self._lock:
            self._db.close()
