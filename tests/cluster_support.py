"""The suite's Ray session, a local multi-node cluster around it, and fakes that record where
they ran.

    with local_cluster(worker_nodes=2, gpus_per_node=2) as cluster:
        ...                                   # ray is connected to it; cluster.worker_nodes

The cluster is `evaluator.local_cluster`'s. The suite's `ray_session` fixture (tests/conftest.py)
may already run a local Ray in this process: it is shut down while the cluster lives and
started again, with the same settings, afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from auxnas.evaluator import local_cluster as cluster_lib
from auxnas.evaluator import testing as fakes
from auxnas.evaluator.local_cluster import LOOPBACK, add_gpu_node, kill_node  # noqa: F401 - for the tests

# what tests/conftest.py's ray_session starts: restored after a cluster when it was running.
# `address="local"` starts a private Ray: never the cluster named by RAY_ADDRESS or by a
# (possibly stale) /tmp/ray/ray_current_cluster that some other `ray start` left behind
SESSION_RAY_KWARGS = {
    "address": "local",
    "num_cpus": 4,  # 4 logical CPUs on a 2-core machine: 2 trials and the driver side by side
    "num_gpus": 0,
    "include_dashboard": False,
    "log_to_driver": False,
}


def start_session_ray() -> None:
    """The suite's own local Ray, started once per process."""
    import ray

    if not ray.is_initialized():
        ray.init(**SESSION_RAY_KWARGS)


@contextlib.contextmanager
def local_cluster(worker_nodes: int = 2, gpus_per_node: float = 2, cpus_per_node: float = 2) -> Iterator:
    """`evaluator.local_cluster.local_cluster`, with the suite's local Ray shut down while the
    cluster lives and started again afterwards when it was running."""
    import ray

    had_session_ray = ray.is_initialized()
    if had_session_ray:
        ray.shutdown()
    try:
        with cluster_lib.local_cluster(worker_nodes, gpus_per_node, cpus_per_node) as cluster:
            yield cluster
    finally:
        if had_session_ray:
            start_session_ray()


# --- a fake evaluator that records its run (module level: Ray pickles it by reference) -------


def recording_sleep(config, genotype, *, early_stop_below=None, seconds: float = 1.0, log_dir: str):
    """`fakes.sleeping`, writing one JSON file per run to `log_dir`: its start, end and node."""
    import ray

    start = time.time()
    run = {
        "genotype": "joint" if genotype is None else genotype.canonical_hash(),
        "node": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "start": start,
    }
    path = Path(log_dir) / f"{run['genotype'][:16]}-{os.getpid()}-{start:.6f}.json"
    path.write_text(json.dumps(run))
    result = fakes.sleeping(config, genotype, early_stop_below=early_stop_below, seconds=seconds)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**run, "end": time.time()}))
    tmp.replace(path)  # a reader sees the start or the whole run, never half a file
    return result


def runs(log_dir: str | Path) -> list[dict]:
    """What `recording_sleep` wrote (an unfinished run has no "end")."""
    out = []
    for p in Path(log_dir).glob("*.json"):
        with contextlib.suppress(ValueError, OSError):  # a file being rewritten this instant
            out.append(json.loads(p.read_text()))
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def run_in_thread(fn) -> tuple[threading.Thread, dict]:
    """Run `fn()` in a daemon thread; the returned dict gets "value" or "error"."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
