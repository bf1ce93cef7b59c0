"""An independent NumPy computation of a stored ensemble, straight from its files.

Used to check the mesh's answers: it shares no code with the kernels or the inference service.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from safetensors.numpy import load_file


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def ensemble_outputs(version_dir: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    config = yaml.safe_load((version_dir / "config.yaml").read_text())
    weights = load_file(str(version_dir / "model.safetensors"))
    x = x.astype(np.float64)
    member_p = []
    for member in config["members"]:
        name = member["name"]
        if member["hidden"] == 0:
            z = x @ weights[f"{name}.linear.weight"].astype(np.float64).T[:, 0] + weights[f"{name}.linear.bias"][0]
        else:
            hidden = np.maximum(x @ weights[f"{name}.hidden.weight"].astype(np.float64).T + weights[f"{name}.hidden.bias"], 0.0)
            z = hidden @ weights[f"{name}.output.weight"].astype(np.float64)[0] + weights[f"{name}.output.bias"][0]
        calibration = member.get("calibration", {})
        member_p.append(_sigmoid(calibration.get("a", 1.0) * z + calibration.get("b", 0.0)))
    p = np.stack(member_p, axis=1)
    method = config["ensemble"]["method"]
    if method == "averaging":
        score = p.mean(axis=1)
    elif method == "weighted_average":
        w = np.asarray(config["ensemble"]["weights"], dtype=np.float64)
        score = (p * w).sum(axis=1) / w.sum()
    elif method == "dynamic":
        c = np.maximum(p, 1 - p)
        score = (c * p).sum(axis=1) / c.sum(axis=1)
    else:
        raise AssertionError(f"method {method} not covered by this oracle")
    confidence = (1.0 / (1.0 + p.var(axis=1)) + np.maximum(p, 1 - p).mean(axis=1)) / 2.0
    return {"score": score, "member_scores": p, "confidence": confidence, "members": [m["name"] for m in config["members"]]}
