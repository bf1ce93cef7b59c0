"""Where the kernels learn how Triton runs them (GPU or CPU interpreter)."""

from __future__ import annotations

import os
from functools import cache


@cache
def interpreting() -> bool:
    """True under TRITON_INTERPRET=1 (CPU interpreter), read once like Triton itself does."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()
