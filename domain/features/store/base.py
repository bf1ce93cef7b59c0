"""The interface every online store backend implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable

KINDS = ("ad", "user")

Entity = dict[str, float]


class OnlineStore(abc.ABC):
    """Blocking methods; the features service calls them from a thread with a deadline."""

    @abc.abstractmethod
    def get_many(self, kind: str, ids: list[str]) -> dict[str, Entity]:
        """The stored features of each id that exists (ids not stored are absent)."""

    @abc.abstractmethod
    def put_many(self, kind: str, rows: Iterable[tuple[str, Entity]]) -> int:
        """Insert or replace; returns how many were written."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
