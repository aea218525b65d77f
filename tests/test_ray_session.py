"""The suite starts its own Ray: a stale cluster address on the machine must not matter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import ray
from tests.cluster_support import start_session_ray
start_session_ray()
print("cpus", int(ray.cluster_resources()["CPU"]))
ray.shutdown()
"""


@pytest.mark.slow
def test_the_suite_starts_its_own_ray_beside_a_stale_cluster_address():
    # what a killed `ray start --head` leaves behind: an address nobody listens on
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    try:
        (Path(tmp) / "ray").mkdir()
        (Path(tmp) / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
        env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_AUTH_MODE": "disabled"}
        plain = subprocess.run(
            [sys.executable, "-c", "import ray; ray.init(num_cpus=1)"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert plain.returncode != 0, "the stale file did not trap a plain ray.init: the test proves nothing"
        ours = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert ours.returncode == 0, ours.stderr[-2000:]
        assert "cpus 4" in ours.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
