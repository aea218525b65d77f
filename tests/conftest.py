"""Shared fixtures. Ray is started once per test session (about 4 s) and only when a test asks."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# workers and trials the suite starts keep its priority: on a busy machine a lowered one would
# starve behind other jobs (tests/test_evaluator_priority.py sets the variable where it checks it)
os.environ.setdefault("AUXNAS_WORKER_NICE", "0")
# the suite starts its own Ray; a test that means to join a cluster says so (tests/cluster_support.py)
os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from tests.cluster_support import start_session_ray

    start_session_ray()
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(items) -> None:
    """A test that asks for the Ray session is marked `ray` (make test-fast leaves those out)."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
