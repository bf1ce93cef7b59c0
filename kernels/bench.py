"""Benchmark of the fused ensemble kernel: `python -m kernels.bench [--modes bf16,tf32] [--out DIR]`.

For B in {1, 32, 256, 4096, 65536}, D = 256 and M = 8 members of H = 128 (plus a mixed-H
ensemble, and the shipped models' shapes: D = 99, 2-3 members of 0-32 units), in each mode
(bf16, fp16, tf32 = float32 inputs on tensor cores, fp32 = IEEE float32) it reports:
- the fused kernel's median time, tuned for the batch first (kernels/tuning.py), its rows/s,
  TFLOP/s, GB/s and percent of the binding roofline: the larger of FLOPs over this device's
  measured matmul rate in that mode and bytes over its measured copy bandwidth;
- the same function in eager PyTorch and through `torch.compile`, in the same dtype and matmul
  precision, with no host synchronisation inside (the weights' sums are computed once outside);
- each timed two ways: as a Python caller launches it (`do_bench`, CUDA events), and replayed
  from a CUDA graph (`do_bench_cudagraph`: the GPU's work without launch gaps);
- the accuracy of each mode against a float64 reference (max |score error|).
Inputs rotate past the L2 cache and are never zeros. Writes JSON (device, versions, every
number), a markdown table and a plot. GPU only: interpreter timings would mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

BATCHES = (1, 32, 256, 4096, 65536)
D = 256
UNIFORM_H = (128,) * 8
MIXED_H = (0, 16, 32, 64, 128, 192, 256, 0)  # logistic regressions beside MLPs of many widths
SHIPPED = {  # training/train.py's ensembles over the ads schema (99 features)
    "ctr_ensemble": (0, 32),
    "cvr_ensemble": (8, 16),
    "quality_ensemble": (0, 24, 8),
}
SHIPPED_D = 99
SHIPPED_BATCHES = (1, 32, 256, 1024)
MODES = {  # name -> (input dtype, precision for float32 inputs)
    "bf16": (torch.bfloat16, "tf32"),
    "fp16": (torch.float16, "tf32"),
    "tf32": (torch.float32, "tf32"),
    "fp32": (torch.float32, "ieee"),
}


@dataclass
class Row:
    ensemble: str
    mode: str
    batch: int
    d: int
    us: float
    graph_us: float
    rows_per_s: float
    tflops: float
    gbps: float
    bound: str
    pct_roofline: float
    eager_us: float
    eager_graph_us: float
    compiled_us: float
    compiled_graph_us: float
    max_abs_error: float
    config: str


def _ensemble(hidden: tuple[int, ...], d: int = D, seed: int = 0):
    from kernels.packing import CombineSpec, MemberWeights, pack

    g = torch.Generator().manual_seed(seed)
    members = []
    for i, h in enumerate(hidden):
        if h == 0:
            members.append(MemberWeights(f"m{i}", None, None, torch.randn(d, generator=g) / 16, 0.0))
        else:
            members.append(MemberWeights(f"m{i}", torch.randn(h, d, generator=g) / 16, torch.randn(h, generator=g) / 10, torch.randn(h, generator=g) / 8, 0.0))
    return pack(members, d, CombineSpec("weighted_average", weights=tuple(1.0 + 0.1 * i for i in range(len(hidden)))))


def _flops_and_bytes(batch: int, hidden: tuple[int, ...], itemsize: int, d: int = D) -> tuple[float, float]:
    """Useful FLOPs (both layers) and the fewest bytes: x read once, outputs written once, weights read once."""
    total_h = sum(hidden)
    linear = sum(1 for h in hidden if h == 0)
    flops = 2.0 * batch * d * (total_h + linear) + 2.0 * batch * total_h
    moved = batch * d * itemsize + batch * (len(hidden) + 2) * 4 + d * (total_h + len(hidden)) * itemsize
    return flops, moved


def measure_ceilings() -> dict[str, float]:
    """This device's dense matmul rate per mode (FLOP/s) and copy bandwidth (bytes/s), measured."""
    import triton.testing

    rates = {}
    for mode, (dtype, precision) in MODES.items():
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        a = torch.randn(8192, 8192, device="cuda").to(dtype)
        b = torch.randn(8192, 8192, device="cuda").to(dtype)
        rates[mode] = 2 * 8192**3 / (triton.testing.do_bench(lambda: a @ b, return_mode="median") * 1e-3)
    torch.backends.cuda.matmul.allow_tf32 = False
    src = torch.randn(1 << 28, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    rates["copy"] = 2 * src.numel() * 4 / (triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median") * 1e-3)
    return rates


def eager_scoring(packed, dtype: torch.dtype):
    """The ensemble in plain PyTorch ops, matmuls in `dtype`, the rest float32, weighted-average
    combination and confidence; everything that does not depend on x prepared here."""
    w_linear, w_hidden = packed.w_linear.to(dtype), packed.w_hidden.to(dtype)
    weights = packed.weights / packed.weights.sum()
    has_hidden = packed.w_hidden.shape[1] > 0

    def score(x):
        logits = (x @ w_linear).float() + packed.b_out
        if has_hidden:
            hidden = torch.relu((x @ w_hidden).float() + packed.b_hidden)
            logits = logits.index_add(1, packed.hidden_member, hidden * packed.w_out)
        logits = packed.cal_a * logits + packed.cal_b
        p = torch.sigmoid(logits)
        confidence = (1.0 / (1.0 + p.var(dim=1, unbiased=False)) + torch.maximum(p, 1 - p).mean(dim=1)) / 2.0
        return p @ weights, p, confidence

    return score


def reference64(x: torch.Tensor, packed) -> torch.Tensor:
    """The ensemble's score in float64 (the accuracy oracle)."""
    x = x.double()
    logits = x @ packed.w_linear.double() + packed.b_out.double()
    if packed.w_hidden.shape[1]:
        hidden = torch.relu(x @ packed.w_hidden.double() + packed.b_hidden.double())
        logits = logits.index_add(1, packed.hidden_member, hidden * packed.w_out.double())
    p = torch.sigmoid(packed.cal_a.double() * logits + packed.cal_b.double())
    return p @ (packed.weights.double() / packed.weights.double().sum())


def _graph_us(fn) -> float:
    from kernels.tuning import gpu_time_ms

    try:
        return 1e3 * gpu_time_ms(fn)
    except Exception as error:  # a baseline that cannot be captured is reported, not fatal
        print(f"  (graph capture failed: {type(error).__name__}: {str(error)[:120]})")
        return math.nan


def run(modes: list[str], out_dir: Path, shapes: str = "all") -> list[Row]:
    import triton
    import triton.testing

    from kernels.fused_scoring import score_triton
    from kernels.fused_scoring import tuned_config
    from kernels.tuning import bucket_of, tune

    name = torch.cuda.get_device_name()
    ceilings = measure_ceilings()
    print(f"device: {name}; measured copy {ceilings['copy'] / 1e12:.2f} TB/s; matmul "
          + ", ".join(f"{m} {ceilings[m] / 1e12:.0f} TFLOP/s" for m in MODES), flush=True)
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    cache = out_dir / "kernel-tuning.json"
    suites = []
    if shapes in ("all", "synthetic"):
        suites += [("uniform H=128", UNIFORM_H, D, BATCHES), ("mixed H", MIXED_H, D, BATCHES)]
    if shapes in ("all", "shipped"):
        suites += [(label, hidden, SHIPPED_D, SHIPPED_BATCHES) for label, hidden in SHIPPED.items()]
    rows = []
    for mode in modes:
        dtype, precision = MODES[mode]
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"  # the baselines' matmuls in the same mode
        itemsize = torch.finfo(dtype).bits // 8
        for label, hidden, d, batches in suites:
            packed = _ensemble(hidden, d).to("cuda")
            eager = eager_scoring(packed, dtype)
            compiled = torch.compile(eager)
            tune(packed, dtype, "cuda", [bucket_of(b) for b in batches], cache, precision)
            for batch in batches:
                size = batch * d * itemsize
                copies = max(1, min(64, math.ceil(4 * l2 / size)))  # rotate inputs past the L2 cache
                xs = [torch.randn(batch, d, device="cuda").to(dtype) for _ in range(copies)]
                turn = {"i": 0}

                def cycle(fn):
                    def call():
                        turn["i"] = (turn["i"] + 1) % copies
                        return fn(xs[turn["i"]])
                    return call

                fused = lambda x: score_triton(x, packed, precision=precision)  # noqa: E731
                poisoned = [torch.full((batch,), math.nan, device="cuda"), torch.full((batch, len(hidden)), math.nan, device="cuda"),
                            torch.full((batch,), math.nan, device="cuda")]
                score_triton(xs[0], packed, out=tuple(poisoned), precision=precision)
                assert all(bool(torch.isfinite(t).all()) for t in poisoned), "the kernel left outputs unwritten"
                error = (poisoned[0].double() - reference64(xs[0], packed)).abs().max().item()
                assert error < 1e-2, f"{label} {mode} B={batch}: kernel disagrees with float64 by {error}"
                compiled(xs[0])  # compile outside the timings
                us = 1e3 * triton.testing.do_bench(cycle(fused), return_mode="median")
                graph_us = _graph_us(cycle(fused))
                eager_us = 1e3 * triton.testing.do_bench(cycle(eager), return_mode="median")
                eager_graph_us = _graph_us(cycle(eager))
                compiled_us = 1e3 * triton.testing.do_bench(cycle(compiled), return_mode="median")
                compiled_graph_us = _graph_us(cycle(compiled))
                flops, moved = _flops_and_bytes(batch, hidden, itemsize, d)
                best = graph_us if graph_us == graph_us else us
                compute_floor, memory_floor = flops / ceilings[mode], moved / ceilings["copy"]
                bound = "compute" if compute_floor >= memory_floor else "memory"
                pct = 100 * max(compute_floor, memory_floor) / (best * 1e-6)
                config = tuned_config(packed, dtype, precision, batch)
                row = Row(label, mode, batch, d, us, graph_us, batch / (best * 1e-6), flops / (best * 1e-6) / 1e12,
                          moved / (best * 1e-6) / 1e9, bound, pct, eager_us, eager_graph_us, compiled_us, compiled_graph_us,
                          error, str(config))
                rows.append(row)
                print(f"{label:16} {mode:4} B={batch:6} {us:8.1f} us (graph {graph_us:8.1f})  {row.tflops:6.1f} TFLOP/s "
                      f"{pct:5.1f}% of {bound} roofline  eager x{eager_us / us:5.1f} (graph x{eager_graph_us / graph_us:5.1f})  "
                      f"compile x{compiled_us / us:5.1f} (graph x{compiled_graph_us / graph_us:5.1f})  err {error:.1e}  {config}", flush=True)
                write_report(rows, name, ceilings, out_dir, quiet=True)  # a run cut short still leaves its rows
            torch._dynamo.reset()
    torch.backends.cuda.matmul.allow_tf32 = False
    write_report(rows, name, ceilings, out_dir)
    return rows


def write_report(rows: list[Row], device: str, ceilings: dict[str, float], out_dir: Path, quiet: bool = False) -> None:
    import triton

    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"device": device, "torch": torch.__version__, "triton": triton.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "ceilings": ceilings}
    (out_dir / "kernel-bench.json").write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=1))
    lines = [
        f"# Fused ensemble kernel on {device}",
        "",
        f"torch {meta['torch']}, triton {meta['triton']}, CUDA {meta['cuda']}. Measured ceilings: copy "
        f"{ceilings['copy'] / 1e12:.2f} TB/s; matmul " + ", ".join(f"{m} {ceilings[m] / 1e12:.0f} TFLOP/s" for m in MODES) + ".",
        "Times are medians in microseconds: 'launch' as a Python caller sees it (CUDA events around back-to-back calls),",
        "'graph' replayed from a CUDA graph (the GPU's work alone). Speed-ups compare like with like.",
        "",
        "Rows/s, TFLOP/s and % of roofline are of the graph time.",
        "",
        "| ensemble | mode | B | launch (us) | graph (us) | rows/s | TFLOP/s | % of roofline (bound) | vs eager (launch / graph) | vs torch.compile (launch / graph) | max abs error vs fp64 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.ensemble} | {r.mode} | {r.batch} | {r.us:.1f} | {r.graph_us:.1f} | {r.rows_per_s:.3g} | {r.tflops:.1f} | "
            f"{r.pct_roofline:.1f} ({r.bound}) | {r.eager_us / r.us:.1f}x / {r.eager_graph_us / r.graph_us:.1f}x | "
            f"{r.compiled_us / r.us:.1f}x / {r.compiled_graph_us / r.graph_us:.1f}x | {r.max_abs_error:.1e} |"
        )
    (out_dir / "kernel-bench.md").write_text("\n".join(lines) + "\n")
    if quiet:
        return
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("us", "graph_us")):
        for label, mode in dict.fromkeys((r.ensemble, r.mode) for r in rows if r.d == D):
            sel = [r for r in rows if r.ensemble == label and r.mode == mode]
            line, = ax.plot([r.batch for r in sel], [getattr(r, key) for r in sel], "-o", label=f"{label} {mode}: fused")
            ax.plot([r.batch for r in sel], [getattr(r, "eager_us" if key == "us" else "eager_graph_us") for r in sel], "--x", color=line.get_color(), alpha=0.6)
            ax.plot([r.batch for r in sel], [getattr(r, "compiled_us" if key == "us" else "compiled_graph_us") for r in sel], ":s", color=line.get_color(), alpha=0.6)
        ax.set(xscale="log", yscale="log", xlabel="batch rows", ylabel="time (us)",
               title=f"{'launch' if key == 'us' else 'CUDA graph'}: fused (-o), eager (--x), compile (:s)")
        ax.legend(fontsize=6)
    fig.suptitle(f"Ensemble scoring on {device}, D={D}, M=8")
    fig.tight_layout()
    fig.savefig(out_dir / "kernel-bench.png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="bf16,tf32", help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--shapes", choices=["all", "synthetic", "shipped"], default="all")
    parser.add_argument("--out", type=Path, default=Path("bench-results/gpu"))
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown modes {unknown}; choose from {list(MODES)}")
    if not torch.cuda.is_available():
        print("kernels.bench needs a CUDA GPU: on a CPU the Triton interpreter's timings say nothing about the kernel. "
              "Run it on a GPU machine.", file=sys.stderr)
        return 2
    from kernels._triton import interpreting

    if interpreting():
        print("kernels.bench: unset TRITON_INTERPRET; interpreted kernels cannot be timed meaningfully.", file=sys.stderr)
        return 2
    run(modes, args.out, args.shapes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
