from __future__ import annotations

import numpy as np
import pytest

from domain.request import Context
from services.router.postprocess import bids, explanation, members_used, score_multiplier


@pytest.mark.parametrize(
    "hour,device,location,expected",
    [
        (3, "desktop", "EU", 1.0),
        (9, "desktop", "EU", 1.2),
        (17, "desktop", "EU", 1.2),
        (18, "desktop", "EU", 1.5),
        (22, "desktop", "EU", 1.5),
        (23, "mobile", "EU", 1.3),
        (12, "mobile", "US", 1.2 * 1.3 * 1.1),
        (None, "mobile", "US", 1.3 * 1.1),  # no hour: no time-of-day multiplier
        (None, "", "", 1.0),  # nothing given: no multiplier at all
    ],
)
def test_multipliers(hour, device, location, expected):
    context = Context("search", hour=hour, device_type=device, location=location)
    assert score_multiplier(context) == pytest.approx(expected)


def test_bid_rounds_and_caps_the_adjusted_score():
    context = Context("search", hour=20, device_type="mobile", location="US")  # x2.145
    out = bids(context, np.array([0.1, 0.9]), np.array([2.0, 3.0]), np.array([0.5, 0.8]))
    assert out.tolist() == [round(2.0 * 0.1 * 2.145 * 0.5, 3), round(3.0 * 1.0 * 0.8, 3)]


def test_explanation_lists_score_confidence_members():
    assert explanation(0.12345, 0.9, members_used(["a", "b"])) == "score 0.1235, confidence 0.9000, members a, b"
