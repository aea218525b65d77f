"""A local multi-node Ray cluster for tests and benchmarks, and fakes that record where they ran.

    with local_cluster(worker_nodes=2, gpus_per_node=2) as cluster:
        ...                                   # ray is connected to it; cluster.worker_nodes

Every node binds 127.0.0.1: a head with no GPUs (the driver's node, like the auxnas worker's)
and worker nodes that declare GPUs Ray only counts. The suite's `ray_session` fixture
(tests/conftest.py) may already run a local Ray in this process: it is shut down while the
cluster lives and started again, with the same settings, afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from auxnas.evaluator import testing as fakes

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


LOOPBACK = "127.0.0.1"
# a killed raylet is declared dead after about period x threshold (Ray's default is 15 s and more)
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


def _node_args(num_cpus: float, num_gpus: float) -> dict:
    return {
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "node_ip_address": LOOPBACK,
        "include_dashboard": False,
        "object_store_memory": 80 * 1024 * 1024,
    }


def add_gpu_node(cluster, num_gpus: float = 2, num_cpus: float = 2):
    """Join one more worker node (returns its `ray._private.node.Node`; `.node_id` is its id)."""
    return cluster.add_node(wait=True, **_node_args(num_cpus, num_gpus))


def kill_node(cluster, node) -> None:
    """SIGKILL a worker node's raylet and the rest of its Ray processes, as when its machine
    dies, and then its orphaned worker processes (they would linger for half a minute)."""
    from ray._private import ray_constants

    raylet_pid = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    cluster.remove_node(node, allow_graceful=False)
    for pid in _children_of_raylet(raylet_pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _children_of_raylet(raylet_pid: int) -> list[int]:
    """This user's processes that a raylet started as Ray workers (they carry its pid)."""
    marker = f"RAY_RAYLET_PID={raylet_pid}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.stat().st_uid != os.getuid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


@contextlib.contextmanager
def local_cluster(worker_nodes: int = 2, gpus_per_node: float = 2, cpus_per_node: float = 2) -> Iterator:
    """Start a head (1 CPU, 0 GPUs) and `worker_nodes` GPU nodes, connect Ray to it, tear it all
    down afterwards and give back the session's local Ray if one was running."""
    import ray
    from ray._private.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    had_session_ray = ray.is_initialized()
    if had_session_ray:
        ray.shutdown()
    address_file = Path(get_ray_address_file(None))
    previous = address_file.read_text() if address_file.exists() else None
    cluster = Cluster(shutdown_at_exit=True)
    try:
        cluster.add_node(**_node_args(1, 0), _system_config=FAST_HEALTH_CHECKS)
        # the head wrote its address where a plain `ray.init()` of any process on this machine
        # would attach to it: other test runs here must keep starting their own Ray
        _restore(address_file, previous)
        for _ in range(worker_nodes):
            add_gpu_node(cluster, gpus_per_node, cpus_per_node)
        connect(cluster.address)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        _restore(address_file, previous)
        if had_session_ray:
            start_session_ray()


def connect(address: str) -> None:
    """`ray.init` of a driver on the head's node. Ray rewrites a loopback address to this
    machine's network address before connecting, where no node of this cluster listens;
    `ENABLE_RAY_CLUSTER` off is Ray's own switch that keeps it on the loopback."""
    import ray
    from ray._private import ray_constants

    with mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False):
        ray.init(address=address, _node_ip_address=LOOPBACK, include_dashboard=False, log_to_driver=False)


def _restore(address_file: Path, previous: str | None) -> None:
    with contextlib.suppress(OSError):
        if previous is None:
            address_file.unlink(missing_ok=True)
        else:
            address_file.write_text(previous)


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
