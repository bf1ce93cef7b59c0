"""Prometheus file-based service discovery for the local mesh.

The supervisor rewrites `<state_dir>/prometheus/targets.json` from the registry, so Prometheus
(deploy/prometheus/prometheus.yml) scrapes every instance, whatever port it got.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from mesh.discovery import InstanceState


def file_sd_groups(states: list[InstanceState]) -> list[dict]:
    groups = []
    for state in sorted(states, key=lambda s: s.instance.instance_id):
        url = urlparse(state.instance.metrics_url)
        if not url.netloc:
            continue
        groups.append(
            {
                "targets": [url.netloc],
                "labels": {"service": state.instance.service, "instance_id": state.instance.instance_id},
            }
        )
    return groups


def write_file_sd(path: Path, states: list[InstanceState]) -> None:
    """Atomically replace the targets file (Prometheus may read it at any moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".targets-")
    with os.fdopen(fd, "w") as out:
        json.dump(file_sd_groups(states), out, indent=2)
    os.replace(tmp, path)
