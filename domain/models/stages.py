"""Model version stages, kept in the repository beside each version: `<version>/stage.json` with
the stage (staging, production, archived) and every change (when, why). Routers send unpinned
traffic to the newest production version; a staging version serves only where a split arm or a
shadow names it, until it is promoted. A version without the file (written before stages
existed) counts as production. No gRPC here.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from domain.models.repository import version_dirs

STAGES = ("staging", "production", "archived")
STAGE_FILE = "stage.json"


@dataclass(frozen=True)
class StageChange:
    stage: str
    at: float
    reason: str


def stage_history(version_dir: Path) -> list[StageChange]:
    path = version_dir / STAGE_FILE
    try:
        document = json.loads(path.read_text())
        return [StageChange(str(c["stage"]), float(c["at"]), str(c.get("reason", ""))) for c in document["history"]
                if c.get("stage") in STAGES]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def read_stage(version_dir: Path) -> str:
    history = stage_history(version_dir)
    return history[-1].stage if history else "production"


def write_stage(version_dir: Path, stage: str, reason: str) -> StageChange:
    """Append a change and make it the version's stage (written whole: staged, then replaced)."""
    if stage not in STAGES:
        raise ValueError(f"stage: must be one of {', '.join(STAGES)} (got {stage!r})")
    change = StageChange(stage, time.time(), reason[:500])
    history = [*stage_history(version_dir), change]
    fd, tmp = tempfile.mkstemp(dir=version_dir, prefix=".stage-")
    with os.fdopen(fd, "w") as out:
        json.dump({"stage": stage, "history": [c.__dict__ for c in history]}, out, indent=2)
    os.replace(tmp, version_dir / STAGE_FILE)
    return change


def stages(model_dir: Path) -> dict[str, str]:
    """version -> stage, oldest version first."""
    return {v.name: read_stage(v) for v in version_dirs(model_dir)} if model_dir.is_dir() else {}


def previous_production(model_dir: Path, current: str) -> str | None:
    """The version that was production most recently before `current` took over (what a
    rollback re-promotes): the archived version whose last production spell ended last."""
    best: tuple[float, str] | None = None
    for version_dir in version_dirs(model_dir):
        if version_dir.name == current or read_stage(version_dir) != "archived":
            continue
        history = stage_history(version_dir)
        ended = [history[i + 1].at for i in range(len(history) - 1) if history[i].stage == "production"]
        if history and history[0].stage == "archived":  # a version from before stages: production until then
            ended.insert(0, history[0].at)
        if ended and (best is None or ended[-1] > best[0]):
            best = (ended[-1], version_dir.name)
    return best[1] if best else None
