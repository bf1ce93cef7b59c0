"""Online model quality from joined outcomes: AUC, log loss and calibration error per model,
version, route and split arm over sliding windows (by outcome time). No gRPC here.

Windows keep the joined (score, outcome) pairs themselves, bounded per key: AUC needs the
ranks of every pair, which no fixed-size sketch gives exactly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from domain.models.quality import auc, calibration_error, log_loss
from services.monitoring.feedback import Joined

QualityKey = tuple[str, str, str, str]
"""(model, version, route, split arm)."""


@dataclass(frozen=True)
class QualityView:
    labelled: int
    positives: int
    positive_rate: float
    mean_score: float
    auc: float
    log_loss: float
    calibration_error: float


EMPTY = QualityView(0, 0, 0.0, 0.0, float("nan"), float("nan"), float("nan"))


def judge(labels: np.ndarray, scores: np.ndarray) -> QualityView:
    if not len(labels):
        return EMPTY
    return QualityView(len(labels), int(labels.sum()), float(labels.mean()), float(scores.mean()), auc(labels, scores),
                       log_loss(labels, scores), calibration_error(labels, scores))


def quality_of(joins: list[Joined]) -> QualityView:
    return judge(np.fromiter((j.positive for j in joins), float, len(joins)), np.fromiter((j.score for j in joins), float, len(joins)))


class QualityWindows:
    """The newest `capacity` joins per key, dropped once older than `retention_s`."""

    def __init__(self, retention_s: float = 86_400.0, capacity: int = 100_000, clock=time.time) -> None:
        self.retention_s, self.capacity, self.clock = retention_s, capacity, clock
        self.joins: dict[QualityKey, deque[Joined]] = {}
        # Joins are added on the event loop and read by the alert rules' thread as well.
        self._lock = threading.Lock()

    def add(self, joined: Joined) -> None:
        with self._lock:
            series = self.joins.setdefault((joined.model, joined.version, joined.route, joined.arm), deque(maxlen=self.capacity))
            series.append(joined)
            horizon = self.clock() - self.retention_s
            while series and series[0].outcome_at < horizon:
                series.popleft()

    def select(self, window_s: float, model: str = "", version: str = "", route: str = "", arm: str = "",
               now: float | None = None) -> list[Joined]:
        """The joins of the last `window_s` seconds matching every filter given ("" matches all)."""
        since = (self.clock() if now is None else now) - window_s
        chosen = []
        with self._lock:
            for (key_model, key_version, key_route, key_arm), series in self.joins.items():
                if (model and key_model != model) or (version and key_version != version) or (route and key_route != route) or (arm and key_arm != arm):
                    continue
                chosen.extend(j for j in series if j.outcome_at >= since)
        return chosen

    def view(self, window_s: float, model: str = "", version: str = "", route: str = "", arm: str = "",
             now: float | None = None) -> QualityView:
        return quality_of(self.select(window_s, model, version, route, arm, now))

    def models(self) -> set[str]:
        with self._lock:
            return {key[0] for key in self.joins}
