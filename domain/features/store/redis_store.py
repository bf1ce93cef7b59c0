"""Redis backend: a hash per entity (`scoremesh:<kind>:<id>`), read with one pipelined round
trip per request. Socket timeouts keep a slow Redis from holding a request."""

from __future__ import annotations

from collections.abc import Iterable

import redis

from domain.features.store.base import Entity, OnlineStore, check_kind

PREFIX = "scoremesh"


class RedisStore(OnlineStore):
    def __init__(self, url: str, timeout_s: float = 0.05) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    @staticmethod
    def key(kind: str, entity_id: str) -> str:
        return f"{PREFIX}:{kind}:{entity_id}"

    def get_many(self, kind: str, ids: list[str]) -> dict[str, Entity]:
        check_kind(kind)
        unique = list(dict.fromkeys(ids))
        pipe = self.client.pipeline(transaction=False)
        for entity_id in unique:
            pipe.hgetall(self.key(kind, entity_id))
        found = {}
        for entity_id, values in zip(unique, pipe.execute()):
            if values:
                found[entity_id] = {k.decode(): float(v) for k, v in values.items()}
        return found

    def put_many(self, kind: str, rows: Iterable[tuple[str, Entity]]) -> int:
        check_kind(kind)
        pipe = self.client.pipeline(transaction=False)
        count = 0
        for entity_id, values in rows:
            key = self.key(kind, entity_id)
            pipe.delete(key)
            if values:
                pipe.hset(key, mapping={k: repr(float(v)) for k, v in values.items()})
            count += 1
            if count % 1000 == 0:
                pipe.execute()
        pipe.execute()
        return count

    def close(self) -> None:
        self.client.close()
