import numpy as np

from training.quality_gate import QualityThresholds, check
from training.synthetic import generate
from tests.domain.features.helpers import raw_batch


def test_the_synthetic_data_passes():
    data = generate(5000, seed=1)
    report = check(data.batch, data.labels)
    assert report.passed, str(report)
    assert 0.02 < report.stats["age"]["missing_rate"] < 0.05


def test_each_rule_fails_with_a_clear_problem():
    n = 100
    age = np.full(n, 30.0)
    age[:15] = np.nan  # 15% missing
    bid = np.ones(n)
    bid[:20] = 1000.0  # 20% far outliers
    batch = raw_batch(n, age=age, bid_amount=bid, quality_score=np.linspace(0, 1, n), user_id=["u"] * n,
                      data_type=["search"] * n, gender=["m"] * n, location=["US"] * n, device_type=["mobile"] * n,
                      page_type=["search"] * n, ad_id=["a"] * n, category=["food"] * n,
                      hour=np.ones(n), day_of_week=np.ones(n), ad_ctr=np.ones(n), user_clicks_7d=np.ones(n))
    labels = {"click": np.r_[np.ones(5), np.zeros(95)]}  # 19:1
    report = check(batch, labels, QualityThresholds())
    assert not report.passed
    assert report.problems == [
        "column age: 15.0% missing (max 10%)",
        "column bid_amount: 20.0% IQR outliers (x1.5; max 10%)",
        "label click: class imbalance 19.0:1 (max 10:1, max_imbalance)",
    ]
    assert str(report).startswith("data quality: FAILED (3 problems) (imbalance limits: label:click 10:1 (max_imbalance))")


def test_a_label_can_have_its_own_imbalance_limit_and_the_report_says_which_applied():
    data = generate(2000, seed=2)
    rare = {"click": np.r_[np.ones(20), np.zeros(1980)], "conversion": np.r_[np.ones(20), np.zeros(1980)]}  # 99:1 each
    report = check(data.batch, rare, QualityThresholds(label_imbalance=(("click", 100.0),)))
    assert report.problems == ["label conversion: class imbalance 99.0:1 (max 10:1, max_imbalance)"]
    assert report.limits == {"label:click": "100:1 (label_imbalance[click])", "label:conversion": "10:1 (max_imbalance)"}
    assert report.stats["label:click"] == {"imbalance": 99.0, "imbalance_limit": 100.0}
