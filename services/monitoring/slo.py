"""Service-level objectives and their error-budget burn-rate alerts (the Google SRE workbook's
multiwindow, multi-burn-rate alerts). No gRPC here.

An objective says which share of requests must be good: available (status OK) or fast (no
slower than a threshold). The burn rate over a window is the bad share divided by the budget
(1 - target): 1.0 spends the budget exactly over the SLO period. A pair fires when the burn rate
exceeds its factor over both its long and its short window (the short one makes the alert stop
soon after the problem does). Windows are scaled by `scale` so tests can run them in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.monitoring.windows import TelemetryWindows, WindowView

# (burn-rate factor, long window s, short window s): page at 14.4x and 6x, ticket at 1x.
BURN_PAIRS = ((14.4, 3600.0, 300.0), (6.0, 6 * 3600.0, 1800.0), (1.0, 3 * 86400.0, 6 * 3600.0))


@dataclass(frozen=True)
class Objective:
    name: str
    kind: Literal["availability", "latency"]
    target: float
    """Share of requests that must be good, e.g. 0.999."""
    threshold_ms: float = 0.0
    """latency: a request slower than this is bad (the windows count them at ingestion)."""

    def bad(self, view: WindowView) -> int:
        return view.errors if self.kind == "availability" else view.slow

    def burn_rate(self, view: WindowView) -> float:
        if not view.requests:
            return 0.0
        return (self.bad(view) / view.requests) / (1.0 - self.target)


@dataclass(frozen=True)
class BurnWindow:
    factor: float
    long_s: float
    short_s: float
    long_burn: float
    short_burn: float

    @property
    def firing(self) -> bool:
        return self.long_burn > self.factor and self.short_burn > self.factor


@dataclass(frozen=True)
class ObjectiveStatus:
    objective: Objective
    budget_remaining: float
    """Share of the error budget left over the longest window (negative: overspent)."""
    windows: tuple[BurnWindow, ...]

    @property
    def firing(self) -> tuple[BurnWindow, ...]:
        return tuple(w for w in self.windows if w.firing)


def evaluate(windows: TelemetryWindows, objective: Objective, scale: float = 1.0, model_name: str = "",
             model_version: str = "", now: float | None = None) -> ObjectiveStatus:
    def burn(seconds: float) -> float:
        return objective.burn_rate(windows.view(seconds * scale, model_name, model_version, now))

    pairs = tuple(BurnWindow(factor, long_s * scale, short_s * scale, burn(long_s), burn(short_s)) for factor, long_s, short_s in BURN_PAIRS)
    longest = max(long_s for _, long_s, _ in BURN_PAIRS)
    return ObjectiveStatus(objective, 1.0 - burn(longest), pairs)
