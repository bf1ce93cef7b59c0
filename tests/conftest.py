"""Shared test set-up.

TRITON_INTERPRET must be set before any Triton kernel is imported (it is read when @triton.jit
runs), so it is set here, at the top of the root conftest, unless a GPU run asked otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
