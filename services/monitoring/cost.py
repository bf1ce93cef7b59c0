"""What scoring costs: CPU-seconds of every instance between two readings, priced per CPU-hour,
per 1,000 Scores of each model, and the month it projects against a budget. No gRPC here.

Attribution: the router's and features' CPU is shared by the models in proportion to their
Scores; inference's in proportion to the candidates they scored (its work grows with rows).
An instance whose counter went down was restarted: its new total is its use since.
"""

from __future__ import annotations

from dataclasses import dataclass

SECONDS_PER_MONTH = 30 * 86400.0
ROW_SERVICES = ("inference",)


@dataclass(frozen=True)
class CostView:
    interval_s: float
    cpu_seconds: dict[str, float]
    """Per service, over the interval."""
    cost: float
    """Of the interval, in the price's currency."""
    cost_per_1000_scores: dict[str, float]
    """Per model."""
    projected_monthly: float
    budget_used: float | None
    """Projected month / budget; None without a budget."""


class CostTracker:
    def __init__(self, cpu_price_per_hour: float, monthly_budget: float = 0.0, interval_s: float = 0.0) -> None:
        self.cpu_price_per_hour = cpu_price_per_hour
        self.monthly_budget = monthly_budget
        self.interval_s = interval_s
        self.view: CostView | None = None
        """The newest view; it stands until the next reading."""
        self._last: tuple[float, dict[tuple[str, str], float]] | None = None

    def due(self, now: float) -> bool:
        """Is a new reading due (`interval_s` since the last one)?"""
        return self._last is None or now - self._last[0] >= self.interval_s

    def update(self, now: float, cpu_totals: dict[tuple[str, str], float], scores: dict[str, int],
               candidates: dict[str, int]) -> CostView | None:
        """cpu_totals: (service, instance) -> process CPU-seconds so far; scores and candidates:
        per model, over the interval since the last update. None on the first reading."""
        last = self._last
        self._last = (now, dict(cpu_totals))
        if last is None or now <= last[0]:
            return None
        interval = now - last[0]
        used: dict[str, float] = {}
        for key, total in cpu_totals.items():
            before = last[1].get(key)
            if before is None:
                continue  # a new instance counts from its next reading
            used[key[0]] = used.get(key[0], 0.0) + (total - before if total >= before else total)
        price = self.cpu_price_per_hour / 3600.0
        cost = sum(used.values()) * price
        total_scores, total_rows = sum(scores.values()), sum(candidates.values())
        per_model = {}
        for model, n in scores.items():
            if not n:
                continue
            share_scores = n / total_scores
            share_rows = candidates.get(model, 0) / total_rows if total_rows else share_scores
            model_cost = sum(seconds * price * (share_rows if service in ROW_SERVICES else share_scores) for service, seconds in used.items())
            per_model[model] = model_cost / n * 1000.0
        projected = cost / interval * SECONDS_PER_MONTH
        budget_used = projected / self.monthly_budget if self.monthly_budget > 0 else None
        self.view = CostView(interval, used, cost, per_model, projected, budget_used)
        return self.view
