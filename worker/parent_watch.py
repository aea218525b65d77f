"""An embedded worker ends with the `auxnas serve` that started it, however serve dies.

serve passes its pid in `AUXNAS_PARENT_PID`. On Linux the kernel sends the worker SIGTERM when
serve exits (PR_SET_PDEATHSIG, even after a SIGKILL); elsewhere a thread sends it when the
worker's parent changes (a dead parent's children are reparented). Either way exactly one SIGTERM:
a second one would interrupt the worker's own shutdown.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PARENT_PID_ENV = "AUXNAS_PARENT_PID"
CHECK_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def exit_with_parent(environ: dict[str, str] | None = None) -> int | None:
    """Arrange for SIGTERM when the parent named in AUXNAS_PARENT_PID dies; returns that pid
    (None when unset). The SIGTERM comes at once when the parent is gone already."""
    value = (os.environ if environ is None else environ).get(PARENT_PID_ENV)
    if not value:
        return None
    try:
        parent = int(value)
    except ValueError:
        return None
    if not _kernel_signals_parent_death():
        threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)  # it died before the kernel was asked to tell us
    return parent


def _kernel_signals_parent_death() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    stop = threading.Event()
    while os.getppid() == parent:
        stop.wait(CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
