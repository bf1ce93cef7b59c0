"""The promotion gate: a staging model version becomes production only when its metrics pass the
configured thresholds and are not worse than production's beyond a margin; a rollback
re-promotes the version that was production before. Stages live in the repository
(domain.models.stages), so every router follows them. No gRPC here: the latency probe is
injected.

Checked for a promotion: the version's test-split AUC, log loss and calibration error (written
by `scoremesh train` into its config), its training data's quality report, the p99 latency of
a load probe against a replica serving it (rows from its own drift baseline: inputs as real
traffic brings them), and AUC and log loss against the production version's on the same terms.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from domain.errors import FailedPrecondition, NotFound
from domain.models.baseline import read_baseline
from domain.models.repository import CONFIG_FILE
from domain.models.stages import previous_production, read_stage, stages, write_stage

Probe = Callable[[str, str, np.ndarray], Awaitable[float]]
"""(model, version, input rows) -> p99 latency in ms of a load probe against a replica serving it."""


@dataclass(frozen=True)
class PromotionPolicy:
    min_auc: float = 0.6
    max_log_loss: float = 0.69
    max_calibration_error: float = 0.05
    max_p99_ms: float = 100.0
    margin: float = 0.01
    """How much worse than production a candidate may be: AUC points, and log loss relative."""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failures: tuple[str, ...]
    evidence: str


class PromotionGate:
    def __init__(self, repository: Path, policy: PromotionPolicy, probe: Probe) -> None:
        self.repository, self.policy, self.probe = repository, policy, probe

    def _version_dir(self, model: str, version: str) -> Path:
        path = self.repository / model / version
        if not (path / CONFIG_FILE).is_file():
            raise NotFound(f"target: no version {version} of model {model!r} in the repository")
        return path

    def production(self, model: str) -> str | None:
        served = [v for v, stage in stages(self.repository / model).items() if stage == "production"]
        return served[-1] if served else None

    async def judge(self, model: str, version: str) -> Verdict:
        version_dir = self._version_dir(model, version)
        stage = read_stage(version_dir)
        if stage == "production":
            raise FailedPrecondition(f"target: {model}:{version} is production already")
        p = self.policy
        config = yaml.safe_load((version_dir / CONFIG_FILE).read_text()) or {}
        metrics = (config.get("metrics") or {}).get("ensemble") or {}
        failures, evidence = [], []
        for name, limit, worse in (("auc", p.min_auc, lambda v, lim: v < lim), ("log_loss", p.max_log_loss, lambda v, lim: v > lim),
                                   ("calibration_error", p.max_calibration_error, lambda v, lim: v > lim)):
            value = metrics.get(name)
            if value is None or not math.isfinite(float(value)):
                failures.append(f"no test {name} in its config")
                continue
            evidence.append(f"{name} {float(value):.4f}")
            if worse(float(value), limit):
                failures.append(f"{name} {float(value):.4f} beyond the limit {limit:g}")
        quality = ((config.get("training") or {}).get("data_quality")) or {}
        if quality.get("passed") is not True:
            failures.append("its training data did not pass the data-quality gate" if quality else "no data-quality report")
        current = self.production(model)
        if current is not None and current != version:
            theirs = (yaml.safe_load((self.repository / model / current / CONFIG_FILE).read_text()) or {}).get("metrics", {}).get("ensemble", {})
            if "auc" in metrics and "auc" in theirs and float(metrics["auc"]) < float(theirs["auc"]) - p.margin:
                failures.append(f"AUC {float(metrics['auc']):.4f} below production v{current}'s {float(theirs['auc']):.4f} by more than {p.margin:g}")
            if "log_loss" in metrics and "log_loss" in theirs and float(metrics["log_loss"]) > float(theirs["log_loss"]) * (1 + p.margin):
                failures.append(f"log loss {float(metrics['log_loss']):.4f} above production v{current}'s {float(theirs['log_loss']):.4f} "
                                f"by more than {p.margin:.0%}")
            evidence.append(f"production v{current}: AUC {float(theirs.get('auc', float('nan'))):.4f}, "
                            f"log loss {float(theirs.get('log_loss', float('nan'))):.4f}")
        baseline = read_baseline(version_dir)
        if baseline is None:
            failures.append("no baseline rows to probe its latency with")
        else:
            p99 = await self.probe(model, version, baseline.features[:64])
            evidence.append(f"probe p99 {p99:.1f} ms")
            if not p99 <= p.max_p99_ms:
                failures.append(f"probe p99 {p99:.1f} ms beyond the limit {p.max_p99_ms:g} ms")
        return Verdict(not failures, tuple(failures), "; ".join(evidence))

    async def promote(self, model: str, version: str, reason: str, dry_run: bool = False) -> str:
        verdict = await self.judge(model, version)
        if not verdict.passed:
            return f"refused: {'; '.join(verdict.failures)} ({verdict.evidence})"
        current = self.production(model)
        if dry_run:
            return f"dry run: would promote {model} v{version} over v{current} ({verdict.evidence})"
        # The new one first, then the old one out: routers never see no production version.
        write_stage(self.repository / model / version, "production", f"promoted: {reason} ({verdict.evidence})")
        for old, stage in stages(self.repository / model).items():
            if stage == "production" and old != version:
                write_stage(self.repository / model / old, "archived", f"replaced by v{version}: {reason}")
        return f"succeeded: {model} v{version} is production (was v{current}; {verdict.evidence})"

    async def rollback(self, model: str, reason: str, dry_run: bool = False) -> str:
        current = self.production(model)
        if current is None:
            raise FailedPrecondition(f"target: {model!r} has no production version")
        previous = previous_production(self.repository / model, current)
        if previous is None:
            raise FailedPrecondition(f"target: {model} has no earlier production version to go back to")
        if dry_run:
            return f"dry run: would make v{previous} production again instead of v{current}"
        write_stage(self.repository / model / previous, "production", f"rollback: {reason}")
        write_stage(self.repository / model / current, "archived", f"rolled back to v{previous}: {reason}")
        return f"succeeded: {model} v{previous} is production again (v{current} archived)"
