import subprocess
import sys

import pytest
import torch

from kernels.bench import MIXED_H, UNIFORM_H, _flops_and_bytes


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_benchmark_refuses_to_run_without_a_gpu():
    result = subprocess.run([sys.executable, "-m", "kernels.bench"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and result.stdout == ""


def test_flop_and_byte_counts():
    flops, moved = _flops_and_bytes(4096, UNIFORM_H, 2)
    assert flops == 2 * 4096 * 256 * 1024 + 2 * 4096 * 1024
    assert moved == 4096 * 256 * 2 + 4096 * 10 * 4 + 256 * (1024 + 8) * 2
    mixed_flops, _ = _flops_and_bytes(1, MIXED_H, 2)
    assert mixed_flops == 2 * 256 * (688 + 2) + 2 * 688
