"""Online ensemble weighting from outcomes: the weights of a weighted-average ensemble
(p = sum_i w_i p_i / sum_i w_i over its members' calibrated probabilities) learned from joined
feedback, one outcome at a time. No gRPC here.

Two learners, both with Fixed-Share mixing (Herbster & Warmuth 1998) toward the trained weights
after every update, so a member demoted before a shift can come back after it; the prior is
the trained weights mixed with a little of the uniform ones, so every weight stays at least
share x floor / M (bounded away from zero) and a member training all but dropped can return:

- "exponential": exponential weights on each member's own log loss, w_i <- w_i p_i(y)^eta. With
  eta = 1 this is Bayesian model averaging; its log loss is within ln M of the best member's.
- "gradient": exponentiated gradient on the ensemble's log loss, w_i <- w_i exp(eta p_i(y) /
  p(y)) (Helmbold, Schapire, Singer & Warmuth 1998, the universal-portfolio update). It competes
  with the best fixed *mixture*, not only the best member: what the trained weights are, so
  before a shift it stays with them, and after one it moves off the member that degraded.

Probabilities are clipped to [eps, 1 - eps] first: one confident miss must not zero a weight.
`AdditiveRule` is the seeds' rule the learners are measured against (shared/REFERENCE.md,
"Adaptive weights"), with success read as log loss on the period's outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("exponential", "gradient")


@dataclass(frozen=True)
class LearnerSettings:
    method: str = "gradient"
    learning_rate: float = 0.2
    share: float = 0.001
    """Fixed-Share: the part of the weight mass moved back toward the prior per update."""
    eps: float = 1e-3
    floor: float = 0.1
    """The prior shared back toward: the trained weights mixed with this much of the uniform
    weights, so a member training gave (near) zero weight can still earn some after a shift."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {', '.join(METHODS)} (got {self.method!r})")
        if not (self.learning_rate > 0 and 0 <= self.share < 1 and 0 < self.eps < 0.5 and 0 <= self.floor <= 1):
            raise ValueError("learning_rate > 0, 0 <= share < 1, 0 < eps < 0.5 and 0 <= floor <= 1 are required")


def outcome_probability(p: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """The probability each forecast gave the outcome that happened."""
    return np.where(np.asarray(y) > 0.5, p, 1.0 - p)


def log_loss_of(p: np.ndarray, y: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """The log loss of each forecast."""
    return -np.log(np.clip(outcome_probability(p, y), eps, 1.0))


class OnlineWeights:
    """Weights over M members, starting at (and sharing back toward) the trained weights."""

    def __init__(self, trained: np.ndarray, settings: LearnerSettings = LearnerSettings(), start: np.ndarray | None = None) -> None:
        """`start`: the weights serving now, when not the trained ones (learning resumed after a
        restart, or switched on again); the prior stays the trained weights."""
        trained = np.asarray(trained, dtype=np.float64)
        if trained.ndim != 1 or not len(trained) or (trained < 0).any() or not np.isfinite(trained).all() or trained.sum() <= 0:
            raise ValueError("trained weights: one finite number >= 0 per member, not all 0")
        self.settings = settings
        self.scale = float(trained.sum())
        self.trained = trained / self.scale
        self.prior = (1 - settings.floor) * self.trained + settings.floor / len(trained)
        # The trained ensemble (or what serves), until outcomes say otherwise.
        self.w = self.trained.copy() if start is None else np.asarray(start, dtype=np.float64) / float(np.sum(start))
        self.updates = 0

    @property
    def weights(self) -> np.ndarray:
        """The weights on the trained weights' scale (what the served ensemble config holds)."""
        return self.w * self.scale

    def predict(self, member_p: np.ndarray) -> np.ndarray:
        """The ensemble's probability for each row of member probabilities [n, M]."""
        return np.asarray(member_p, dtype=np.float64) @ self.w

    def update(self, member_p: np.ndarray, y: np.ndarray) -> None:
        """Learn from outcomes `y` [n] of rows of member probabilities [n, M], in order."""
        s = self.settings
        member_p = np.clip(np.asarray(member_p, dtype=np.float64).reshape(-1, len(self.w)), s.eps, 1 - s.eps)
        for p, outcome in zip(outcome_probability(member_p, np.asarray(y)[:, None]), np.asarray(y)):
            if s.method == "exponential":
                w = self.w * p**s.learning_rate
            else:
                w = self.w * np.exp(s.learning_rate * p / float(p @ self.w))
            w /= w.sum()
            self.w = (1 - s.share) * w + s.share * self.prior
            self.updates += 1


class AdditiveRule:
    """The seeds' rule: every `period` outcomes (with at least 50), a member whose log loss over
    them is below the members' average gets x1.1, one above it x0.9, clamped to [0.1, 2.0]."""

    def __init__(self, trained: np.ndarray, period: int, low: float = 0.1, high: float = 2.0) -> None:
        self.w = np.asarray(trained, dtype=np.float64).copy()
        self.period, self.low, self.high = period, low, high
        self._p: list[np.ndarray] = []
        self._y: list[float] = []

    @property
    def weights(self) -> np.ndarray:
        return self.w

    def predict(self, member_p: np.ndarray) -> np.ndarray:
        return np.asarray(member_p, dtype=np.float64) @ (self.w / self.w.sum())

    def update(self, member_p: np.ndarray, y: np.ndarray) -> None:
        for p, outcome in zip(np.asarray(member_p, dtype=np.float64), np.asarray(y)):
            self._p.append(p)
            self._y.append(float(outcome))
            if len(self._y) >= max(self.period, 50):
                losses = log_loss_of(np.array(self._p), np.array(self._y)[:, None]).mean(axis=0)
                self.w = np.clip(np.where(losses < losses.mean(), self.w * 1.1, self.w * 0.9), self.low, self.high)
                self._p, self._y = [], []
