"""Shared test set-up.

TRITON_INTERPRET must be set before any Triton kernel is imported (it is read when @triton.jit
runs), so it is decided here, at the top of the root conftest: on a machine without a GPU the
kernels run under the CPU interpreter; with a GPU they run natively (unless the caller set it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install redis-server); .ci/run installs it")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    """An empty online store of each backend (Redis only where redis-server is installed)."""
    from domain.features.store.sqlite_store import SqliteStore

    if request.param == "sqlite":
        backend = SqliteStore(tmp_path / "online.sqlite")
    else:
        from domain.features.store.redis_store import RedisStore

        backend = RedisStore(request.getfixturevalue("redis_url"), timeout_s=1.0)
        backend.client.flushdb()
    yield backend
    backend.close()
