"""Searches yield the CPU to the service: `auxnas worker` (the embedded worker of `auxnas serve`
too) and the Ray worker process of every trial lower their scheduling priority (raise their nice
value), so that the API on the same machine answers at once while trials hold every core.

`AUXNAS_WORKER_NICE` sets the nice value, 0..19 (default 15, the value a local Ray gives its own
worker processes; 0 leaves the priority as it is). A process started by a lowered one (the local
Ray the worker starts) inherits it. On Linux the nice value belongs to each thread: every thread
of the process is lowered, and threads started later (torch's) inherit it from the thread that
starts them. A nice value only goes up: a Ray worker process keeps it for the trials that follow.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "AUXNAS_WORKER_NICE"
DEFAULT_NICE = 15


def worker_nice() -> int:
    """The nice value workers and trials run at (ValueError naming the variable when it is not 0..19)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_NICE
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        raise ValueError(f"{ENV}: must be an integer 0..19, got {raw!r}")
    return value


def lower_priority(nice: int | None = None) -> None:
    """Raise the nice value of every thread of this process to `nice` (default: `worker_nice()`);
    a thread already at or above it is left alone."""
    target = worker_nice() if nice is None else nice
    if target <= 0:
        return
    tasks = Path("/proc/self/task")
    threads = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < target:
                os.setpriority(os.PRIO_PROCESS, tid, target)
        except (ProcessLookupError, PermissionError):  # a thread that just ended
            continue
