"""Kernel configs tuned once per model load, for every batch bucket the batcher can form, and
cached on disk across restarts.

Why not `triton.autotune`: it tunes on the first live call of each new key (traffic pays for it,
with a dozen configs compiled and timed in the request's path), its per-kernel state is shared by
every thread that launches, and the split count it would pick decides the size of a scratch
buffer the launcher must allocate before the launch. Here tuning is an explicit step at load:
each candidate is timed on the GPU alone (CUDA-graph replays, CUDA events, median), the winner per
power-of-two bucket is kept on the ensemble and written to a JSON file keyed by everything that
changes the answer (device, Triton version, dtype, precision, D, sum(H), padded M, linear members,
bucket), so a restart or a second replica on the same GPU only reads it. Workers of one instance
start together: a file lock beside the cache lets one tune (on a GPU nobody else is timing on)
while the others wait and then read its picks. A pick read from the cache is still launched once
at load, which compiles it: the first live batch of a bucket must not wait for Triton.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path

import torch
import triton
from filelock import FileLock

from kernels._triton import interpreting, next_power_of_2
from kernels.fused_scoring import KernelConfig, hidden_slices, m_pad, multiprocessors, score_triton, tuned_table
from kernels.packing import PackedEnsemble

log = logging.getLogger(__name__)

BLOCK_B = (16, 32, 64, 128)
BLOCK_H = (32, 64, 128)
BLOCK_D = (64, 128)
MAX_RESIDENT_D = 256
Measure = Callable[[KernelConfig, Callable[[], object]], float]  # (config, its launch) -> ms
Compile = Callable[[KernelConfig, Callable[[], object]], object]  # (config, its launch): compile it


def buckets_up_to(rows: int) -> list[int]:
    """Every power-of-two bucket a batch of 1..rows rows falls in."""
    return [1 << i for i in range(next_power_of_2(max(1, rows)).bit_length())]


def bucket_of(batch: int) -> int:
    return next_power_of_2(batch)


def candidates(bucket: int, packed: PackedEnsemble, sms: int) -> list[KernelConfig]:
    """A pruned space: row blocks no larger than the bucket needs (at most the three largest that
    fit), hidden slices no wider than the hidden layer, and for each the split counts worth
    trying — none, enough programs to cover the multiprocessors once, and one split per slice."""
    hidden, d = int(packed.w_hidden.shape[1]), packed.input_dim
    block_bs = [b for b in BLOCK_B if b <= max(16, bucket)][-3:]
    block_hs = [h for h in BLOCK_H if h <= max(32, next_power_of_2(hidden))][-2:]
    block_ds = [b for b in BLOCK_D if b < next_power_of_2(d)]  # a loop over D, x re-read per slice
    resident = next_power_of_2(d)  # the whole x tile on chip, loaded once (kernels/fused_scoring.py)
    shapes = [(b, 3) for b in block_ds] + ([(resident, 2), (resident, 3)] if resident <= MAX_RESIDENT_D else [])
    found: list[KernelConfig] = []
    for block_b in block_bs:
        warps = 4 if block_b <= 64 else 8
        row_blocks = triton.cdiv(bucket, block_b)
        for block_h in block_hs:
            slices = hidden_slices(packed, block_h)
            cover = next_power_of_2(max(1, sms // row_blocks))
            for splits in sorted({1, min(slices, cover), slices}):
                for block_d, stages in shapes:
                    found.append(KernelConfig(block_b, block_h, block_d, splits, warps, stages))
    return found


def _key(device: torch.device, dtype: torch.dtype, precision: str, packed: PackedEnsemble, bucket: int) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    hidden = int(packed.w_hidden.shape[1])
    linear = any(h == 0 for h in packed.hidden_sizes)
    return (f"{name}|triton {triton.__version__}|{str(dtype).removeprefix('torch.')}|{precision}|"
            f"D{packed.input_dim}|H{hidden}|M{m_pad(packed.members)}|linear {linear}|B{bucket}")


def _read(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:  # a damaged cache is re-tuned, never fatal
        log.warning("kernel tuning cache %s unreadable (%s); tuning again", path, error)
        return {}


def _write(path: Path, entries: dict) -> None:
    """Merge into the file (other models' entries stay) and replace it atomically."""
    merged = {**_read(path), **entries}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(merged, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def gpu_time_ms(fn: Callable[[], object], calls: int = 20, replays: int = 10) -> float:
    """Median GPU time of one call, from replays of a CUDA graph of `calls` calls: what the
    kernel costs without the Python launch gaps (the same for every config, so not what tuning
    should weigh). The first call (compile, scratch for this stream) runs outside the capture."""
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        fn()
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        # thread_local: a model loading while others serve must not fail their launches on the
        # dispatcher thread (the default, global, forbids unsafe CUDA calls in every thread).
        with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
            for _ in range(calls):
                fn()
        graph.replay()
        times = []
        for _ in range(replays):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            graph.replay()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end) / calls)
    return sorted(times)[len(times) // 2]


def _gpu_time(config: KernelConfig, launch: Callable[[], object]) -> float:
    return gpu_time_ms(launch)


def _compile(config: KernelConfig, launch: Callable[[], object]) -> None:
    launch()  # the first launch of a config compiles it; Triton keeps it for every later one


def _fastest(x: torch.Tensor, packed: PackedEnsemble, precision: str, measure: Measure) -> tuple[float, KernelConfig] | None:
    """The fastest candidate for a batch like `x` (None if none fits this GPU)."""
    best: tuple[float, KernelConfig] | None = None
    for config in candidates(int(x.shape[0]), packed, multiprocessors(x.device)):
        try:
            took = measure(config, functools.partial(score_triton, x, packed, config=config, precision=precision))
        except (triton.runtime.errors.OutOfResources, torch.cuda.OutOfMemoryError):
            continue
        if best is None or took < best[0]:
            best = (took, config)
    return best


def tune(packed: PackedEnsemble, dtype: torch.dtype, device: torch.device | str, buckets: Iterable[int],
         cache: Path | None = None, precision: str = "ieee", measure: Measure = _gpu_time,
         compile_config: Compile = _compile) -> dict[int, KernelConfig]:
    """Pick a config per bucket (from the cache where it has one, else by timing `candidates`),
    keep them on the ensemble for `score_triton`, and write new picks to `cache`. Every pick is
    compiled before this returns."""
    device = torch.device(device)
    table = tuned_table(packed, dtype, precision)
    if interpreting() and measure is _gpu_time:  # interpreter timings say nothing: the default serves
        return table
    # One tuner at a time per cache (the workers of an instance, replicas on one GPU): timings
    # taken while another process tunes would be the two's together, and the work is the same.
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{cache}.lock") if cache is not None else nullcontext():
        stored, new = _read(cache), {}
        generator = torch.Generator(device="cpu").manual_seed(0)
        for bucket in buckets:
            key = _key(device, dtype, precision, packed, bucket)
            x = torch.randn(bucket, packed.input_dim, generator=generator).to(device=device, dtype=dtype)  # never zeros
            if key in stored:
                try:
                    config = KernelConfig(**stored[key])
                    compile_config(config, functools.partial(score_triton, x, packed, config=config, precision=precision))
                    table[bucket] = config
                    continue
                except (TypeError, triton.runtime.errors.OutOfResources):
                    pass  # written by another version of this code, or for another GPU budget: tune again
            best = _fastest(x, packed, precision, measure)
            if best is None:
                continue
            table[bucket] = best[1]
            new[key] = dataclasses.asdict(best[1])
            log.info("tuned %s: %.1f us with %s", key, best[0] * 1e3, best[1])
        if new and cache is not None:
            _write(cache, new)
    return table
