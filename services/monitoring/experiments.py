"""Experiment analysis: the arms of a route's traffic split (A/B or canary) compared on their joined
outcomes. No gRPC here.

Per arm: outcomes, the positive rate (CTR, CVR) with its Wilson 95% interval, log loss with a
normal interval of its mean, and AUC with the Hanley-McNeil interval. Each arm against the
baseline arm (the one with the most outcomes, as canary analysis compares with production):
Welch's t-test on the per-outcome log losses (scipy), which is what a model change moves, and a
two-proportion test on the positive rate, which a model change moves only where scores decide
what is shown. The verdict — better, worse or inconclusive — is the log-loss test's at 5%.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import stats

from domain.models.online_weights import log_loss_of
from domain.models.quality import auc
from services.monitoring.feedback import Joined

Z95 = 1.959963984540054
ALPHA = 0.05
MIN_OUTCOMES = 30
"""Fewer outcomes in an arm than this: no verdict for it (the tests' normal approximations fail)."""


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ArmResult:
    arm: str
    models: tuple[str, ...]
    """model:version pairs that answered this arm."""
    outcomes: int
    positives: int
    positive_rate: Interval
    log_loss: Interval
    auc: Interval
    log_loss_p_value: float = float("nan")
    """Welch's t-test against the baseline arm's log losses (NaN for the baseline itself)."""
    positive_rate_p_value: float = float("nan")
    verdict: str = "baseline"
    """baseline, better, worse or inconclusive."""


def wilson(positives: int, n: int) -> Interval:
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    p = positives / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return Interval(p, centre - half, centre + half)


def mean_interval(values: np.ndarray) -> Interval:
    if len(values) < 2:
        value = float(values.mean()) if len(values) else float("nan")
        return Interval(value, float("nan"), float("nan"))
    mean, half = float(values.mean()), Z95 * float(values.std(ddof=1)) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half)


def auc_interval(labels: np.ndarray, scores: np.ndarray) -> Interval:
    """AUC with Hanley & McNeil's (1982) standard error."""
    value = auc(labels, scores)
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if math.isnan(value):
        return Interval(value, float("nan"), float("nan"))
    q1, q2 = value / (2 - value), 2 * value**2 / (1 + value)
    se = math.sqrt((value * (1 - value) + (positives - 1) * (q1 - value**2) + (negatives - 1) * (q2 - value**2)) / (positives * negatives))
    return Interval(value, max(0.0, value - Z95 * se), min(1.0, value + Z95 * se))


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(k1 / n1 - k2 / n2) / se))


def analyse(joins: list[Joined]) -> list[ArmResult]:
    """Every arm of the joins given (one route's), the baseline first."""
    by_arm: dict[str, list[Joined]] = defaultdict(list)
    for j in joins:
        by_arm[j.arm].append(j)
    if not by_arm:
        return []
    baseline_arm = max(by_arm, key=lambda a: (len(by_arm[a]), a == "main"))
    columns = {}
    for arm, rows in by_arm.items():
        y = np.fromiter((j.positive for j in rows), float, len(rows))
        p = np.fromiter((j.score for j in rows), float, len(rows))
        columns[arm] = (y, p, log_loss_of(np.clip(p, 1e-7, 1 - 1e-7), y))
    by, _, base_losses = columns[baseline_arm]
    results = []
    for arm in [baseline_arm, *sorted(a for a in by_arm if a != baseline_arm)]:
        y, p, losses = columns[arm]
        models = tuple(sorted({f"{j.model}:{j.version}" for j in by_arm[arm]}))
        result = ArmResult(arm, models, len(y), int(y.sum()), wilson(int(y.sum()), len(y)), mean_interval(losses), auc_interval(y, p))
        if arm != baseline_arm:
            if min(len(y), len(by)) < MIN_OUTCOMES:
                verdict, loss_p, rate_p = "inconclusive", float("nan"), float("nan")
            else:
                loss_p = float(stats.ttest_ind(losses, base_losses, equal_var=False).pvalue)
                rate_p = two_proportion_p(int(y.sum()), len(y), int(by.sum()), len(by))
                verdict = "inconclusive" if not loss_p < ALPHA else ("better" if losses.mean() < base_losses.mean() else "worse")
            result = ArmResult(**{**result.__dict__, "log_loss_p_value": loss_p, "positive_rate_p_value": rate_p, "verdict": verdict})
        results.append(result)
    return results
