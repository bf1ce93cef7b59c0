"""`scoremesh train` produces real, loadable models that learn the ground truth."""

from __future__ import annotations

import yaml

from services.inference.engine import InferenceEngine
from services.inference.training import ENSEMBLES, TrainOptions, train


def test_training_writes_loadable_versions_close_to_the_ground_truth(tmp_path):
    written = train(tmp_path, TrainOptions(rows=6000, max_epochs=4), ensembles=ENSEMBLES[:1], progress=lambda _: None)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["ctr_ensemble/1"]
    config = yaml.safe_load((written[0] / "config.yaml").read_text())
    metrics = config["metrics"]
    assert config["ensemble"] == {"method": "weighted_average", "weights": [1.0, 1.2], "vote_threshold": 0.5}
    # Better than chance, and no better than the best achievable (the ground-truth model).
    assert 0.6 < metrics["ensemble"]["auc"] <= metrics["ground_truth"]["auc"] + 0.02
    assert metrics["ensemble"]["log_loss"] < 0.69
    engine = InferenceEngine(tmp_path)
    engine.load()
    assert engine.models["ctr_ensemble"].packed.member_names == ("ctr_v1", "ctr_v2")
    # A second run writes version 2 beside version 1.
    again = train(tmp_path, TrainOptions(rows=3000, max_epochs=1), ensembles=ENSEMBLES[:1], progress=lambda _: None)
    assert again[0].name == "2" and written[0].is_dir()
