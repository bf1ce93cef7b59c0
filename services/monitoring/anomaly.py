"""Anomalies on metric streams (shared/REFERENCE.md "Monitoring"). No gRPC here.

- z-score: a point more than `threshold` (3) standard deviations above the mean of the previous
  `window` (100) points, judged once at least `min_points` (10) are there;
- EWMA: the same test against an exponentially weighted mean and variance (reacts to level
  changes faster than a 100-point window, forgets them faster too);
- quality degradation: the mean of the last 5 values below 0.9 x the mean before them.

Severity comes from an anomaly score in [0, 1]: > 0.9 critical, > 0.7 high, > 0.5 medium, else
low; a high business impact raises medium and low to high. The score is |z| / 7, capped at 1,
so 3 sigma (the threshold) is low, 3.5 sigma medium, 5 sigma high (the reference's "high
severity above 5 sigma") and 6.3 sigma critical.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

Z_PER_UNIT_SCORE = 7.0


def severity(score: float, business_impact_high: bool = False) -> str:
    if score > 0.9:
        return "critical"
    if score > 0.7:
        return "high"
    if business_impact_high:
        return "high"
    return "medium" if score > 0.5 else "low"


@dataclass(frozen=True)
class Anomaly:
    value: float
    expected: float
    z: float

    @property
    def score(self) -> float:
        return min(1.0, abs(self.z) / Z_PER_UNIT_SCORE)

    def severity(self, business_impact_high: bool = False) -> str:
        return severity(self.score, business_impact_high)


class ZScoreDetector:
    def __init__(self, window: int = 100, min_points: int = 10, threshold: float = 3.0) -> None:
        self.points: deque[float] = deque(maxlen=window)
        self.min_points = min_points
        self.threshold = threshold

    def observe(self, value: float) -> Anomaly | None:
        """Judge `value` against the points before it, then keep it."""
        found = None
        if len(self.points) >= self.min_points:
            mean = sum(self.points) / len(self.points)
            sd = math.sqrt(sum((p - mean) ** 2 for p in self.points) / len(self.points))
            if sd > 0 and (value - mean) / sd > self.threshold:
                found = Anomaly(value, mean, (value - mean) / sd)
        self.points.append(value)
        return found


class EwmaDetector:
    """Exponentially weighted mean and variance (West's incremental form)."""

    def __init__(self, alpha: float = 0.1, min_points: int = 10, threshold: float = 3.0) -> None:
        self.alpha = alpha
        self.min_points = min_points
        self.threshold = threshold
        self.mean = 0.0
        self.variance = 0.0
        self.count = 0

    def observe(self, value: float) -> Anomaly | None:
        found = None
        if self.count >= self.min_points and self.variance > 0:
            z = (value - self.mean) / math.sqrt(self.variance)
            if z > self.threshold:
                found = Anomaly(value, self.mean, z)
        if self.count == 0:
            self.mean = value
        else:
            delta = value - self.mean
            self.mean += self.alpha * delta
            self.variance = (1 - self.alpha) * (self.variance + self.alpha * delta * delta)
        self.count += 1
        return found


def quality_degraded(values: list[float], recent: int = 5, ratio: float = 0.9) -> bool:
    """The mean of the last `recent` values is below `ratio` x the mean of those before them."""
    if len(values) <= recent:
        return False
    earlier, last = values[:-recent], values[-recent:]
    return sum(last) / recent < ratio * (sum(earlier) / len(earlier))
