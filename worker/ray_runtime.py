"""One way to get Ray for `auxnas worker`, `auxnas serve` and `auxnas search`.

With `RAY_ADDRESS` set (a cluster head, e.g. `ray-head:6379` in docker compose) it connects
there; otherwise it starts a private local Ray. It never attaches to some other Ray that happens
to run on this machine (plain `ray.init()` would, through /tmp/ray/ray_current_cluster), and the
local Ray ends with this process even when it is killed (worker/ray_reaper.py).
"""

from __future__ import annotations

import os

from auxnas.worker.ray_reaper import start_reaper


class RayStartError(RuntimeError):
    """Ray could not be started or reached: one line."""


def ensure_ray(num_cpus: float | None = None, num_gpus: float | None = None) -> str:
    """Initialise Ray once per process; returns where it runs ("local" or the cluster address)."""
    import ray

    if ray.is_initialized():
        return os.environ.get("RAY_ADDRESS") or "local"
    address = os.environ.get("RAY_ADDRESS") or None
    if not address:
        # a private Ray only this process talks to: no token needed (a cluster sets its own mode)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs: dict = {"include_dashboard": False, "configure_logging": True, "logging_level": "WARNING"}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            start_reaper()  # Ray's agents would outlive a SIGKILL of this process otherwise
            ray.init(address="local", num_cpus=_as_int(num_cpus), num_gpus=_as_int(num_gpus), **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"RAY_ADDRESS={address}" if address else "a local Ray"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RayStartError(f"cannot start or reach {where}: {first}") from None
    return address or "local"


def _as_int(x: float | None) -> int | None:
    return None if x is None else int(x)
