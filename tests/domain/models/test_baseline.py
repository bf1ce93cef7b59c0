import numpy as np

from domain.models.baseline import make_baseline, read_baseline, write_baseline


def test_a_baseline_round_trips_and_samples_the_same_rows(tmp_path):
    features = np.arange(30, dtype=np.float32).reshape(10, 3)
    scores = features[:, 0] / 100
    baseline = make_baseline(features, scores, rows=4, seed=1)
    assert baseline.features.shape == (4, 3) and np.allclose(baseline.scores, baseline.features[:, 0] / 100)
    assert np.allclose(baseline.feature_quantiles[[0, -1]], [[0, 1, 2], [27, 28, 29]])
    write_baseline(tmp_path, baseline)
    again = read_baseline(tmp_path)
    assert np.array_equal(again.features, baseline.features) and np.array_equal(again.scores, baseline.scores)
    assert read_baseline(tmp_path / "none") is None
