"""Online weighting in monitoring: learned from joins of switched-on models only, written as
versioned weights when enough outcomes moved them, rolled back as a new version, persisted."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from domain.errors import FailedPrecondition, NotFound
from domain.models.ensemble_weights import history
from domain.models.online_weights import LearnerSettings
from services.monitoring.feedback import Joined
from services.monitoring.learning import OnlineLearning, SwitchStore


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def model_dir(repo, name="ctr", version="1", method="weighted_average"):
    folder = repo / name / version
    folder.mkdir(parents=True)
    config = {"name": name, "version": int(version), "ensemble": {"method": method, "weights": [1.0, 1.0]},
              "members": [{"name": "a", "hidden": 0}, {"name": "b", "hidden": 8}]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def joins(n, model="ctr", seed=0):
    """Member a forecasts the truth, member b its opposite."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.05, 0.5, n)
    y = rng.random(n) < truth
    return [Joined(f"r{i}", "ad", "click", bool(y[i]), 1000.0, model, "1", "search", "main", 999.0, 0.5,
                   ("b", "a"), (float(1 - truth[i]), float(truth[i]))) for i in range(n)]


def test_learned_weights_are_written_when_due_and_rolled_back_as_a_new_version(tmp_path):
    repo, clock = tmp_path / "repo", Clock()
    folder = model_dir(repo)
    learning = OnlineLearning(repo, SwitchStore(tmp_path / "s.sqlite"), LearnerSettings(), interval_s=60, min_outcomes=300, clock=clock)
    assert learning.feed(joins(500)) == 0  # off by default
    learning.set_enabled("ctr", True, "trying it")
    assert learning.feed(joins(200)) == 200
    clock.now += 61
    assert learning.publish_due() == []  # fewer than min_outcomes
    learning.feed(joins(200, seed=1))
    (written,) = learning.publish_due()
    model, version, weights = written
    assert (model, version, weights.number, weights.source) == ("ctr", "1", 1, "online_learner")
    assert weights.weights["a"] > 1.5 > 0.5 > weights.weights["b"] and sum(weights.weights.values()) == pytest.approx(2.0)
    assert "400 outcomes since weights #0: progressive log loss" in weights.reason
    learned, trained = (float(x) for x in weights.reason.split("loss ")[1].replace(" trained", "").split(" learned vs "))
    assert learned < trained  # the evidence: it did better than the trained weights on the same outcomes
    learning.feed(joins(400, seed=2))
    assert learning.publish_due() == []  # not due again until interval_s passed
    enabled, versions = learning.status("ctr")
    assert enabled and versions[0][1].number == 1 and versions[0][2] == 400

    learning.rollback("ctr", "a bad week")
    assert [(v.number, v.source, v.weights) for v in history(folder, ("a", "b"))][-1] == (2, "rollback", {"a": 1.0, "b": 1.0})
    assert not learning.enabled("ctr") and learning.feed(joins(10)) == 0
    restarted = OnlineLearning(repo, SwitchStore(tmp_path / "s.sqlite"), enabled_by_default=("ctr",))
    assert not restarted.enabled("ctr")  # the switch persists and overrides the configured default


def test_only_weighted_combinations_learn_and_unknown_models_are_named(tmp_path):
    repo = tmp_path / "repo"
    model_dir(repo, "stack", method="stacking")
    learning = OnlineLearning(repo, SwitchStore(tmp_path / "s.sqlite"))
    with pytest.raises(FailedPrecondition, match="stack combines its members by stacking"):
        learning.set_enabled("stack", True, "")
    with pytest.raises(NotFound, match="model_name: no model 'ghost'"):
        learning.set_enabled("ghost", True, "")
