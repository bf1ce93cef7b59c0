from services.monitoring.anomaly import Anomaly, EwmaDetector, ZScoreDetector, quality_degraded, severity


def test_z_score_needs_ten_points_and_judges_against_the_previous_ones():
    detector = ZScoreDetector()
    for value in [10.0, 12.0] * 4:  # 8 points: not judged yet, whatever comes
        assert detector.observe(value) is None
    assert detector.observe(1000.0) is None  # the 9th point: still too few before it
    detector = ZScoreDetector()
    for value in [10.0, 12.0] * 5:  # mean 11, sd 1
        detector.observe(value)
    assert detector.observe(13.9) is None  # 2.9 sigma
    found = ZScoreDetector()
    for value in [10.0, 12.0] * 5:
        found.observe(value)
    anomaly = found.observe(16.0)  # 5 sigma
    assert anomaly == Anomaly(16.0, 11.0, 5.0) and anomaly.severity() == "high"


def test_severity_mapping():
    assert [severity(s) for s in (0.95, 0.8, 0.6, 0.3)] == ["critical", "high", "medium", "low"]
    assert [severity(s, business_impact_high=True) for s in (0.95, 0.6, 0.3)] == ["critical", "high", "high"]
    assert Anomaly(0, 0, 3.0).severity() == "low" and Anomaly(0, 0, 3.6).severity() == "medium"
    assert Anomaly(0, 0, 6.4).severity() == "critical" and Anomaly(0, 0, 70).score == 1.0


def test_ewma_flags_a_jump_and_adapts_to_a_new_level():
    detector = EwmaDetector(alpha=0.2)
    for i in range(30):
        assert detector.observe(10.0 + (i % 2)) is None
    assert detector.observe(20.0) is not None
    for _ in range(40):
        detector.observe(20.0 + 0.5 * (_ % 2))
    assert detector.observe(20.5) is None  # the new level is the norm now


def test_quality_degradation():
    assert quality_degraded([0.8] * 10 + [0.7] * 5)  # 0.7 < 0.9 x 0.8
    assert not quality_degraded([0.8] * 10 + [0.75] * 5)
    assert not quality_degraded([0.1] * 5)
    assert quality_degraded([1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5], recent=5) is True
