"""The routing configuration in effect, and where it comes from (no gRPC here).

`RoutingState` holds one validated `RoutingConfig`; a new one replaces it in a single
assignment, so a request routed under one version never sees another (scoring takes one
snapshot per request). A document that does not validate is refused whole and the running
configuration stays.

`RoutingSource` says where documents live:
- locally: `<state_dir>/routing.yaml` (what admin RPCs apply, shared by every router instance and
  worker of the machine) when it exists, else the `routing:` of the router's section in
  scoremesh.yaml, else the built-in ads example; both files are watched (mtime) and a change
  reloads without a restart;
- with Consul: the KV key `scoremesh/routing` (YAML) when it exists, watched with blocking
  queries; admin RPCs write it, so every router of the cluster follows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Counter, Gauge

from services.router.routing_config import DEFAULT, RoutingConfig, parse
from services.router.rules import RuleError

log = logging.getLogger(__name__)

RELOADS = Counter("scoremesh_router_config_reloads_total", "Routing configuration changes seen, by outcome.", ["outcome"])
VERSION = Gauge("scoremesh_router_config_info", "The routing configuration in effect (value 1), by version.", ["version"],
                multiprocess_mode="livemax")
CONSUL_KEY = "scoremesh/routing"


class RoutingState:
    def __init__(self, config: RoutingConfig, source: str) -> None:
        self.config = config
        self.source = source
        VERSION.labels(config.version).set(1)

    def current(self) -> RoutingConfig:
        return self.config

    def apply(self, document: Any, source: str) -> RoutingConfig:
        """Validate `document` whole and put it in effect; RuleError (and nothing changes) when
        it does not validate."""
        try:
            config = parse(document)
        except RuleError:
            RELOADS.labels("refused").inc()
            raise
        if config.version != self.config.version:
            VERSION.labels(self.config.version).set(0)
            VERSION.labels(config.version).set(1)
            log.info("routing configuration %s from %s in effect (was %s)", config.version, source, self.config.version)
        self.config, self.source = config, source
        RELOADS.labels("applied").inc()
        return config


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


class RoutingSource:
    def __init__(self, config_file: Path, state_file: Path, consul: Any = None, watch_wait: str = "5s") -> None:
        self.config_file = config_file
        self.state_file = state_file
        self.consul = consul  # a py-consul client when Consul is the discovery backend
        self.watch_wait = watch_wait  # longest a blocking query waits for a change
        self._seen: tuple = ()
        self._stop = threading.Event()

    def _file_document(self) -> tuple[Any, str]:
        applied = _read_yaml(self.state_file)
        if applied is not None:
            return applied, f"state {self.state_file}"
        section = (_read_yaml(self.config_file) or {}).get("router") or {}
        if isinstance(section, dict) and section.get("routing") is not None:
            return section["routing"], f"file {self.config_file}"
        return DEFAULT, "default"

    def _kv(self, index: str | None = None, wait: str | None = None) -> tuple[str | None, Any]:
        index, entry = self.consul.kv.get(CONSUL_KEY, index=index, wait=wait)
        if entry is None or entry.get("Value") is None:
            return index, None
        return index, yaml.safe_load(entry["Value"].decode())

    def initial(self) -> tuple[Any, str]:
        if self.consul is not None:
            _, document = self._kv()
            if document is not None:
                return document, f"consul {CONSUL_KEY}"
        return self._file_document()

    def store(self, document: Any) -> str:
        """Make `document` the one every router follows; returns where it went."""
        text = yaml.safe_dump(document, sort_keys=False)
        if self.consul is not None:
            self.consul.kv.put(CONSUL_KEY, text)
            return f"consul {CONSUL_KEY}"
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".routing-")
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, self.state_file)  # atomic: readers see the old file or the new one
        self._seen = self._stamps()  # applied here already: the watcher looks for the next change
        return f"state {self.state_file}"

    async def watch(self, on_change: Callable[[Any, str], None], poll_s: float = 1.0) -> None:
        """Call `on_change(document, source)` whenever the source changes."""
        if self.consul is not None:
            await self._watch_consul(on_change)
            return
        self._seen = self._stamps()
        while True:
            await asyncio.sleep(poll_s)
            stamps = self._stamps()
            if stamps != self._seen:
                self._seen = stamps
                try:
                    document, source = await asyncio.to_thread(self._file_document)
                except (OSError, yaml.YAMLError) as error:
                    log.error("routing configuration unreadable, the running one stays: %s", error)
                    RELOADS.labels("refused").inc()
                    continue
                on_change(document, source)

    def _stamps(self) -> tuple:
        def stamp(path: Path):
            try:
                info = path.stat()
                return info.st_mtime_ns, info.st_size
            except OSError:
                return None

        return stamp(self.state_file), stamp(self.config_file)

    async def _watch_consul(self, on_change: Callable[[Any, str], None]) -> None:
        index = None
        while True:
            try:
                new_index, document = await asyncio.to_thread(self._kv, index, self.watch_wait if index else None)
            except Exception as error:  # agent restarting, network blip: keep the running config
                log.warning("consul watch of %s failed: %s; retrying", CONSUL_KEY, error)
                await asyncio.sleep(1.0)
                continue
            if new_index != index and index is not None and document is not None:
                on_change(document, f"consul {CONSUL_KEY}")
            index = new_index
