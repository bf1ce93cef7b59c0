"""The promotion gate: which checks a candidate must pass, the stages it leaves, and rollback."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import yaml

from domain.errors import FailedPrecondition, NotFound
from domain.models.baseline import make_baseline, write_baseline
from domain.models.stages import stage_history, stages, write_stage
from services.recovery.promotion import PromotionGate, PromotionPolicy


def version(repo, number, auc=0.75, log_loss=0.55, ece=0.01, quality=True, stage=None):
    folder = repo / "ctr" / str(number)
    folder.mkdir(parents=True)
    config = {"name": "ctr", "version": number, "metrics": {"ensemble": {"auc": auc, "log_loss": log_loss, "calibration_error": ece}},
              "training": {"data_quality": {"passed": quality, "problems": [] if quality else ["label click: imbalance"]}}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    rng = np.random.default_rng(number)
    write_baseline(folder, make_baseline(rng.normal(size=(100, 4)).astype(np.float32), rng.random(100).astype(np.float32)))
    if stage:
        write_stage(folder, stage, "trained")
    return folder


def gate(repo, p99s):
    probed = []

    async def probe(model, version, rows):
        probed.append((model, version, rows.shape))
        return p99s[version]

    return PromotionGate(repo, PromotionPolicy(max_p99_ms=50.0), probe), probed


def test_a_candidate_that_fails_any_check_is_refused_with_every_reason(tmp_path):
    repo = tmp_path / "repo"
    version(repo, 1)  # production from before stages
    version(repo, 2, auc=0.70, ece=0.08, quality=False, stage="staging")
    promotion, probed = gate(repo, {"2": 80.0})
    outcome = asyncio.run(promotion.promote("ctr", "2", "try"))
    assert outcome.startswith("refused: ")
    for reason in ("calibration_error 0.0800 beyond the limit 0.05", "its training data did not pass the data-quality gate",
                   "AUC 0.7000 below production v1's 0.7500 by more than 0.01", "probe p99 80.0 ms beyond the limit 50 ms"):
        assert reason in outcome
    assert probed == [("ctr", "2", (64, 4))]  # its own baseline rows
    assert stages(repo / "ctr") == {"1": "production", "2": "staging"}  # nothing changed


def test_a_passing_candidate_becomes_production_and_a_rollback_restores_the_previous_one(tmp_path):
    repo = tmp_path / "repo"
    version(repo, 1)
    version(repo, 2, auc=0.752, log_loss=0.552, stage="staging")  # within the margin of v1
    promotion, _ = gate(repo, {"2": 12.0})
    dry = asyncio.run(promotion.promote("ctr", "2", "better", dry_run=True))
    assert dry.startswith("dry run: would promote ctr v2 over v1") and stages(repo / "ctr")["2"] == "staging"
    done = asyncio.run(promotion.promote("ctr", "2", "better"))
    assert done.startswith("succeeded: ctr v2 is production (was v1;") and "probe p99 12.0 ms" in done
    assert stages(repo / "ctr") == {"1": "archived", "2": "production"}
    assert "promoted: better" in stage_history(repo / "ctr" / "2")[-1].reason
    with pytest.raises(FailedPrecondition, match="production already"):
        asyncio.run(promotion.promote("ctr", "2", "again"))
    back = asyncio.run(promotion.rollback("ctr", "regression in the field"))
    assert back == "succeeded: ctr v1 is production again (v2 archived)"
    assert stages(repo / "ctr") == {"1": "production", "2": "archived"}
    with pytest.raises(NotFound, match="no version 9"):
        asyncio.run(promotion.promote("ctr", "9", ""))


def test_a_rollback_needs_an_earlier_production_version(tmp_path):
    repo = tmp_path / "repo"
    version(repo, 1, stage="production")
    promotion, _ = gate(repo, {})
    with pytest.raises(FailedPrecondition, match="no earlier production version"):
        asyncio.run(promotion.rollback("ctr", ""))
