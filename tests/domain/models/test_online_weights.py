"""Online ensemble weighting: the learners' guarantees on data where the answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.models.online_weights import AdditiveRule, LearnerSettings, OnlineWeights, log_loss_of


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5))
def test_exponential_weights_with_eta_1_is_bayes_and_within_ln_m_of_the_best_member(seed, members):
    rng = np.random.default_rng(seed)
    n = 300
    p = rng.uniform(0.01, 0.99, size=(n, members))
    y = (rng.random(n) < rng.uniform(0.05, 0.95, n)).astype(float)
    learner = OnlineWeights(np.ones(members), LearnerSettings("exponential", 1.0, share=0.0, eps=1e-3, floor=0.0))
    total = 0.0
    for i in range(n):
        total += float(log_loss_of(learner.predict(p[i:i + 1]), y[i:i + 1])[0])
        learner.update(p[i:i + 1], y[i:i + 1])
    best = log_loss_of(p, y[:, None]).sum(axis=0).min()
    assert total <= best + math.log(members) + 1e-9


def test_after_a_member_degrades_weight_moves_to_the_other_and_never_below_the_floor():
    rng = np.random.default_rng(3)
    n = 4000
    truth = rng.uniform(0.05, 0.6, n)
    y = (rng.random(n) < truth).astype(float)
    good = np.clip(truth + rng.normal(0, 0.02, n), 0.01, 0.99)
    degraded = np.where(np.arange(n) < n // 2, good, np.clip(1 - truth, 0.01, 0.99))  # member 1 breaks halfway
    p = np.column_stack([good, degraded])
    learner = OnlineWeights(np.array([1.0, 1.0]))
    learner.update(p[: n // 2], y[: n // 2])
    assert learner.weights == pytest.approx([1.0, 1.0], abs=0.2)  # both as good: both kept
    after = 0.0
    for i in range(n // 2, n, 50):  # predicted before it learns: progressive validation
        after += log_loss_of(learner.predict(p[i:i + 50]), y[i:i + 50]).sum()
        learner.update(p[i:i + 50], y[i:i + 50])
    static = log_loss_of(p[n // 2:].mean(axis=1), y[n // 2:]).sum()
    assert after < 0.85 * static  # it stopped trusting the broken member early
    s = learner.settings
    assert learner.weights[0] > 1.7 and learner.w[1] >= s.share * s.floor / 2 - 1e-12  # bounded away from zero
    assert learner.weights.sum() == pytest.approx(2.0)  # on the trained weights' scale


def test_a_member_training_all_but_dropped_can_earn_weight_back():
    learner = OnlineWeights(np.array([0.0, 2.0]))
    assert learner.predict(np.array([[0.9, 0.1]]))[0] == pytest.approx(0.1)  # the trained ensemble until outcomes arrive
    p = np.tile([[0.8, 0.2]], (2000, 1))
    learner.update(p, np.ones(2000))  # member 0 is right every time
    assert learner.weights[0] > 1.0


def test_the_seeds_rule_multiplies_by_1_1_or_0_9_per_period_within_its_clamp():
    rule = AdditiveRule(np.array([1.0, 1.0, 1.95]), period=50)
    p = np.tile([[0.9, 0.1, 0.8]], (50, 1))
    rule.update(p[:49], np.ones(49))
    assert rule.weights.tolist() == [1.0, 1.0, 1.95]  # no full period yet
    rule.update(p[49:], np.ones(1))
    assert rule.weights == pytest.approx([1.1, 0.9, 2.0])  # 1.95 x 1.1 clamped at 2.0


@pytest.mark.parametrize("bad", [dict(method="bandit"), dict(learning_rate=0.0), dict(share=1.0), dict(eps=0.5), dict(floor=1.5)])
def test_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValueError):
        LearnerSettings(**bad)


@pytest.mark.parametrize("trained", [[], [1.0, -1.0], [0.0, 0.0], [1.0, float("nan")]])
def test_trained_weights_must_be_usable(trained):
    with pytest.raises(ValueError):
        OnlineWeights(np.array(trained))
