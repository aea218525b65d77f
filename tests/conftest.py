"""Shared fixtures. Ray is started once per test session (about 4 s) and only when a test asks."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        # 4 logical CPUs on a 2-core machine: lets 2 trials and the driver run side by side
        ray.init(num_cpus=4, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
