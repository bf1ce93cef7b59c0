"""Drift statistics: exact PSI on known bins, a shifted feature named, stationary traffic quiet
window after window (an hour of one-minute windows), and too few samples never judged."""

import numpy as np
import pytest
from scipy import stats

from services.monitoring.drift import detect, psi, psi_threshold, stratified

FEATURES = [f"f{j}" for j in range(40)]


def test_psi_by_hand():
    reference = np.arange(100, dtype=float)  # deciles: 10 values per bin
    edges = np.quantile(reference, np.linspace(0, 1, 11))
    assert psi(reference, reference, edges) == pytest.approx(0.0)
    live = np.concatenate([np.zeros(50), np.full(50, 99.0)])  # half in the first bin, half in the last
    expected = 2 * (0.5 - 0.1) * np.log(0.5 / 0.1) + 8 * (1e-6 - 0.1) * np.log(1e-6 / 0.1)
    assert psi(reference, live, edges) == pytest.approx(expected)


def test_the_psi_threshold_grows_for_small_windows():
    assert psi_threshold(100, 2000) == pytest.approx((1 / 100 + 1 / 2000) * stats.chi2.ppf(0.999, 9))
    assert psi_threshold(100, 2000) > 0.25 and psi_threshold(5000, 2000) == 0.2


def test_a_shifted_feature_is_named_and_only_it():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(2000, 40))
    live = rng.normal(size=(500, 40))
    live[:, 7] += 0.8  # one feature changes meaning
    report = detect(reference, live, FEATURES)
    assert [f.name for f in report.drifted] == ["f7"]
    f7 = report.drifted[0]
    assert f7.psi > 0.2 and f7.ks_p_value < 1e-6


def test_an_hour_of_stationary_traffic_raises_nothing():
    rng = np.random.default_rng(2)
    reference = np.column_stack([rng.normal(size=2000), rng.exponential(size=2000), rng.integers(0, 5, 2000), *rng.normal(size=(37, 2000))])
    alarms = 0
    for minute in range(60):
        n = 100 if minute % 2 else 600  # small and large windows alike
        live = np.column_stack([rng.normal(size=n), rng.exponential(size=n), rng.integers(0, 5, n), *rng.normal(size=(37, n))])
        alarms += len(detect(reference, live, FEATURES).drifted)
    assert alarms == 0


def test_too_few_samples_are_not_judged():
    rng = np.random.default_rng(3)
    report = detect(rng.normal(size=(2000, 3)), rng.normal(size=(99, 3)) + 5, FEATURES[:3])
    assert not report.judged and report.drifted == ()


def test_the_baseline_is_matched_to_the_live_mix_of_the_routing_key():
    rng = np.random.default_rng(4)
    kinds = rng.integers(0, 3, 3000)  # a model trained on three data types alike
    one_hot = np.eye(3)[kinds]
    value = rng.normal(size=3000) + kinds  # a feature whose level depends on the data type
    reference = np.column_stack([one_hot, value])
    scores = value / 10
    names = ["data_type=search", "data_type=display", "data_type=conversion", "x"]
    live_kinds = rng.choice([0, 1], 600, p=[0.8, 0.2])  # the route sends mostly search, some display
    live = np.column_stack([np.eye(3)[live_kinds], rng.normal(size=600) + live_kinds])
    assert {f.name for f in detect(reference, live, names).drifted} >= {"data_type=search", "data_type=conversion", "x"}
    matched, matched_scores = stratified(reference, scores, live, [0, 1, 2])
    assert detect(matched, live, names).drifted == ()  # the same traffic, compared like with like
    shares = matched[:, :3].mean(axis=0)
    assert shares[0] == pytest.approx(0.8, abs=0.02) and shares[2] == 0.0 and len(matched_scores) == len(matched)
    novel = np.column_stack([np.eye(3)[np.full(200, 2)], rng.normal(size=200) + 2])  # a data type that appears ...
    live_with_new = np.vstack([live[:, :], novel])
    only_search = stratified(reference[kinds == 0], scores[kinds == 0], live_with_new, [0, 1, 2])[0]  # ... that training never saw
    assert {f.name for f in detect(only_search, live_with_new, names).drifted} >= {"data_type=conversion"}
