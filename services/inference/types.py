"""The inference data plane's typed requests and responses: what the Open Inference Protocol
messages say, with tensors decoded to NumPy and no protobuf (converters.py maps the two)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    """A protocol datatype name (FP32, FP16, BF16, ...)."""
    data: np.ndarray
    """Of the tensor's shape; BF16 as its uint16 bit patterns (NumPy has no bfloat16)."""


@dataclass(frozen=True)
class InferenceRequest:
    model_name: str
    model_version: str = ""
    """Empty: the newest ready version."""
    id: str = ""
    inputs: tuple[Tensor, ...] = ()
    outputs: tuple[str, ...] = ()
    """Outputs asked for; empty: all of them."""
    parameters: dict[str, object] = field(default_factory=dict)
    deadline: float | None = None
    """time.monotonic() after which the caller no longer waits; None: no deadline."""


@dataclass(frozen=True)
class InferenceResponse:
    model_name: str
    model_version: str
    id: str
    outputs: tuple[Tensor, ...]
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]
    """-1 marks a variable-size dimension."""


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    version: str
    """The version described (the one asked for, or the newest ready one)."""
    versions: tuple[str, ...]
    """Every ready version."""
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    feature_schema: str
    """"name/version" of the feature schema this version was trained on."""
    stages: tuple[tuple[str, str], ...] = ()
    """(version, stage) of every ready version."""


@dataclass(frozen=True)
class ServerMetadata:
    name: str
    version: str
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class RepositoryEntry:
    name: str
    version: str
    state: str
    reason: str
