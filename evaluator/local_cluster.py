"""A local multi-node Ray cluster on this machine, for tests and benchmarks.

    with local_cluster(worker_nodes=2, gpus_per_node=2) as cluster:
        ...                                   # ray is connected to it; cluster.worker_nodes

Every node binds 127.0.0.1: a head with no GPUs (the driver's node, like the auxnas worker's)
and worker nodes that declare GPUs Ray only counts (no GPU is used).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

LOOPBACK = "127.0.0.1"
# a killed raylet is declared dead after about period x threshold (Ray's default is 15 s and more)
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


def node_args(num_cpus: float, num_gpus: float) -> dict:
    return {
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "node_ip_address": LOOPBACK,
        "include_dashboard": False,
        "object_store_memory": 80 * 1024 * 1024,
    }


def add_gpu_node(cluster, num_gpus: float = 2, num_cpus: float = 2):
    """Join one more worker node (returns its `ray._private.node.Node`; `.node_id` is its id)."""
    return cluster.add_node(wait=True, **node_args(num_cpus, num_gpus))


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
    """Start a head (1 CPU, 0 GPUs) and `worker_nodes` GPU nodes, connect Ray to it and tear it
    all down afterwards. Ray must not be initialised in this process yet."""
    import ray
    from ray._private.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        raise RuntimeError("local_cluster: Ray is already initialised in this process")
    address_file = Path(get_ray_address_file(None))
    previous = address_file.read_text() if address_file.exists() else None
    cluster = Cluster(shutdown_at_exit=True)
    try:
        cluster.add_node(**node_args(1, 0), _system_config=FAST_HEALTH_CHECKS)
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
