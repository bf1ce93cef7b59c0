import gc

from prometheus_client import REGISTRY

from mesh.gc_pauses import freeze_startup_objects, thaw


def _count(generation: str) -> float:
    return REGISTRY.get_sample_value("scoremesh_gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_start_up_objects_leave_later_collections_and_every_collection_is_timed():
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 1000  # everything imported so far is out of the collector's walk
        before = _count("2")
        gc.collect()
        assert _count("2") == before + 1
    finally:
        thaw()
    assert gc.get_freeze_count() == 0
