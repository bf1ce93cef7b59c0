"""Shared test set-up.

TRITON_INTERPRET must be set before any Triton kernel is imported (it is read when @triton.jit
runs), so it is decided here, at the top of the root conftest: on a machine without a GPU the
kernels run under the CPU interpreter; with a GPU they run natively (unless the caller set it).
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
