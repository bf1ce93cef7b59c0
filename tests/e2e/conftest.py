from __future__ import annotations

import pytest

from tests.e2e.mesh_process import MeshProcess, collector_frozen
from tests.e2e.otlp_receiver import OtlpReceiver


@pytest.fixture()
def frozen_collector():
    """For tests that compare latencies: this process's garbage collector kept off its big heap
    (mesh_process.collector_frozen)."""
    with collector_frozen():
        yield


@pytest.fixture(scope="session")
def otlp_receiver():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def mesh(tmp_path_factory, otlp_receiver):
    """The whole mesh (`scoremesh up`), exporting spans to the test's OTLP receiver."""
    state_dir = tmp_path_factory.mktemp("mesh") / "state"
    process = MeshProcess(
        state_dir,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200",
             # Online weighting (off unless a test switches it on) writes learned weights quickly.
             "SCOREMESH_WEIGHTING_INTERVAL_S": "1", "SCOREMESH_WEIGHTING_MIN_OUTCOMES": "100"},
    )
    try:
        process.start()
        yield process
    finally:
        process.stop()
