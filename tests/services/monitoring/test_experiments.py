"""Experiment analysis: intervals against known values, and verdicts that follow the evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from services.monitoring.experiments import analyse, auc_interval, two_proportion_p, wilson
from services.monitoring.feedback import Joined


def joins(arm: str, n: int, noise: float, seed: int, model: str = "ctr:1") -> list[Joined]:
    """Outcomes drawn from a known truth; the arm's model forecasts it with `noise` on the logit."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-1.0, 1.0, n)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    forecast = 1 / (1 + np.exp(-(logit + rng.normal(0, noise, n))))
    name, version = model.split(":")
    return [Joined(f"{arm}{i}", "ad", "click", bool(y[i]), 0.0, name, version, "search", arm, 0.0, float(forecast[i]), (), ())
            for i in range(n)]


def test_intervals_match_their_textbook_values():
    interval = wilson(10, 100)  # Wilson's 95% interval for 10/100
    assert (interval.value, round(interval.low, 4), round(interval.high, 4)) == (0.1, 0.0552, 0.1744)
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    a = auc_interval(labels, scores)
    assert a.value == 0.75 and a.low < 0.75 < a.high
    z = (0.12 - 0.10) / math.sqrt(0.11 * 0.89 * (2 / 5000))
    assert two_proportion_p(600, 5000, 500, 5000) == pytest.approx(2 * stats.norm.sf(z))


def test_a_worse_canary_is_called_worse_a_better_one_better_and_a_small_one_inconclusive():
    results = analyse(joins("main", 4000, 1.0, 1) + joins("canary", 1500, 3.0, 2, "ctr:2") + joins("better", 1500, 0.0, 3)
                      + joins("tiny", 10, 3.0, 4))
    by_arm = {r.arm: r for r in results}
    assert results[0].arm == "main" and results[0].verdict == "baseline" and math.isnan(results[0].log_loss_p_value)
    assert by_arm["canary"].verdict == "worse" and by_arm["canary"].log_loss_p_value < 1e-6 and by_arm["canary"].models == ("ctr:2",)
    assert by_arm["canary"].log_loss.low > results[0].log_loss.high  # its interval clear of the baseline's
    assert by_arm["better"].verdict == "better"
    assert by_arm["tiny"].verdict == "inconclusive" and by_arm["tiny"].outcomes == 10


def test_the_same_model_on_both_arms_is_inconclusive():
    results = analyse(joins("main", 2000, 0.5, 5) + joins("b", 2000, 0.5, 6))
    assert results[1].verdict == "inconclusive" and results[1].log_loss_p_value > 0.05
