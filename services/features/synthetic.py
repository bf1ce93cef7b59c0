"""The built-in synthetic ads data set, with a known ground-truth model per label.

Rows follow the ads schema of shared/REFERENCE.md. Each label (click, conversion, engagement) is
drawn from a Bernoulli whose probability is a fixed function of the raw fields, so the best
achievable AUC, log loss and calibration are known and trained models can be judged against them.
The same seed gives the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.features.raw import DATA_TYPES, CandidateColumns, Context, RawBatch

GENDERS = np.array(["m", "f", "x"], dtype=object)
LOCATIONS = np.array(["US", "EU", "ASIA", "LATAM"], dtype=object)
DEVICES = np.array(["mobile", "desktop", "tablet"], dtype=object)
PAGES = np.array(["search", "content", "social"], dtype=object)
CATEGORIES = np.array(["electronics", "fashion", "travel", "finance", "gaming", "food", "other"], dtype=object)
LABELS = ("click", "conversion", "engagement")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _lookup(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    return np.array([table.get(v, 0.0) for v in values], dtype=np.float64)


def true_probabilities(batch: RawBatch) -> dict[str, np.ndarray]:
    """The ground-truth probability of each label for each row."""
    working_hours = ((batch.hour >= 9) & (batch.hour <= 17)).astype(np.float64)
    evening = ((batch.hour >= 18) & (batch.hour <= 22)).astype(np.float64)
    age = (batch.age - 32.0) / 20.0
    quality = batch.quality_score - 0.5
    log_bid = np.log1p(batch.bid_amount)
    search_on_search = ((batch.page_type == "search") & (batch.data_type == "search")).astype(np.float64)
    device = _lookup(batch.device_type, {"mobile": 0.35, "desktop": 0.0, "tablet": -0.2})
    page = _lookup(batch.page_type, {"search": 0.4, "content": -0.1, "social": 0.1})
    category = _lookup(batch.category, {"electronics": 0.3, "fashion": 0.2, "travel": -0.1, "finance": -0.4, "gaming": 0.5, "food": 0.1})
    data_type = _lookup(batch.data_type, {"search": 0.3, "display": -0.4, "conversion": 0.0})
    location = _lookup(batch.location, {"US": 0.2, "EU": 0.0, "ASIA": 0.1})

    click = (
        -1.7 + 2.2 * quality + device + page + category + data_type + location
        + 0.5 * working_hours + 0.3 * evening - age**2 + 0.6 * search_on_search + 0.15 * log_bid
    )
    conversion = (
        -2.4 + 1.2 * quality + 0.6 * (batch.device_type == "desktop") + 0.8 * age * (batch.gender == "f")
        + _lookup(batch.category, {"finance": 0.7, "travel": 0.5, "electronics": 0.2, "gaming": -0.3})
        + 0.6 * (batch.data_type == "conversion") - 0.5 * evening + 0.4 * log_bid
    )
    engagement = (
        -0.6 + 3.0 * quality + 0.8 * np.tanh(2.0 * quality) * (batch.page_type == "social")
        + 0.4 * (batch.device_type == "mobile") - 0.5 * age + 0.3 * np.sin(2 * np.pi * batch.hour / 24.0)
    )
    return {"click": _sigmoid(click), "conversion": _sigmoid(conversion), "engagement": _sigmoid(engagement)}


@dataclass(frozen=True)
class Dataset:
    batch: RawBatch
    labels: dict[str, np.ndarray]
    true_p: dict[str, np.ndarray]

    def split(self, fractions: tuple[float, ...]) -> list["Dataset"]:
        n = len(self.batch)
        edges = np.cumsum([0, *[int(n * f) for f in fractions]])
        edges[-1] = n
        out = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            index = np.arange(lo, hi)
            out.append(
                Dataset(
                    self.batch.take(index),
                    {k: v[index] for k, v in self.labels.items()},
                    {k: v[index] for k, v in self.true_p.items()},
                )
            )
        return out


def sample_batch(n: int, rng: np.random.Generator) -> RawBatch:
    return RawBatch(
        data_type=rng.choice(np.array(DATA_TYPES, dtype=object), size=n, p=[0.5, 0.35, 0.15]),
        user_id=np.array([f"u{i}" for i in rng.integers(0, 1_000_000, size=n)], dtype=object),
        age=np.clip(rng.normal(38.0, 12.5, size=n).round(), 18, 80),
        gender=rng.choice(GENDERS, size=n, p=[0.48, 0.48, 0.04]),
        location=rng.choice(LOCATIONS, size=n, p=[0.4, 0.3, 0.25, 0.05]),
        device_type=rng.choice(DEVICES, size=n, p=[0.55, 0.35, 0.10]),
        hour=rng.integers(0, 24, size=n),
        day_of_week=rng.integers(0, 7, size=n),
        page_type=rng.choice(PAGES, size=n),
        ad_id=np.array([f"ad{i}" for i in rng.integers(0, 100_000, size=n)], dtype=object),
        category=rng.choice(CATEGORIES, size=n, p=[0.2, 0.2, 0.15, 0.15, 0.12, 0.13, 0.05]),
        bid_amount=np.round(rng.lognormal(0.6, 0.5, size=n), 2),
        quality_score=np.round(rng.beta(5.0, 3.0, size=n), 3),
    )


def generate(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    batch = sample_batch(n, rng)
    true_p = true_probabilities(batch)
    labels = {k: (rng.random(n) < p).astype(np.float32) for k, p in true_p.items()}
    return Dataset(batch, labels, true_p)


def sample_request(n_candidates: int, data_type: str, seed: int = 0) -> tuple[Context, CandidateColumns]:
    """One realistic request: a context and `n_candidates` ads (for `scoremesh score`, tests)."""
    rng = np.random.default_rng(seed)
    row = sample_batch(1, rng)
    ads = sample_batch(n_candidates, rng)
    context = Context(
        data_type=data_type,
        user_id=str(row.user_id[0]),
        age=int(row.age[0]),
        gender=str(row.gender[0]),
        location=str(row.location[0]),
        device_type=str(row.device_type[0]),
        hour=int(row.hour[0]),
        day_of_week=int(row.day_of_week[0]),
        page_type=str(row.page_type[0]),
    )
    candidates = CandidateColumns(
        ad_id=[str(a) for a in ads.ad_id],
        category=[str(c) for c in ads.category],
        bid_amount=[float(b) for b in ads.bid_amount],
        quality_score=[float(q) for q in ads.quality_score],
    )
    return context, candidates
