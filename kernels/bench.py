"""Benchmark of the fused ensemble kernel: `python -m kernels.bench [--dtype bf16] [--out DIR]`.

For B in {64, 512, 4096, 65536}, D = 256, M = 8 members with H = 128 each (and a mixed-H
ensemble), it reports the median time (triton.testing.do_bench), achieved TFLOP/s and GB/s, the
percent of the device's peak for the bound that limits the shape (dense bf16 tensor-core rate
or memory bandwidth, measured on the device and from the datasheet), and the speed-up against
eager PyTorch (the reference, and a native-dtype eager version) and against torch.compile of the
reference. Writes a markdown table and a plot. GPU only: on a CPU it refuses, since
interpreter timings would mean nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

BATCHES = (64, 512, 4096, 65536)
D = 256
UNIFORM_H = (128,) * 8
MIXED_H = (0, 16, 32, 64, 128, 192, 256, 0)  # logistic regressions beside MLPs of many widths

# Datasheet dense (no sparsity) bf16 tensor-core rates and memory bandwidths.
DATASHEET = {
    "H200": (989e12, 4.8e12),
    "H100 PCIe": (756e12, 2.0e12),
    "H100": (989e12, 3.35e12),
    "A100": (312e12, 2.0e12),
}


@dataclass
class Row:
    ensemble: str
    batch: int
    ms: float
    tflops: float
    gbps: float
    bound: str
    pct_peak: float
    pct_datasheet: float
    eager_ms: float
    eager_native_ms: float
    compiled_ms: float


def _ensemble(hidden: tuple[int, ...], seed: int = 0):
    from kernels.packing import CombineSpec, MemberWeights, pack

    g = torch.Generator().manual_seed(seed)
    members = []
    for i, h in enumerate(hidden):
        if h == 0:
            members.append(MemberWeights(f"m{i}", None, None, torch.randn(D, generator=g) / 16, 0.0))
        else:
            members.append(MemberWeights(f"m{i}", torch.randn(h, D, generator=g) / 16, torch.randn(h, generator=g) / 10, torch.randn(h, generator=g) / 8, 0.0))
    return pack(members, D, CombineSpec("weighted_average", weights=tuple(1.0 + 0.1 * i for i in range(len(hidden)))))


def _flops_and_bytes(batch: int, hidden: tuple[int, ...], itemsize: int) -> tuple[float, float]:
    total_h = sum(hidden)
    linear = sum(1 for h in hidden if h == 0)
    flops = 2.0 * batch * D * (total_h + linear) + 2.0 * batch * total_h  # both layers
    moved = batch * D * itemsize + batch * (len(hidden) + 2) * 4 + D * (total_h + len(hidden)) * itemsize
    return flops, moved


def measure_ceilings(dtype: torch.dtype) -> tuple[float, float]:
    """This device's dense matmul rate (FLOP/s) and copy bandwidth (bytes/s), measured."""
    import triton.testing

    a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    mm_ms = triton.testing.do_bench(lambda: a @ b, return_mode="median")
    src = torch.randn(1 << 28, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    copy_ms = triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")
    return 2 * 8192**3 / (mm_ms * 1e-3), 2 * src.numel() * 4 / (copy_ms * 1e-3)


def run(dtype: torch.dtype, out_dir: Path) -> list[Row]:
    import triton.testing

    from kernels.fused_scoring import member_logits_reference, score_triton
    from kernels.ensemble_combine import combine_reference

    name = torch.cuda.get_device_name()
    peak_flops, peak_bw = measure_ceilings(dtype)
    sheet = next((v for k, v in DATASHEET.items() if k in name), (math.nan, math.nan))
    print(f"device: {name}; measured {peak_flops / 1e12:.0f} TFLOP/s ({dtype}) and {peak_bw / 1e12:.2f} TB/s; datasheet {sheet[0] / 1e12:.0f} TFLOP/s, {sheet[1] / 1e12:.2f} TB/s")

    def reference(x, packed):
        logits = member_logits_reference(x, packed)
        p = torch.sigmoid(logits)
        return combine_reference(p, packed, logits)

    def native(x, packed):  # eager, matmuls in the input dtype (the fair eager baseline)
        logits = (x @ packed.w_linear.to(x.dtype)).float() + packed.b_out
        hidden = torch.relu((x @ packed.w_hidden.to(x.dtype)).float() + packed.b_hidden)
        logits = logits.index_add(1, packed.hidden_member, hidden * packed.w_out)
        logits = packed.cal_a * logits + packed.cal_b
        p = torch.sigmoid(logits)
        return combine_reference(p, packed, logits)

    compiled = torch.compile(reference)
    rows = []
    l2 = 64 << 20
    for label, hidden in (("uniform H=128", UNIFORM_H), ("mixed H", MIXED_H)):
        packed = _ensemble(hidden).rounded_to(dtype).to("cuda")
        for batch in BATCHES:
            size = batch * D * torch.finfo(dtype).bits // 8
            copies = max(1, min(32, math.ceil(4 * l2 / size)))  # rotate inputs past the L2 cache
            xs = [torch.randn(batch, D, device="cuda").to(dtype) for _ in range(copies)]
            turn = {"i": 0}

            def cycle(fn):
                def call():
                    turn["i"] = (turn["i"] + 1) % copies
                    return fn(xs[turn["i"]], packed)
                return call

            # correctness on this device before timing
            got = score_triton(xs[0], packed)
            want = reference(xs[0], packed)
            err = (got[0] - want[0]).abs().max().item()
            assert err < 5e-3, f"kernel disagrees with the reference by {err}"

            ms = triton.testing.do_bench(cycle(score_triton), return_mode="median")
            eager_ms = triton.testing.do_bench(cycle(reference), return_mode="median")
            native_ms = triton.testing.do_bench(cycle(native), return_mode="median")
            compiled_ms = triton.testing.do_bench(cycle(compiled), return_mode="median")
            flops, moved = _flops_and_bytes(batch, hidden, torch.finfo(dtype).bits // 8)
            t = ms * 1e-3
            compute_floor, memory_floor = flops / peak_flops, moved / peak_bw
            bound = "compute" if compute_floor >= memory_floor else "memory"
            pct = 100 * (compute_floor if bound == "compute" else memory_floor) / t
            sheet_floor = flops / sheet[0] if bound == "compute" else moved / sheet[1]
            rows.append(Row(label, batch, ms, flops / t / 1e12, moved / t / 1e9, bound, pct, 100 * sheet_floor / t, eager_ms, native_ms, compiled_ms))
            r = rows[-1]
            print(f"{label:14} B={batch:6} {ms * 1e3:9.1f} us  {r.tflops:7.1f} TFLOP/s  {r.gbps:7.0f} GB/s  {bound:7} {pct:5.1f}% of measured peak  x{eager_ms / ms:6.1f} eager  x{native_ms / ms:6.1f} eager-native  x{compiled_ms / ms:6.1f} compile", flush=True)
    write_report(rows, name, dtype, out_dir)
    return rows


def write_report(rows: list[Row], device: str, dtype: torch.dtype, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Fused ensemble kernel on {device} ({dtype}, D={D}, M=8)",
        "",
        "| ensemble | B | time (us) | TFLOP/s | GB/s | bound | % of peak (measured) | % of peak (datasheet) | vs eager | vs eager native | vs torch.compile |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.ensemble} | {r.batch} | {r.ms * 1e3:.1f} | {r.tflops:.1f} | {r.gbps:.0f} | {r.bound} | {r.pct_peak:.1f} | {r.pct_datasheet:.1f} | "
            f"{r.eager_ms / r.ms:.1f}x | {r.eager_native_ms / r.ms:.1f}x | {r.compiled_ms / r.ms:.1f}x |"
        )
    (out_dir / "kernel-bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for label in dict.fromkeys(r.ensemble for r in rows):
        sel = [r for r in rows if r.ensemble == label]
        for attr, style in (("ms", "-o"), ("eager_ms", "--x"), ("compiled_ms", ":s")):
            ax.plot([r.batch for r in sel], [getattr(r, attr) * 1e3 for r in sel], style, label=f"{label}: {attr.replace('_ms', '') if attr != 'ms' else 'triton'}")
    ax.set(xscale="log", yscale="log", xlabel="batch rows", ylabel="time (us)", title=f"Ensemble scoring on {device}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "kernel-bench.png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("kernels.bench needs a CUDA GPU: on a CPU the Triton interpreter's timings say nothing about the kernel. "
              "Run it on a GPU machine.", file=sys.stderr)
        return 2
    from kernels._triton import interpreting

    if interpreting():
        print("kernels.bench: unset TRITON_INTERPRET; interpreted kernels cannot be timed meaningfully.", file=sys.stderr)
        return 2
    run({"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
