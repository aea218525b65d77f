"""A watchdog that ends a private local Ray when the process that started it dies, even by SIGKILL.

Ray ties gcs_server and the raylet to their parent (PR_SET_PDEATHSIG), but the agents the raylet
starts (`ray::DashboardAgent`, `ray::RuntimeEnvAgent`) notice the raylet's death, then hang
reporting it to the dead GCS, and stay forever. So `start_reaper()` starts this module as a child
that holds the read end of a pipe and keeps a list of the owner's descendants; when the pipe
closes (the owner exited, however it died) it ends every listed process still alive.

    python -m auxnas.worker.ray_reaper OWNER_PID     # stdin: the pipe from the owner, its parent
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys

POLL_SECONDS = 1.0
GRACE_SECONDS = 2.0


_reaper: subprocess.Popen | None = None  # held for the process's life: its stdin is the pipe


def start_reaper() -> subprocess.Popen:
    """Start the watchdog of this process, once (call it before `ray.init`)."""
    global _reaper
    if _reaper is None or _reaper.poll() is not None:
        # the write end stays in this process only (not inheritable): it closes exactly when we exit
        _reaper = subprocess.Popen(
            [sys.executable, "-m", "auxnas.worker.ray_reaper", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C (or killpg) of the owner's group must not end it first
        )
    return _reaper


def watch(owner_pid: int, stdin_fd: int) -> None:
    import psutil

    seen: dict[int, psutil.Process] = {}
    me = os.getpid()
    try:
        owner = psutil.Process(owner_pid)
    except psutil.Error:
        return
    while owner.is_running():
        try:
            for p in owner.children(recursive=True):
                if p.pid != me:
                    seen.setdefault(p.pid, p)
        except psutil.Error:
            break  # the owner is gone already
        if len(seen) > 256:  # trial workers come and go: forget the ended ones
            seen = {pid: p for pid, p in seen.items() if _running(p)}
        readable, _, _ = select.select([stdin_fd], [], [], POLL_SECONDS)
        if readable and not os.read(stdin_fd, 4096):
            break  # EOF: the owner exited
    reap(list(seen.values()))


def reap(procs: list) -> None:
    """SIGTERM, then SIGKILL after a grace period, each listed process that still runs (a psutil
    Process compares its start time too, so a reused pid is left alone)."""
    import psutil

    alive = [p for p in procs if _running(p)]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, still = psutil.wait_procs(alive, timeout=GRACE_SECONDS)
    for p in still:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _running(p) -> bool:  # noqa: ANN001
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def import_psutil():  # noqa: ANN201
    """psutil ships inside ray (ray/thirdparty_files); find it without importing all of ray."""
    import importlib
    import importlib.util

    try:
        return importlib.import_module("psutil")
    except ImportError:
        spec = importlib.util.find_spec("ray")
        if spec is None or not spec.submodule_search_locations:
            raise
        sys.path.append(os.path.join(list(spec.submodule_search_locations)[0], "thirdparty_files"))
        return importlib.import_module("psutil")


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    owner = int(sys.argv[1])
    if os.getppid() != owner:
        return  # the owner died before we started: whose processes they are is unknown now
    import_psutil()
    watch(owner, sys.stdin.fileno())


if __name__ == "__main__":
    main()
