import pytest

from services.monitoring.cost import SECONDS_PER_MONTH, CostTracker


def test_cost_per_thousand_scores_and_the_projected_month():
    tracker = CostTracker(cpu_price_per_hour=3.6, monthly_budget=1000.0, interval_s=5.0)  # 0.001 per CPU-second
    assert tracker.due(100.0)
    first = {("router", "r1"): 10.0, ("features", "f1"): 5.0, ("inference", "i1"): 20.0, ("inference", "i2"): 20.0}
    assert tracker.update(100.0, first, {}, {}) is None  # the first reading only sets the origin
    assert not tracker.due(104.0) and tracker.due(105.0) and tracker.view is None
    later = {("router", "r1"): 12.0, ("features", "f1"): 6.0, ("inference", "i1"): 24.0, ("inference", "i2"): 1.0,  # i2 restarted
             ("inference", "i3"): 7.0}  # new: counted from its next reading
    view = tracker.update(110.0, later, {"ctr": 300, "cvr": 100}, {"ctr": 1500, "cvr": 1500})
    assert view.cpu_seconds == {"router": 2.0, "features": 1.0, "inference": 5.0}
    assert view.cost == pytest.approx(0.008)
    # ctr: 3/4 of router+features (0.003 x 0.75) + 1/2 of inference (0.005 x 0.5) over 300 Scores
    assert view.cost_per_1000_scores["ctr"] == pytest.approx((0.00225 + 0.0025) / 300 * 1000)
    assert view.cost_per_1000_scores["cvr"] == pytest.approx((0.00075 + 0.0025) / 100 * 1000)
    assert view.projected_monthly == pytest.approx(0.008 / 10 * SECONDS_PER_MONTH)
    assert view.budget_used == pytest.approx(view.projected_monthly / 1000.0)
    assert tracker.view is view
    assert CostTracker(1.0).update(0.0, {}, {}, {}) is None
