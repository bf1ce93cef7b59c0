"""Generated code is fresh and the protos pass buf lint."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.e2e.mesh_process import REPO_ROOT


def test_generated_code_is_not_stale():
    result = subprocess.run([sys.executable, "-m", "mesh.protogen", "--check"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_passes():
    buf = shutil.which("buf")
    assert buf, "buf is installed with the dev extra (buf-bin)"
    result = subprocess.run([buf, "lint"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
