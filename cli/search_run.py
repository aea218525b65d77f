"""Where `auxnas search` records its search: a row of the service's database, run under a lease.

Every `auxnas search` is a new search, with its own run directory `<runs>/search-<id>/` (the
layout a worker uses; the config's name is a label, never part of a path). `--resume [ID]`
continues one: by id, or the newest that `auxnas search` launched under the config's name. The
command renews its lease like a worker (worker.loop.Heartbeat), so a search whose process died
shows as interrupted once the lease expires, and `--resume` or any worker can continue it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from auxnas.cli.main import fail
from auxnas.evaluator import defaults

if TYPE_CHECKING:
    from auxnas.controller.config import SearchConfig
    from auxnas.db.storage import SqlStorage
    from auxnas.worker.loop import Heartbeat

RESUME_LATEST = "latest"  # `--resume` given without an id


def open_database() -> SqlStorage:
    from auxnas.cli.service import _storage

    return _storage(None)


def resume_target(storage: SqlStorage, config: SearchConfig, resume: str) -> int:
    """`--resume [ID]` -> the id of the search to continue (exit 2 with one line if none)."""
    if resume == RESUME_LATEST:
        sid = storage.find_cli_search(config.name)
        if sid is None:
            fail(f"--resume: no previous search of {config.name!r} launched by `auxnas search`")
        return sid
    try:
        sid = int(resume)
    except ValueError:
        fail(f"--resume: expected a search id, got {resume!r}")
    row = storage.search_row(sid) if 0 < sid < 2**63 else None
    if row is None:
        fail(f"--resume: search {sid} does not exist")
    if row.name != config.name:
        fail(f"--resume: search {sid} is {row.name!r}, not {config.name!r} (the config's name)")
    return sid


@dataclass
class CliRun:
    storage: SqlStorage  # fenced: it writes only while this process holds the search
    search_id: int
    run_dir: Path
    resume: bool
    heartbeat: Heartbeat

    def hand_back(self) -> None:
        """Interrupted: let `--resume` or a worker continue at once instead of after the lease."""
        with contextlib.suppress(Exception):  # else the lease expires by itself
            self.storage.expire_lease_now(self.search_id, self.storage.owner)

    def close(self) -> None:
        self.heartbeat.stop()


def start_run(
    storage: SqlStorage, config: SearchConfig, resume_id: int | None, runs_dir: Path, lease_seconds: float
) -> CliRun:
    """Create the search (or take over `resume_id`) under this process, and start renewing its lease."""
    from auxnas.db.models import utcnow
    from auxnas.db.storage import LeaseLost
    from auxnas.worker.loop import Heartbeat

    owner = f"cli:{socket.gethostname()}:{os.getpid()}"
    until = utcnow() + timedelta(seconds=lease_seconds)  # no later than the lease stored below
    if resume_id is None:
        sid = storage.create_search(config, launched_by="cli", owner=owner, lease_seconds=lease_seconds)
        run_dir = defaults.run_dir(runs_dir, sid)
    else:
        try:
            row = storage.take_over(resume_id, owner, lease_seconds)
        except LeaseLost as e:
            fail(f"--resume: {e}")
        sid = resume_id
        run_dir = Path(row.checkpoint_dir) if row.checkpoint_dir else defaults.run_dir(runs_dir, sid)
    fenced = storage.fenced(owner)
    heartbeat = Heartbeat(fenced, sid, lease_seconds, until)
    heartbeat.start()
    return CliRun(fenced, sid, run_dir, resume_id is not None, heartbeat)
