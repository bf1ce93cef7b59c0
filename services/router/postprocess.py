"""Business post-processing: score multipliers and the bid (shared/REFERENCE.md). Every input
is optional: a missing hour, device or region applies no multiplier."""

from __future__ import annotations

import numpy as np

from domain.request import Context


def score_multiplier(context: Context) -> float:
    """hour 9-17 x1.2, hour 18-22 x1.5, mobile x1.3, region US x1.1."""
    multiplier = 1.0
    if context.hour is not None:
        if 9 <= context.hour <= 17:
            multiplier *= 1.2
        elif 18 <= context.hour <= 22:
            multiplier *= 1.5
    if context.device_type == "mobile":
        multiplier *= 1.3
    if context.location == "US":
        multiplier *= 1.1
    return multiplier


def bids(context: Context, scores: np.ndarray, bid_amount: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """bid = round(bid_amount x min(1, score x multiplier) x quality_score, 3)."""
    adjusted = np.minimum(scores.astype(np.float64) * score_multiplier(context), 1.0)
    return np.round(bid_amount * adjusted * quality, 3)


def members_used(members: list[str]) -> str:
    """The explanation's member part, the same for every candidate of a response."""
    return ", ".join(members)


def explanation(score: float, confidence: float, members_used: str) -> str:
    return f"score {score:.4f}, confidence {confidence:.4f}, members {members_used}"
