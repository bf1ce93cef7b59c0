"""Plots for the benchmarks, when matplotlib is installed (the dev extra has it)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on a file-only backend, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
