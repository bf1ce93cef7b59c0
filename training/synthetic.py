"""The built-in synthetic ads data set, with a known ground-truth model per label.

Rows follow the ads schema of shared/REFERENCE.md. A pool of ads and a pool of users carry
latent traits (an ad's appeal, a user's activity); the online store holds noisy observations of
them (the ad's historical CTR, the user's clicks over 7 days), as a real one would. Each label
(click, conversion, engagement) is a Bernoulli draw from a fixed function of the raw fields and
the latent traits, so the best achievable AUC, log loss and calibration are known. A few context
values are left missing on purpose, as in real traffic. The same seed gives the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain.features.raw import merge_lookups
from domain.features.raw import RawBatch
from domain.request import DATA_TYPES, CandidateColumns, Context

GENDERS = np.array(["m", "f", "x"], dtype=object)
LOCATIONS = np.array(["US", "EU", "ASIA", "LATAM"], dtype=object)
DEVICES = np.array(["mobile", "desktop", "tablet"], dtype=object)
PAGES = np.array(["search", "content", "social"], dtype=object)
CATEGORIES = np.array(["electronics", "fashion", "travel", "finance", "gaming", "food", "other"], dtype=object)
LABELS = ("click", "conversion", "engagement")
N_ADS = 5_000
N_USERS = 20_000
MISSING_RATE = {"age": 0.03, "hour": 0.02}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _lookup(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    distinct, inverse = np.unique(values.astype(str), return_inverse=True)
    return np.array([table.get(v, 0.0) for v in distinct], dtype=np.float64)[inverse]


@dataclass(frozen=True)
class World:
    """The latent traits of every ad and user, and what the online store knows of them."""

    ad_appeal: dict[str, float]
    user_activity: dict[str, float]
    store_tables: dict[str, dict[str, dict[str, float]]]
    ad_history: dict[str, tuple[int, int]] = None  # type: ignore[assignment]
    """ad -> (clicks, impressions) behind its historical CTR: what observable_probabilities
    conditions the ad's appeal on."""


def make_world(seed: int = 0) -> World:
    rng = np.random.default_rng(seed + 7919)
    appeal = rng.normal(0.0, 0.6, N_ADS)
    activity = rng.gamma(2.0, 0.5, N_USERS)
    impressions = rng.integers(50, 2000, N_ADS)
    # Historical CTR: clicks over impressions at the ad's base rate (a noisy view of its appeal).
    clicks = rng.binomial(impressions, _sigmoid(-1.7 + appeal))
    clicks_7d = rng.poisson(3.0 * activity)
    ads = {f"ad{i}": float(a) for i, a in enumerate(appeal)}
    users = {f"u{i}": float(a) for i, a in enumerate(activity)}
    tables = {
        "ad": {f"ad{i}": {"ad_ctr": round(float(c / n), 6)} for i, (c, n) in enumerate(zip(clicks, impressions))},
        "user": {f"u{i}": {"user_clicks_7d": float(k)} for i, k in enumerate(clicks_7d)},
    }
    history = {f"ad{i}": (int(c), int(n)) for i, (c, n) in enumerate(zip(clicks, impressions))}
    return World(ads, users, tables, history)


def true_probabilities(batch: RawBatch, world: World) -> dict[str, np.ndarray]:
    """The ground-truth probability of each label for each row."""
    appeal = _lookup(batch.ad_id, world.ad_appeal)
    activity = _lookup(batch.user_id, world.user_activity)
    return {label: _sigmoid(z) for label, z in _logits(batch, appeal, activity).items()}


APPEAL_GRID = np.linspace(-3.0, 3.0, 61)
ACTIVITY_GRID = np.linspace(0.02, 6.0, 60)


def _posterior_grid(log_likelihood: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    log_post = log_likelihood + log_prior
    post = np.exp(log_post - log_post.max(axis=-1, keepdims=True))
    return post / post.sum(axis=-1, keepdims=True)


def observable_probabilities(batch: RawBatch, world: World, chunk: int = 2048) -> dict[str, np.ndarray]:
    """The best any model can do from what the data carries: each label's probability averaged
    over what an ad's appeal and a user's activity may be given the store's observations of them
    (the ad's clicks over its impressions, the user's clicks over 7 days; posteriors on grids).
    The ground truth uses the latent traits themselves, which no feature carries exactly, so
    its AUC is above what any model of these features can reach; this is the reachable optimum."""
    clicks, impressions = (np.array([world.ad_history.get(a, (0, 0))[k] for a in batch.ad_id], dtype=np.float64) for k in (0, 1))
    base = _sigmoid(-1.7 + APPEAL_GRID)  # [G] the click rate behind the ad's history at each appeal
    appeal_post = _posterior_grid(clicks[:, None] * np.log(base) + (impressions - clicks)[:, None] * np.log1p(-base),
                                  -0.5 * (APPEAL_GRID / 0.6) ** 2)  # prior N(0, 0.6^2)
    seen = np.nan_to_num(batch.user_clicks_7d.astype(np.float64), nan=-1.0)
    rate = 3.0 * ACTIVITY_GRID  # clicks over 7 days ~ Poisson(3 x activity); prior Gamma(2, scale 0.5)
    activity_post = np.where(seen[:, None] >= 0,
                             _posterior_grid(np.maximum(seen, 0)[:, None] * np.log(rate) - rate, np.log(ACTIVITY_GRID) - 2 * ACTIVITY_GRID),
                             _posterior_grid(np.zeros((1, len(ACTIVITY_GRID))), np.log(ACTIVITY_GRID) - 2 * ACTIVITY_GRID))
    zero = np.zeros(len(batch))
    out = {label: np.empty(len(batch)) for label in LABELS}
    for start in range(0, len(batch), chunk):
        rows = slice(start, start + chunk)
        part = batch.take(np.arange(start, min(start + chunk, len(batch))))
        n = len(part)
        # Each label's logit is base + (its appeal term) + (its activity term): evaluate on the grid.
        at_zero = _logits(part, zero[:n], zero[:n])
        by_appeal = [_logits(part, np.full(n, a), zero[:n]) for a in APPEAL_GRID]
        by_activity = [_logits(part, zero[:n], np.full(n, u)) for u in ACTIVITY_GRID]
        for label in LABELS:
            appeal_terms = np.stack([z[label] - at_zero[label] for z in by_appeal], axis=1)
            activity_terms = np.stack([z[label] - at_zero[label] for z in by_activity], axis=1)
            z = at_zero[label][:, None, None] + appeal_terms[:, :, None] + activity_terms[:, None, :]
            out[label][rows] = np.einsum("nij,ni,nj->n", _sigmoid(z), appeal_post[rows], activity_post[rows])
    return out


def _logits(batch: RawBatch, appeal: np.ndarray, activity: np.ndarray) -> dict[str, np.ndarray]:
    hour = np.nan_to_num(batch.hour, nan=12.0)
    age = (np.nan_to_num(batch.age, nan=38.0) - 32.0) / 20.0
    working_hours = ((hour >= 9) & (hour <= 17)).astype(np.float64)
    evening = ((hour >= 18) & (hour <= 22)).astype(np.float64)
    quality = batch.quality_score - 0.5
    log_bid = np.log1p(batch.bid_amount)
    search_on_search = ((batch.page_type == "search") & (batch.data_type == "search")).astype(np.float64)
    device = _lookup(batch.device_type, {"mobile": 0.35, "desktop": 0.0, "tablet": -0.2})
    page = _lookup(batch.page_type, {"search": 0.4, "content": -0.1, "social": 0.1})
    category = _lookup(batch.category, {"electronics": 0.3, "fashion": 0.2, "travel": -0.1, "finance": -0.4, "gaming": 0.5, "food": 0.1})
    data_type = _lookup(batch.data_type, {"search": 0.3, "display": -0.4, "conversion": 0.0})
    location = _lookup(batch.location, {"US": 0.2, "EU": 0.0, "ASIA": 0.1})

    click = (
        -1.7 + appeal + 2.2 * quality + device + page + category + data_type + location
        + 0.5 * working_hours + 0.3 * evening - age**2 + 0.6 * search_on_search + 0.15 * log_bid
        + 0.2 * np.tanh(activity - 1.0)
    )
    conversion = (
        -2.4 + 0.5 * appeal + 1.2 * quality + 0.6 * (batch.device_type == "desktop") + 0.8 * age * (batch.gender == "f")
        + _lookup(batch.category, {"finance": 0.7, "travel": 0.5, "electronics": 0.2, "gaming": -0.3})
        + 0.6 * (batch.data_type == "conversion") - 0.5 * evening + 0.4 * log_bid
    )
    engagement = (
        -1.2 + 3.0 * quality + 0.8 * np.tanh(2.0 * quality) * (batch.page_type == "social")
        + 0.4 * (batch.device_type == "mobile") - 0.5 * age + 0.3 * np.sin(2 * np.pi * hour / 24.0)
        + 0.6 * activity
    )
    return {"click": click, "conversion": conversion, "engagement": engagement}


@dataclass(frozen=True)
class Dataset:
    batch: RawBatch  # with the store's lookups merged in
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


def _with_missing(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    out = values.astype(np.float64).copy()
    out[rng.random(len(out)) < rate] = np.nan
    return out


def sample_batch(n: int, rng: np.random.Generator, missing: bool = True) -> RawBatch:
    """Raw rows as a request would bring them (no store lookups yet)."""
    age = np.clip(rng.normal(38.0, 12.5, size=n).round(), 18, 80)
    hour = rng.integers(0, 24, size=n).astype(np.float64)
    return RawBatch(
        data_type=rng.choice(np.array(DATA_TYPES, dtype=object), size=n, p=[0.5, 0.35, 0.15]),
        user_id=np.array([f"u{i}" for i in rng.integers(0, N_USERS, size=n)], dtype=object),
        age=_with_missing(age, MISSING_RATE["age"], rng) if missing else age,
        gender=rng.choice(GENDERS, size=n, p=[0.48, 0.48, 0.04]),
        location=rng.choice(LOCATIONS, size=n, p=[0.4, 0.3, 0.25, 0.05]),
        device_type=rng.choice(DEVICES, size=n, p=[0.55, 0.35, 0.10]),
        hour=_with_missing(hour, MISSING_RATE["hour"], rng) if missing else hour,
        day_of_week=rng.integers(0, 7, size=n).astype(np.float64),
        page_type=rng.choice(PAGES, size=n),
        ad_id=np.array([f"ad{i}" for i in rng.integers(0, N_ADS, size=n)], dtype=object),
        category=rng.choice(CATEGORIES, size=n, p=[0.2, 0.2, 0.15, 0.15, 0.12, 0.13, 0.05]),
        bid_amount=np.round(rng.lognormal(0.6, 0.5, size=n), 2),
        quality_score=np.round(rng.beta(5.0, 3.0, size=n), 3),
        ad_ctr=np.full(n, np.nan),
        user_clicks_7d=np.full(n, np.nan),
    )


def generate(n: int, seed: int = 0, world: World | None = None) -> Dataset:
    rng = np.random.default_rng(seed)
    world = world or make_world(seed)
    batch = merge_lookups(sample_batch(n, rng), world.store_tables["ad"], world.store_tables["user"])
    true_p = true_probabilities(batch, world)
    labels = {k: (rng.random(n) < p).astype(np.float32) for k, p in true_p.items()}
    return Dataset(batch, labels, true_p)


def sample_request(n_candidates: int, data_type: str, seed: int = 0) -> tuple[Context, CandidateColumns]:
    """One realistic request: a context and `n_candidates` ads (for `scoremesh score`, tests)."""
    rng = np.random.default_rng(seed)
    row = sample_batch(1, rng, missing=False)
    ads = sample_batch(n_candidates, rng, missing=False)
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
