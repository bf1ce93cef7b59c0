"""The synthetic world's optima: the ground truth (latent traits) and what the features carry."""

from __future__ import annotations

from domain.models.quality import auc, calibration_error
from training.synthetic import LABELS, generate, make_world, observable_probabilities


def test_the_reachable_optimum_is_calibrated_and_below_the_latent_ground_truth():
    world = make_world(0)
    data = generate(12_000, seed=11, world=world)
    reachable = observable_probabilities(data.batch, world)
    for label in LABELS:
        y, truth, best = data.labels[label], data.true_p[label], reachable[label]
        # An average of the truth over what the traits may be given the observations: calibrated...
        assert abs(best.mean() - truth.mean()) < 0.005 and calibration_error(y, best) < 0.02
        # ...and it cannot rank better than the truth itself, which sees the traits.
        assert auc(y, best) <= auc(y, truth) + 0.002
    # Engagement leans on the user's activity, seen only through a week of clicks: the most lost.
    lost = {label: auc(data.labels[label], data.true_p[label]) - auc(data.labels[label], reachable[label]) for label in LABELS}
    assert max(lost, key=lost.get) == "engagement" and lost["engagement"] > 0.005
