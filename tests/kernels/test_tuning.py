"""Tuning at load: the candidate space, the pick, the on-disk cache and the bucket lookup. The
timing itself is the GPU's (kernels.bench and the native kernel tests use it); here a cost
model stands in for the clock so the choice and the cache are checked exactly on any machine."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import torch

from kernels.fused_scoring import KernelConfig, hidden_slices, tuned_config
from kernels.tuning import bucket_of, buckets_up_to, candidates, tune
from tests.kernels.test_fused_scoring import make_ensemble


def test_buckets_cover_every_batch_the_batcher_can_form():
    assert buckets_up_to(1024) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert buckets_up_to(1000)[-1] == 1024 and buckets_up_to(1) == [1]
    assert [bucket_of(n) for n in (1, 3, 4, 5, 1000)] == [1, 4, 4, 8, 1024]


def test_candidates_fit_the_bucket_and_the_ensemble():
    packed = make_ensemble(256, (128,) * 8, "averaging")
    small = candidates(1, packed, sms=132)
    assert {c.block_b for c in small} == {16}
    big = candidates(65536, packed, sms=132)
    assert {c.block_b for c in big} == {32, 64, 128}
    assert {c.block_d for c in big} == {64, 128, 256}  # 256: x resident on chip
    for config in small + big:
        assert 1 <= config.splits <= hidden_slices(packed, config.block_h)
    assert 0 < len(big) <= 72
    # One row block of 16 rows: no split, or one per slice (more than enough to cover 132 SMs).
    assert {c.splits for c in small if c.block_h == 128} == {1, 8}
    assert {c.splits for c in small if c.block_h == 64} == {1, 16}
    # 512 row blocks of 128 rows already cover the SMs: splitting is tried, not forced.
    assert {c.splits for c in big if c.block_b == 128 and c.block_h == 128} == {1, 8}
    wide = make_ensemble(300, (64,), "averaging")
    assert all(c.block_d < 300 for c in candidates(64, wide, sms=132))  # no resident tile past 256


def cost(config: KernelConfig, launch) -> float:
    """A stand-in clock that favours two splits of 32-row blocks."""
    return abs(config.splits - 2) + abs(config.block_b - 32) / 16 + config.block_d / 1000


def test_tune_picks_the_fastest_config_per_bucket_and_caches_it(tmp_path):
    cache = tmp_path / "tuning.json"
    packed = make_ensemble(37, (0, 40, 24), "averaging")
    table = tune(packed, torch.float32, "cpu", [1, 64], cache, measure=cost)
    assert table[64].splits == 2 and table[64].block_b == 32
    assert table[1].block_b == 16 and table[1].splits == 2
    stored = json.loads(cache.read_text())
    assert len(stored) == 2 and all("|D37|H64|M16|linear True|" in key for key in stored)

    def must_not_time(config, launch):
        raise AssertionError("the cached pick should have been used")

    compiled = []
    again = make_ensemble(37, (0, 40, 24), "averaging")  # same shapes: a restart, or another replica
    assert tune(again, torch.float32, "cpu", [1, 64], cache, measure=must_not_time,
                compile_config=lambda config, launch: compiled.append(config)) == table
    assert compiled == [table[1], table[64]]  # read from the cache, still compiled at load
    other = make_ensemble(37, (0, 40, 24), "averaging")
    tune(other, torch.bfloat16, "cpu", [64], cache, measure=cost)  # another dtype: its own entry
    assert len(json.loads(cache.read_text())) == 3


def test_workers_tuning_together_time_once_and_share_the_picks(tmp_path):
    """The second tuner waits for the first (one at a time on a GPU: timings would be the two's
    together) and then reads its picks instead of timing the same candidates again."""
    cache = tmp_path / "state" / "tuning.json"
    first_timing, release = threading.Event(), threading.Event()
    timed: list[str] = []

    def slow_cost(config, launch):
        timed.append(threading.current_thread().name)
        first_timing.set()
        assert release.wait(10)
        return cost(config, launch)

    results: dict[str, dict] = {}

    def worker(name: str) -> None:
        results[name] = tune(make_ensemble(37, (0, 40, 24), "averaging"), torch.float32, "cpu", [8], cache,
                             measure=slow_cost, compile_config=lambda config, launch: None)

    first = threading.Thread(target=worker, args=("first",), name="first")
    first.start()
    assert first_timing.wait(10)
    second = threading.Thread(target=worker, args=("second",), name="second")
    second.start()
    second.join(0.3)
    assert second.is_alive()  # waiting for the first tuner's lock
    release.set()
    first.join(10)
    second.join(10)
    assert set(timed) == {"first"} and results["second"] == results["first"] and results["first"][8].splits == 2


def test_lookup_by_bucket(tmp_path):
    packed = make_ensemble(37, (0, 40, 24), "averaging")
    assert tuned_config(packed, torch.float32, "ieee", 5) is None  # nothing tuned yet
    table = tune(packed, torch.float32, "cpu", [8, 64], None, measure=cost)
    assert tuned_config(packed, torch.float32, "ieee", 5) == table[8]
    assert tuned_config(packed, torch.float32, "ieee", 4000) == table[64]  # past the largest bucket
    assert tuned_config(packed, torch.float32, "ieee", 2) is None  # below: the default config
    assert tuned_config(packed, torch.float32, "tf32", 5) is None  # tuned per precision


def test_a_damaged_cache_is_tuned_again(tmp_path, caplog):
    cache = tmp_path / "tuning.json"
    cache.write_text("{not json")
    packed = make_ensemble(37, (0, 40, 24), "averaging")
    with caplog.at_level(logging.WARNING):
        table = tune(packed, torch.float32, "cpu", [4], cache, measure=cost)
    assert "unreadable" in caplog.text and table[4].splits == 2
    assert len(json.loads(cache.read_text())) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter's refusal")
def test_interpreted_kernels_are_not_timed():
    packed = make_ensemble(37, (0, 40, 24), "averaging")
    assert tune(packed, torch.float32, "cpu", [4]) == {}
