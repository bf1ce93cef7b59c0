"""`scoremesh train` produces real, loadable models that learn the ground truth."""

from __future__ import annotations

import re

import pytest
import yaml

from training.quality_gate import QualityThresholds

from domain.models.repository import load_model
from domain.models.baseline import read_baseline
from domain.models.stages import stages
from training.train import ENSEMBLES, DataQualityError, TrainOptions, train


def test_training_writes_loadable_versions_close_to_the_ground_truth(tmp_path):
    models, features = tmp_path / "models", tmp_path / "features"
    written = train(models, features, TrainOptions(rows=6000, max_epochs=4), ensembles=ENSEMBLES[:1], progress=lambda _: None)
    assert [p.relative_to(models).as_posix() for p in written] == ["ctr_ensemble/1"]
    config = yaml.safe_load((written[0] / "config.yaml").read_text())
    metrics = config["metrics"]
    assert config["ensemble"]["method"] == "weighted_average"
    weights = config["ensemble"]["weights"]  # fitted on held-out data, normalised to mean 1
    assert len(weights) == 2 and all(w > 0 for w in weights) and sum(weights) == pytest.approx(2.0, abs=1e-4)
    assert [m["calibration"]["a"] != 1.0 for m in config["members"]] == [True, True]  # Platt-scaled
    assert config["feature_schema"] == {"name": "ads", "version": "1"}
    assert (features / "ads" / "1.yaml").is_file() and (features / "online.sqlite").is_file()
    # Better than chance, and no better than the best achievable (the ground-truth model, and the
    # best any model of these features can do, below it).
    assert 0.6 < metrics["ensemble"]["auc"] <= metrics["observable_optimum"]["auc"] + 0.02
    assert metrics["observable_optimum"]["auc"] <= metrics["ground_truth"]["auc"] + 0.02  # 600 test rows: AUC noise ~0.01
    # A split per job: nothing is judged on the data it was fitted on.
    assert config["training"]["splits"] == {"fit": 0.6, "early_stopping": 0.1, "calibration": 0.1, "combination": 0.1, "test": 0.1}
    assert metrics["ensemble"]["log_loss"] < 0.69
    assert metrics["ensemble"]["calibration_error"] < 0.05
    assert load_model(written[0]).packed.member_names == ("ctr_v1", "ctr_v2")
    # The drift baseline: held-out inputs as the schema transforms them, and the served scores.
    baseline = read_baseline(written[0])
    assert baseline.features.shape == (600, config["input_dim"]) and baseline.scores.shape == (600,)  # the test split
    assert baseline.feature_quantiles.shape == (11, config["input_dim"])
    assert 0.0 < float(baseline.scores.min()) and float(baseline.scores.max()) < 1.0
    # A second run on other data writes model version 2 and schema version 2 beside version 1.
    again = train(models, features, TrainOptions(rows=3000, max_epochs=1), ensembles=ENSEMBLES[:1], progress=lambda _: None)
    assert again[0].name == "2" and written[0].is_dir()
    # The first version serves at once; the next waits in staging until promoted through the gate.
    assert stages(models / "ctr_ensemble") == {"1": "production", "2": "staging"}
    assert config["training"]["data_quality"] == {"passed": True, "problems": []}
    assert yaml.safe_load((again[0] / "config.yaml").read_text())["feature_schema"]["version"] == "2"


def test_training_refuses_data_that_fails_the_quality_gate(tmp_path):
    strict = QualityThresholds(max_missing_rate=0.01)  # the synthetic data leaves 3% of ages missing
    with pytest.raises(DataQualityError) as refused:
        train(tmp_path / "m", tmp_path / "f", TrainOptions(rows=2000, quality=strict), ensembles=ENSEMBLES[:1], progress=lambda _: None)
    assert re.search(r"column age: \d+\.\d% missing \(max 1%\)", str(refused.value))
    assert "refusing to train" in str(refused.value)
    assert not (tmp_path / "m").exists()
    forced = train(tmp_path / "m", tmp_path / "f", TrainOptions(rows=2000, max_epochs=1, quality=strict, force=True), ensembles=ENSEMBLES[:1], progress=lambda _: None)
    assert forced[0].name == "1"


def test_stacking_fits_a_meta_model_over_shared_members(tmp_path):
    ctr, stacked = ENSEMBLES[0], ENSEMBLES[3]
    assert stacked.method == "stacking" and stacked.members == ctr.members
    written = train(tmp_path / "m", tmp_path / "f", TrainOptions(rows=5000, max_epochs=2), ensembles=(ctr, stacked), progress=lambda _: None)
    first, second = (yaml.safe_load((p / "config.yaml").read_text()) for p in written)
    assert len(second["ensemble"]["stacking_weights"]) == 2 and "stacking_bias" in second["ensemble"]
    # The members were trained once and shared: identical weights and calibration.
    assert first["members"] == second["members"]
    assert second["metrics"]["ensemble"]["auc"] > 0.6
