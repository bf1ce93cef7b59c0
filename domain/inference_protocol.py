"""ScoreMesh's conventions on top of the Open Inference Protocol, shared by the inference
service and its clients (the router, benchmarks). No torch and no generated code here.
"""

from __future__ import annotations

import numpy as np

INPUT_NAME = "features"
OUTPUT_NAMES = ("score", "member_scores", "confidence")
# Response parameter: the ensemble's member names, in member_scores column order.
MEMBER_NAMES_PARAMETER = "member_names"
# Request and response parameter: "name/version" of the feature schema the features follow.
FEATURE_SCHEMA_PARAMETER = "feature_schema"
# ErrorInfo reasons a client can act on.
SCHEMA_MISMATCH = "FEATURE_SCHEMA_MISMATCH"
NON_FINITE_OUTPUT = "NON_FINITE_OUTPUT"
# ModelMetadata answers with these response headers (initial metadata): the version it describes
# and the feature schema that version was trained on. Headers, not fields: our protocol messages
# stay wire-identical to the ones tritonclient ships.
MODEL_VERSION_HEADER = "scoremesh-model-version"
FEATURE_SCHEMA_HEADER = "scoremesh-feature-schema"
# RepositoryIndex reason of a version the version policy leaves unloaded (it loads, by the same
# policy, once the newer ones are held back): recovery counts it as one that could serve.
NOT_LOADED_BY_POLICY = "not loaded (version policy)"
# ... and the stage of every version served, "1=production,2=staging" (domain.models.stages):
# routers send unpinned traffic to the newest production version.
VERSION_STAGES_HEADER = "scoremesh-version-stages"


def stages_header(stages: tuple[tuple[str, str], ...]) -> str:
    """(version, stage) pairs as VERSION_STAGES_HEADER carries them."""
    return ",".join(f"{version}={stage}" for version, stage in stages)


def parse_stages_header(text: str) -> tuple[tuple[str, str], ...]:
    """VERSION_STAGES_HEADER back into (version, stage) pairs (malformed pairs left out)."""
    return tuple((version, stage) for version, _, stage in (pair.partition("=") for pair in text.split(",")) if version and stage)

# Protocol datatype -> (NumPy dtype, typed-contents field). FP16 and BF16 travel only as raw
# bytes (the protocol has no typed field for them); BF16 decodes to its uint16 bit patterns,
# since NumPy has no bfloat16.
DATATYPES: dict[str, tuple[np.dtype, str | None]] = {
    "FP32": (np.dtype("<f4"), "fp32_contents"),
    "FP16": (np.dtype("<f2"), None),
    "BF16": (np.dtype("<u2"), None),
    "FP64": (np.dtype("<f8"), "fp64_contents"),
    "INT32": (np.dtype("<i4"), "int_contents"),
    "INT64": (np.dtype("<i8"), "int64_contents"),
}
