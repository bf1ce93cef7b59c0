"""Feedback joined to Scores: every way an outcome can end, bounded memory, joins that survive a
restart, and quality computed from them exactly."""

from __future__ import annotations

import numpy as np
import pytest

from services.monitoring.feedback import FeedbackJoiner, JoinStore, Outcome, Scored, ScoredRequests
from services.monitoring.quality import QualityWindows

NOW = 1_000_000.0


def scored(model="ctr", version="1", arm="stable", at=NOW, ads=("a1", "a2", "a3"), scores=(0.2, 0.6, 0.9)) -> Scored:
    members = np.column_stack([np.asarray(scores) - 0.1, np.asarray(scores) + 0.1])
    return Scored(model, version, "search", arm, at, tuple(ads), np.asarray(scores), ("m1", "m2"), members)


def labels(model, version):
    return {"ctr": "click", "cvr": "conversion"}.get(model, "")


def test_outcomes_are_joined_or_counted_late_unknown_duplicate_or_of_another_label(tmp_path):
    requests = ScoredRequests(join_window_s=60.0, capacity=10)
    requests.add("r1", scored(), now=NOW)
    requests.add("r2", scored(model="cvr", at=NOW), now=NOW)
    requests.add("old", scored(at=NOW - 100), now=NOW - 100)  # added in its time; its window has passed by NOW
    joiner = FeedbackJoiner(requests, JoinStore(tmp_path / "feedback.sqlite"), labels)
    joined, counts = joiner.join([
        Outcome("r1", "a2", "click", True, NOW + 5),
        Outcome("r1", "a1", "click", False, 0.0),  # no time: when it arrives
        Outcome("r1", "a2", "click", True, NOW + 6),  # the same again
        Outcome("r1", "zz", "click", True, NOW),  # an ad the Score did not have
        Outcome("nobody", "a1", "click", True, NOW),
        Outcome("old", "a1", "click", True, NOW),
        Outcome("r2", "a1", "click", True, NOW),  # a click of a conversion model's Score
    ], now=NOW + 10)
    assert dict(counts) == {"joined": 2, "duplicate": 1, "unknown": 2, "late": 1, "other_label": 1}
    first, second = joined
    assert (first.model, first.version, first.route, first.arm, first.score, first.positive, first.outcome_at) == (
        "ctr", "1", "search", "stable", 0.6, True, NOW + 5)
    assert first.member_names == ("m1", "m2") and first.member_scores == pytest.approx((0.5, 0.7))
    assert (second.ad_id, second.positive, second.outcome_at, second.score) == ("a1", False, NOW + 10, 0.2)


def test_memory_is_bounded_by_count_and_age_and_evicted_requests_are_late_not_unknown():
    requests = ScoredRequests(join_window_s=60.0, capacity=3)
    for i in range(5):
        requests.add(f"r{i}", scored(at=NOW + i), now=NOW + i)
    assert len(requests) == 3
    assert requests.get("r0", NOW + 5) == (None, True)  # pushed out by newer ones
    assert requests.get("r4", NOW + 5)[0] is not None
    assert requests.get("r4", NOW + 65) == (None, True)  # aged out
    assert len(requests) == 0 and requests.get("never", NOW) == (None, False)


def test_joins_persist_and_quality_is_computed_from_them_exactly(tmp_path):
    requests = ScoredRequests()
    requests.add("r1", scored(scores=(0.1, 0.4, 0.8)), now=NOW)
    requests.add("r2", scored(arm="canary", scores=(0.3, 0.7, 0.5)), now=NOW)
    path = tmp_path / "feedback.sqlite"
    joiner = FeedbackJoiner(requests, JoinStore(path), labels)
    outcomes = [Outcome("r1", "a1", "click", False, NOW), Outcome("r1", "a2", "click", True, NOW), Outcome("r1", "a3", "click", True, NOW),
                Outcome("r2", "a1", "click", False, NOW), Outcome("r2", "a2", "click", False, NOW), Outcome("r2", "a3", "click", True, NOW)]
    joined, _ = joiner.join(outcomes, now=NOW)
    joiner.store.close()
    restored = JoinStore(path).since(NOW - 1)  # a restart reads them back
    assert [(j.request_id, j.ad_id, j.score, j.member_scores) for j in restored] == [
        (j.request_id, j.ad_id, j.score, j.member_scores) for j in joined]
    quality = QualityWindows(clock=lambda: NOW)
    for j in restored:
        quality.add(j)
    stable = quality.view(3600, "ctr", arm="stable")
    assert (stable.labelled, stable.positives, stable.auc) == (3, 2, 1.0)  # both clicks scored above the miss
    labels_, scores_ = np.array([0, 1, 1]), np.array([0.1, 0.4, 0.8])
    assert stable.log_loss == pytest.approx(-np.mean(labels_ * np.log(scores_) + (1 - labels_) * np.log(1 - scores_)))
    assert stable.mean_score == pytest.approx(13 / 30)
    canary = quality.view(3600, "ctr", arm="canary")
    assert canary.auc == 0.5  # the click ranked above one miss and below the other
    both = quality.view(3600, "ctr")
    assert both.labelled == 6 and both.positive_rate == pytest.approx(0.5)
    assert quality.view(3600, "ctr", now=NOW + 3601).labelled == 0  # the window is by outcome time
