"""Build raw batches for tests with only the columns that matter."""

from __future__ import annotations

import numpy as np

from domain.features.raw import CATEGORICAL_FIELDS, RawBatch


def raw_batch(n: int, **columns) -> RawBatch:
    full = {}
    for name in RawBatch.__dataclass_fields__:
        if name in columns:
            dtype = object if name in CATEGORICAL_FIELDS else np.float64
            full[name] = np.asarray(columns[name], dtype=dtype)
        elif name in CATEGORICAL_FIELDS:
            full[name] = np.full(n, "", dtype=object)
        else:
            full[name] = np.full(n, np.nan)
    return RawBatch(**full)
