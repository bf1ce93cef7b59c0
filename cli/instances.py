"""The running mesh's instances, as the CLI finds them."""

from __future__ import annotations

import sys

from mesh.config import MeshSettings
from mesh.discovery import open_registry


def first_address(settings: MeshSettings, service: str) -> str | None:
    """The address of a healthy instance of `service`, or None (said on stderr)."""
    found = open_registry(settings).resolve(service)
    if not found:
        print(f"scoremesh: no healthy {service} instance (is `scoremesh up` running with state in {settings.state_dir}?)", file=sys.stderr)
        return None
    return found[0].address
