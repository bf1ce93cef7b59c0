"""The image holds every package the project installs (a package missing from the Dockerfile
would only show when a container starts)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_installed_package_is_copied_into_the_image():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})
    top_level = {mapped.get(p, p).split("/")[0] for p in setuptools["packages"] if "." not in p}
    copied = set(re.findall(r"^COPY (\S+) \1$", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE))
    assert top_level <= copied, sorted(top_level - copied)
