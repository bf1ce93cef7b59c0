"""Version stages in the repository: defaults, history, and which version a rollback restores."""

from __future__ import annotations

import pytest

from domain.models.stages import previous_production, read_stage, stage_history, stages, write_stage


def versions(tmp_path, *names):
    for name in names:
        (tmp_path / "m" / name).mkdir(parents=True)
    return tmp_path / "m"


def test_a_version_without_a_stage_is_production_and_changes_are_kept_in_order(tmp_path):
    model = versions(tmp_path, "1", "2")
    assert stages(model) == {"1": "production", "2": "production"}  # written before stages existed
    write_stage(model / "2", "staging", "trained")
    write_stage(model / "2", "production", "promoted")
    assert read_stage(model / "2") == "production"
    assert [(c.stage, c.reason) for c in stage_history(model / "2")] == [("staging", "trained"), ("production", "promoted")]
    with pytest.raises(ValueError, match="stage: must be one of"):
        write_stage(model / "2", "canary", "")
    (model / "1" / "stage.json").write_text("{not json")
    assert read_stage(model / "1") == "production"  # unreadable: as if never staged


def test_a_rollback_restores_the_version_that_was_production_last(tmp_path):
    model = versions(tmp_path, "1", "2", "3")
    write_stage(model / "2", "staging", "trained")
    write_stage(model / "3", "staging", "trained")
    write_stage(model / "2", "production", "promoted")
    write_stage(model / "1", "archived", "replaced by v2")  # v1 had no stage file: production until now
    assert previous_production(model, "2") == "1"
    write_stage(model / "3", "production", "promoted")
    write_stage(model / "2", "archived", "replaced by v3")
    assert previous_production(model, "3") == "2"  # the most recent production spell, not the oldest
    assert previous_production(model, "1") == "2"
