from __future__ import annotations

import math

import pytest

from domain.errors import InvalidArgument
from domain.request import CandidateColumns, Context, validate

OK = Context("display", age=30, hour=12, day_of_week=3)


def cands(bids, qualities=None):
    n = len(bids)
    return CandidateColumns([f"a{i}" for i in range(n)], ["food"] * n, bids, qualities or [0.5] * n)


@pytest.mark.parametrize(
    "context,candidates,message",
    [
        (OK, cands([]), "candidates: must not be empty"),
        (OK, cands([1.0] * 11), "candidates: at most 10 per request (got 11)"),
        (OK, cands([1.0, math.nan]), "candidates[1].bid_amount: must be a finite number (got nan)"),
        (OK, cands([1.0, 2.0, math.inf]), "candidates[2].bid_amount: must be a finite number (got inf)"),
        (OK, cands([-1.0]), "candidates[0].bid_amount: must be >= 0 (got -1.0)"),
        (OK, cands([1.0, 1.0], [0.5, 1.5]), "candidates[1].quality_score: must be in [0, 1] (got 1.5)"),
        (Context("video", age=30), cands([1.0]), "data_type: must be one of search, display, conversion (got 'video')"),
        (Context("search", age=130), cands([1.0]), "context.user.age: must be in [0, 120] (got 130)"),
        (Context("search", hour=-1), cands([1.0]), "context.hour: must be in [0, 23] (got -1)"),
        (Context("search", day_of_week=7), cands([1.0]), "context.day_of_week: must be in [0, 6] (got 7)"),
    ],
)
def test_invalid_requests_name_the_field(context, candidates, message):
    with pytest.raises(InvalidArgument) as raised:
        validate(context, candidates, max_candidates=10)
    assert raised.value.message == message
    assert raised.value.status == "INVALID_ARGUMENT"


def test_valid_request_passes():
    validate(OK, cands([0.0, 3.5], [0.0, 1.0]), max_candidates=10)
