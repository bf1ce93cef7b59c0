"""Live samples kept for drift, per model version."""

from services.monitoring.live import LiveSamples


def test_the_version_judged_by_default_is_the_one_serving_now_not_the_highest_number():
    live = LiveSamples()
    live.add("ctr", "9", 100.0, [0.0], [0.5])
    live.add("ctr", "10", 101.0, [0.0], [0.5])
    assert live.newest_version("ctr") == "10"  # "10" after "9"
    live.add("ctr", "9", 102.0, [0.0], [0.5])  # 10 rolled back: traffic is on 9 again
    assert live.newest_version("ctr") == "9"
    rows, scores = live.window("ctr", "9", 5.0, 1, now=103.0)
    assert rows.shape == (2, 1) and scores.tolist() == [0.5, 0.5]
