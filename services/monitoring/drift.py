"""Drift of live inputs and scores against a model version's training baseline. No gRPC here.

Per feature (and for the scores): PSI over the baseline's 10 quantile bins (bin shares floored at
1e-6) and the two-sample Kolmogorov-Smirnov test (scipy). Only windows of at least
`min_samples` values are judged. Many features are tested at once, so:
- the KS p-values are corrected for multiple testing with Benjamini-Hochberg (as Alibi Detect
  offers), at `alpha`;
- the PSI threshold accounts for the window's size: with n live and m reference values, PSI of
  two samples of one distribution is about (1/n + 1/m) x chi-square with bins-1 degrees of
  freedom, so the threshold is the larger of `psi_threshold` (0.2, the industry rule) and that
  null's 99.9th percentile (at 100 samples the noise alone often passes 0.1).
A feature drifts when both agree: its corrected KS p-value is below `alpha` and its PSI is above
its threshold. Stationary traffic then stays quiet window after window, and a real shift shows.

PSI's binning and the threshold rule are written here (a few lines over numpy): no maintained
library computes PSI with a sample-size-aware threshold; KS and BH come from scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

PSI_FLOOR = 1e-6
BINS = 10


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float
    psi_threshold: float
    ks_statistic: float
    ks_p_value: float
    """Corrected for the number of features tested together (Benjamini-Hochberg)."""
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    samples: int
    judged: bool
    """False when the window held fewer than `min_samples` values: nothing was tested."""
    features: tuple[FeatureDrift, ...]

    @property
    def drifted(self) -> tuple[FeatureDrift, ...]:
        return tuple(f for f in self.features if f.drifted)


def psi(reference: np.ndarray, live: np.ndarray, edges: np.ndarray) -> float:
    """Population stability index of `live` against `reference` over the bins between `edges`
    (the reference's quantiles; the outer bins are open-ended). A column with at most BINS
    distinct reference values (one-hot, categorical) gets a bin per value and one for values the
    reference never held: quantile edges collapse there, and a one-hot column that was always 0
    would put its new 1s in the same open-ended bin as the 0s."""
    distinct = np.unique(reference)
    if len(distinct) <= BINS:
        expected = _value_bins(distinct, reference) / len(reference)
        actual = _value_bins(distinct, live) / len(live)
    else:
        inner = np.unique(edges[1:-1])
        expected = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=len(inner) + 1) / len(reference)
        actual = np.bincount(np.searchsorted(inner, live, side="right"), minlength=len(inner) + 1) / len(live)
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _value_bins(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Counts of `x` per value of `values` (sorted), then of everything else."""
    index = np.searchsorted(values, x)
    known = (index < len(values)) & (values[np.minimum(index, len(values) - 1)] == x)
    return np.bincount(np.where(known, index, len(values)), minlength=len(values) + 1).astype(np.float64)


def psi_threshold(live: int, reference: int, floor: float = 0.2, bins: int = BINS, quantile: float = 0.999) -> float:
    """The larger of `floor` and PSI's `quantile` under no drift for these sample sizes."""
    return max(floor, (1.0 / live + 1.0 / reference) * float(stats.chi2.ppf(quantile, bins - 1)))


def detect(reference: np.ndarray, live: np.ndarray, names: list[str], edges: np.ndarray | None = None, alpha: float = 0.05,
           psi_floor: float = 0.2, min_samples: int = 100) -> DriftReport:
    """reference: [m, k], live: [n, k] (k features, or one column of scores); edges: [11, k]
    quantiles of the reference (computed from it when not given)."""
    reference, live = np.atleast_2d(reference.T).T, np.atleast_2d(live.T).T
    if len(live) < min_samples:
        return DriftReport(len(live), False, ())
    if edges is None:
        edges = np.quantile(reference, np.linspace(0, 1, BINS + 1), axis=0)
    raw_p, statistics, psis = [], [], []
    for j in range(reference.shape[1]):
        result = stats.ks_2samp(reference[:, j], live[:, j])
        statistics.append(float(result.statistic))
        raw_p.append(float(result.pvalue))
        psis.append(psi(reference[:, j], live[:, j], edges[:, j]))
    corrected = stats.false_discovery_control(np.array(raw_p), method="bh")
    threshold = psi_threshold(len(live), len(reference), psi_floor)
    features = tuple(
        FeatureDrift(names[j], psis[j], threshold, statistics[j], float(corrected[j]), bool(corrected[j] < alpha and psis[j] > threshold))
        for j in range(reference.shape[1])
    )
    return DriftReport(len(live), True, features)


def stratified(reference: np.ndarray, reference_scores: np.ndarray, live: np.ndarray, key_columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The reference rows (and their scores) matched to the live traffic's mix of the routing
    key (the one-hot `key_columns`, e.g. data_type): a model trained on every data type but routed
    only search traffic sees search traffic, and that is no drift. Each key value present in both
    keeps its live share, taking the baseline's rows in order (they are a random sample already);
    a key value the baseline never saw stays in the live rows, and is drift."""
    if not key_columns or not len(live):
        return reference, reference_scores
    reference_keys, live_keys = reference[:, key_columns].round(4), live[:, key_columns].round(4)
    values, live_index = np.unique(live_keys, axis=0, return_inverse=True)
    live_counts = np.bincount(live_index.ravel(), minlength=len(values))
    pools = [np.flatnonzero((reference_keys == value).all(axis=1)) for value in values]
    present = [i for i, pool in enumerate(pools) if len(pool)]
    if not present:
        return reference, reference_scores
    shares = live_counts[present] / live_counts[present].sum()
    total = min(len(pools[i]) / share for i, share in zip(present, shares))
    chosen = np.concatenate([pools[i][: max(1, int(round(total * share)))] for i, share in zip(present, shares)])
    return reference[chosen], reference_scores[chosen]
