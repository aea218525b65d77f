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
from typing import TYPE_CHECKING, Any

import typer

from auxnas.cli.main import fail, start_ray
from auxnas.evaluator import defaults

if TYPE_CHECKING:
    from rich.console import Console

    from auxnas.controller.config import SearchConfig
    from auxnas.controller.driver import SearchOutcome
    from auxnas.db.storage import SqlStorage
    from auxnas.worker.loop import Heartbeat

RESUME_LATEST = "latest"  # `--resume` given without an id
RUNS_DIR_OPTION = typer.Option(
    None,
    "--runs-dir",
    help="Where each search's run directory search-<id>/ goes [env AUXNAS_DATA_DIR; default ./runs].",
    show_default=False,
)


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


def run_search(
    config: SearchConfig,
    storage: SqlStorage,
    resume_id: int | None,
    runs_dir: Path | None,
    lease: float,
    evaluate_fn: Any,
    calibrate_only: bool = False,
) -> tuple[SearchOutcome, Path]:
    """Run the search here under a lease, with a progress bar; returns its outcome and run
    directory (`calibrate_only`: the calibration phase alone, `auxnas calibrate`). `runs_dir`:
    `--runs-dir`, else the data directory."""
    from auxnas.db.storage import LeaseLost

    runs_dir = runs_dir.resolve() if runs_dir is not None else defaults.data_dir()
    start_ray()
    run = start_run(storage, config, resume_id, runs_dir, lease)
    try:
        return drive(config, run, evaluate_fn, calibrate_only), run.run_dir
    except LeaseLost as e:
        fail(f"search {run.search_id} was taken over ({e}); this process stopped working on it")
    finally:
        run.close()
        storage.dispose()


def drive(config: SearchConfig, run: CliRun, evaluate_fn: Any, calibrate_only: bool = False) -> SearchOutcome:
    """The driver of `run`, to its end; Ctrl-C hands the search back (exit 130)."""
    from rich.console import Console

    from auxnas.cli.search_progress import progress_bar
    from auxnas.controller.driver import SearchDriver
    from auxnas.db.storage import LeaseLost

    console = Console(stderr=True)
    progress, on_progress = progress_bar(config, console, calibrate_only)
    driver = SearchDriver(
        config,
        run.storage,
        run.search_id,
        run.run_dir,
        evaluate_fn=evaluate_fn,
        on_progress=on_progress,
        calibrate_only=calibrate_only,
    )
    _announce(console, config, run, calibrate_only)
    try:
        with progress:
            outcome = driver.run(resume=run.resume)
    except KeyboardInterrupt:
        run.hand_back()
        console.print(f"interrupted: continue with `auxnas search {_config_hint()} --resume {run.search_id}`")
        raise typer.Exit(130) from None
    if run.storage.lease_lost.is_set():
        raise LeaseLost("the lease was renewed by someone else")
    return outcome


def _announce(console: Console, config: SearchConfig, run: CliRun, calibrate_only: bool) -> None:
    what = "resuming" if run.resume else "starting"
    s = config.search
    if calibrate_only:
        console.print(
            f"{what} calibration (search {run.search_id}) {config.name!r}: Joint, basic and "
            f"{s.calibrate.genotypes} random genotypes x {s.calibrate.replicates} replicates, "
            f"{s.parallel_trials} parallel, run {run.run_dir}"
        )
    else:
        console.print(
            f"{what} search {run.search_id} {config.name!r}: strategy {s.strategy}, "
            f"budget {s.budget}, {s.parallel_trials} parallel, run {run.run_dir}"
        )


def _config_hint() -> str:
    """The config file this command was given (for the resume hint), else CONFIG."""
    import sys

    args = [a for a in sys.argv[1:] if a.endswith((".yaml", ".yml"))]
    return args[0] if args else "CONFIG"
