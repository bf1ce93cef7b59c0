"""The data-quality gate for training data (shared/REFERENCE.md): missing rate per column,
IQR outliers, class imbalance. `scoremesh train` refuses failing data unless forced."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from domain.features.raw import CATEGORICAL_FIELDS, NUMERIC_FIELDS, RawBatch


@dataclass(frozen=True)
class QualityThresholds:
    max_missing_rate: float = 0.10
    """A column with more missing values than this fails."""
    iqr_factor: float = 1.5
    """Outliers lie beyond this many IQRs outside the quartiles."""
    max_outlier_share: float = 0.10
    """A numeric column with a larger share of IQR outliers fails (heavy tails such as bids and
    click counts legitimately reach a few percent)."""
    max_imbalance: float = 10.0
    """A label whose majority class outnumbers the minority by more than this fails, unless
    `label_imbalance` sets its own limit."""
    label_imbalance: tuple[tuple[str, float], ...] = ()
    """Per-label limits, e.g. (("click", 100.0),): real click data is 30-100:1, and
    conversions rarer still, so one limit for every label would refuse them or wave
    anything through."""

    def imbalance_limit(self, label: str) -> tuple[float, str]:
        """(the limit for `label`, where it comes from: "label_imbalance[click]" or "max_imbalance")."""
        for name, limit in self.label_imbalance:
            if name == label:
                return limit, f"label_imbalance[{name}]"
        return self.max_imbalance, "max_imbalance"


@dataclass
class QualityReport:
    problems: list[str] = field(default_factory=list)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    """Which limit applied where it can differ per column or label."""

    @property
    def passed(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = "data quality: passed" if self.passed else f"data quality: FAILED ({len(self.problems)} problems)"
        limits = "; ".join(f"{name} {limit}" for name, limit in self.limits.items())
        return "\n".join([head + (f" (imbalance limits: {limits})" if limits else ""), *(f"  - {p}" for p in self.problems)])


def check(batch: RawBatch, labels: dict[str, np.ndarray], thresholds: QualityThresholds = QualityThresholds()) -> QualityReport:
    report = QualityReport()
    n = len(batch)
    if n == 0:
        report.problems.append("no rows")
        return report
    for name in CATEGORICAL_FIELDS + NUMERIC_FIELDS:
        values = batch.column(name)
        missing = np.isnan(values.astype(np.float64)) if name in NUMERIC_FIELDS else (values == "") | (values == None)  # noqa: E711
        rate = float(missing.mean())
        report.stats.setdefault(name, {})["missing_rate"] = rate
        if rate > thresholds.max_missing_rate:
            report.problems.append(f"column {name}: {rate:.1%} missing (max {thresholds.max_missing_rate:.0%})")
        if name in NUMERIC_FIELDS and (~missing).sum() >= 4:
            present = values.astype(np.float64)[~missing]
            q1, q3 = np.percentile(present, [25, 75])
            spread = thresholds.iqr_factor * (q3 - q1)
            share = float(((present < q1 - spread) | (present > q3 + spread)).mean())
            report.stats[name]["outlier_share"] = share
            if share > thresholds.max_outlier_share:
                report.problems.append(
                    f"column {name}: {share:.1%} IQR outliers (x{thresholds.iqr_factor:g}; max {thresholds.max_outlier_share:.0%})"
                )
    for label, y in labels.items():
        positives = float(np.sum(y > 0.5))
        negatives = float(len(y) - positives)
        ratio = max(positives, negatives) / max(min(positives, negatives), 1.0)
        limit, source = thresholds.imbalance_limit(label)
        report.stats.setdefault(f"label:{label}", {}).update(imbalance=ratio, imbalance_limit=limit)
        report.limits[f"label:{label}"] = f"{limit:g}:1 ({source})"
        if ratio > limit:
            report.problems.append(f"label {label}: class imbalance {ratio:.1f}:1 (max {limit:g}:1, {source})")
    return report
