"""`auxnas serve`, `auxnas worker`, `auxnas status [ID]`, `auxnas export ID -o FILE`."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer

from auxnas.cli.main import fail
from auxnas.cli.search import EVALUATOR_HELP
from auxnas.controller.status import SearchStatus, TrialStatus

DB_OPTION = typer.Option(
    None,
    "--database-url",
    envvar="AUXNAS_DATABASE_URL",
    help="SQLAlchemy URL of the database [env AUXNAS_DATABASE_URL; default sqlite:///auxnas.db].",
    show_default=False,
)


class Shutdown(BaseException):
    """SIGTERM: stop now (a running search is handed back for the next worker)."""


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.command()(status)
    app.command()(export)


def _storage(database_url: str | None):  # noqa: ANN202
    from auxnas.db.engine import DatabaseError
    from auxnas.db.migrate import migrate
    from auxnas.db.storage import SqlStorage

    try:
        storage = SqlStorage(database_url, owner=None)
        migrate(engine=storage.engine)
    except DatabaseError as e:
        fail(str(e))
    return storage


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


# --- serve ---------------------------------------------------------------------------------


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: all)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    no_worker: bool = typer.Option(False, "--no-worker", help="Run the API only; workers run elsewhere."),
    database_url: str | None = DB_OPTION,
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Run the REST API, and one embedded worker process unless --no-worker."""
    import uvicorn

    from auxnas.api.app import create_app
    from auxnas.db.engine import DatabaseError
    from auxnas.db.engine import database_url as resolve_url

    url = resolve_url(database_url)
    _check_port_free(host, port)
    try:
        app = create_app(url)
    except DatabaseError as e:
        fail(str(e))
    embedded = None if no_worker else EmbeddedWorker(url)

    def _terminate(_signum, _frame):  # noqa: ANN001
        raise Shutdown()

    # uvicorn re-raises the SIGTERM it caught once it has shut down: with the default handler that
    # would end this process before the `finally` below stops the embedded worker
    signal.signal(signal.SIGTERM, _terminate)
    typer.echo(
        f"auxnas API on http://{host}:{port} (database {_safe(url)}; "
        f"{'no worker' if no_worker else 'one embedded worker'}; "
        f"auth {'on' if app.state.api_token else 'off'})",
        err=True,
    )
    try:
        if embedded:
            embedded.start()
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    except Shutdown:
        typer.echo("auxnas serve stopped (SIGTERM)", err=True)
    finally:
        if embedded:
            embedded.stop()


def _check_port_free(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        fail(f"--host: cannot resolve {host!r} ({e.strerror})")
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            fail(f"--port: cannot listen on {host}:{port} ({e.strerror})")


def _safe(url: str) -> str:
    from auxnas.db.migrate import safe_url

    return safe_url(url)


class EmbeddedWorker:
    """`auxnas worker` as a child process of `serve` (its own Ray driver, its own GIL: training
    never slows the API down); restarted if it dies, stopped with the server, and ending by
    itself when the server dies (worker/parent_watch.py)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.proc: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._supervise, name="embedded-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _spawn(self) -> subprocess.Popen:
        from auxnas.worker.parent_watch import PARENT_PID_ENV

        env = {**os.environ, "AUXNAS_DATABASE_URL": self.url, PARENT_PID_ENV: str(os.getpid())}
        return subprocess.Popen([sys.executable, "-m", "auxnas.cli", "worker"], env=env)

    def _supervise(self) -> None:
        while not self.stopping.is_set():
            self.proc = self._spawn()
            code = self.proc.wait()
            if self.stopping.is_set():
                return
            typer.echo(f"embedded worker exited with code {code}; restarting in 5 s", err=True)
            self.stopping.wait(5)

    def stop(self, timeout: float = 30) -> None:
        self.stopping.set()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- worker --------------------------------------------------------------------------------


def worker(
    database_url: str | None = DB_OPTION,
    data_dir: Path = typer.Option(
        None,
        "--data-dir",
        envvar="AUXNAS_DATA_DIR",
        help="Where controller checkpoints go [env AUXNAS_DATA_DIR; default ./runs].",
        show_default=False,
    ),
    lease: float = typer.Option(30.0, "--lease", min=2.0, help="Seconds a claim lasts without a heartbeat."),
    poll: float = typer.Option(2.0, "--poll", min=0.05, help="Seconds between looks for queued searches."),
    once: bool = typer.Option(False, "--once", help="Exit when no search is waiting instead of polling."),
    evaluator: str = typer.Option("train", "--evaluator", help=EVALUATOR_HELP, metavar="NAME"),
) -> None:
    """Claim queued searches (and ones whose worker died) from the database and run them."""
    from auxnas.cli.search import load_evaluator
    from auxnas.evaluator.priority import lower_priority
    from auxnas.worker.loop import Worker
    from auxnas.worker.parent_watch import exit_with_parent
    from auxnas.worker.ray_runtime import RayStartError, ensure_ray

    exit_with_parent()  # an embedded worker: SIGTERM when its `auxnas serve` dies
    _logging()
    try:
        lower_priority()  # the search yields the CPU to the API (its local Ray inherits it)
    except ValueError as e:
        fail(str(e))
    fn = load_evaluator(evaluator)
    storage = _storage(database_url)
    try:
        where = ensure_ray()
    except RayStartError as e:
        fail(str(e))
    w = Worker(storage, data_dir=data_dir, lease_seconds=lease, poll_seconds=poll, evaluate_fn=fn)
    logging.getLogger("auxnas.worker").info("worker %s on Ray %s", w.worker_id, where)

    def _terminate(_signum, _frame):  # noqa: ANN001
        # once: a second SIGTERM would break off Ray's shutdown at exit and leave its processes
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Shutdown()

    # after ray.init, which installs its own SIGTERM handler
    signal.signal(signal.SIGTERM, _terminate)
    try:
        w.run_forever(once=once)
    except Shutdown:
        typer.echo("worker stopped (SIGTERM)", err=True)
    finally:
        storage.dispose()


# --- status --------------------------------------------------------------------------------


def status(
    search_id: int = typer.Argument(None, help="A search id: details and its latest trials."),
    database_url: str | None = DB_OPTION,
    limit: int = typer.Option(20, "--limit", min=1, help="Rows to show (searches, or trials of one search)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show searches (newest first), or one search and its latest trials."""
    storage = _storage(database_url)
    try:
        if search_id is None:
            _status_all(storage, limit, as_json)
        else:
            _status_one(storage, search_id, limit, as_json)
    finally:
        storage.dispose()


def _status_all(storage, limit: int, as_json: bool) -> None:  # noqa: ANN001
    items, total = storage.list_searches(0, limit)
    if as_json:
        typer.echo(
            json.dumps(
                {"total": total, "items": [_plain(s.to_dict(), drop=("config",)) for s in items]}, indent=2
            )
        )
        return
    if not items:
        typer.echo("no searches yet (POST /searches, or `auxnas search CONFIG`)")
        return
    from auxnas.cli.tables import console, figure_column, new_table, text_column

    # 80 columns: the worker and the timestamps of one search are in `auxnas status ID`
    table = new_table(f"searches ({len(items)} of {total}, newest first)", compact=True)
    figure_column(table, "id")
    for col in ("name", "status", "progress"):
        text_column(table, col)
    for col in ("best", "joint", "basic"):
        figure_column(table, col)
    text_column(table, "created")
    for s in items:
        p = s.progress
        table.add_row(
            str(s.id),
            s.name,
            s.status
            + (" (cancelling)" if s.cancel_requested and s.status == SearchStatus.RUNNING else "")
            + (" (interrupted)" if interrupted(s) else ""),
            f"{p.evaluated}/{p.budget}"
            + (f" {p.cached} cached" if p.cached else "")
            + (f" {p.failed} failed" if p.failed else ""),
            _num(s.best_reward),
            _num(s.baselines.get("joint")),
            _num(s.baselines.get("basic")),
            _when(s.created_at),
        )
    console().print(table)


def _status_one(storage, search_id: int, limit: int, as_json: bool) -> None:  # noqa: ANN001
    s = storage.summary(search_id)
    if s is None:
        fail(f"search {search_id} does not exist")
    _, total = storage.trial_page(search_id, 0, 1)
    rows, _ = storage.trial_page(search_id, max(0, total - limit), limit)
    running, _ = storage.trial_page(search_id, 0, 100, status=TrialStatus.RUNNING)
    pairing = storage.pairing(search_id)
    if as_json:
        doc = _plain(s.to_dict())
        doc["trials"] = [_plain({**t.to_dict(), **asdict(pairing.of(t))}) for t in rows]
        doc["running"] = [_plain(t.to_dict()) for t in running]
        typer.echo(json.dumps(doc, indent=2, default=_plain_value))
        return
    p = s.progress
    lines = [
        f"search {s.id} {s.name!r}: {s.status}" + (" (cancel requested)" if s.cancel_requested else ""),
        f"progress   {p.evaluated}/{p.budget} evaluated, {p.cached} cached, {p.failed} failed, "
        f"{p.running} running, {p.waiting} waiting, {p.trials} trials",
        f"cost       {p.evaluations} evaluations (candidate x seed), {p.cpu_seconds:.0f} CPU-s",
        f"best       {_num(s.best_reward)}"
        + (f" (trial {s.best_trial})" if s.best_trial is not None else ""),
        f"baselines  joint {_num(s.baselines.get('joint'))}, basic {_num(s.baselines.get('basic'))}",
        f"created    {_when(s.created_at)}; started {_when(s.started_at)}; finished {_when(s.finished_at)}",
        f"worker     {s.worker_id or '-'} (attempts {s.attempts}, heartbeat {_when(s.heartbeat_at)})",
        f"checkpoint {s.checkpoint_dir or '-'}",
    ]
    if s.error:
        lines.append(f"error      {s.error}")
    if interrupted(s):
        lines.append(
            f"interrupted its lease expired at {_when(s.lease_expires_at)}: `auxnas search CONFIG --resume {s.id}` "
            "or any worker continues it"
        )
    if s.answer:
        lines.append(f"answer     {s.answer.get('verdict')}")
    elif s.status in ("queued", "running"):
        lines.append("answer     none yet (racing, then confirmation on fresh seeds, after the budget)")
    if s.fidelity:
        f = s.fidelity
        lines.append(
            f"fidelity   {f.get('verdict')}; noise {_num(f.get('noise'))}, spread {_num(f.get('spread'))}, "
            f"{len(f.get('per_genotype', []))} genotypes x {f.get('replicates')} replicates"
        )
    for t in running:
        node = (t.node or {}).get("ip") or "-"
        lines.append(
            f"running    trial {t.index} ({t.kind}, attempt {t.attempts}, on {node}, since {_when(t.started_at)})"
        )
    typer.echo("\n".join(lines))
    if not rows:
        return
    _print_trials(rows, total, pairing)


def _print_trials(rows: list, total: int, pairing: Any) -> None:
    """The trials in two tables of at most 80 columns (what each trial is, then its paired
    gains over Joint), and their errors under them, one line each. The node and the controller
    iteration of each are in `--json`; the node of a running one is in the lines above."""
    from auxnas.cli.tables import console, figure_column, new_table, text_column

    span = f"{rows[0].index}..{rows[-1].index} of {total}"
    trials = new_table(f"trials {span}", compact=True)
    gains = new_table(f"paired gains over Joint, trials {span}", compact=True)
    figure_column(trials, "#")
    for col in ("kind", "phase"):
        text_column(trials, col)
    figure_column(trials, "seed")
    text_column(trials, "status")
    for col in ("reward", "seconds", "tries"):
        figure_column(trials, col)
    for col in ("#", "gain", "mean gain (seeds)"):
        figure_column(gains, col)
    text_column(gains, "genotype")
    for t in rows:
        g = pairing.of(t)
        seed = (
            "-"
            if t.seed is None and t.phase == "calibration"
            else pairing.default_seed
            if t.seed is None
            else t.seed
        )
        trials.add_row(
            str(t.index),
            t.kind,
            t.phase,
            str(seed),
            t.status,
            _num(t.reward),
            f"{t.seconds:.1f}",
            str(t.attempts),
        )
        gains.add_row(str(t.index), _signed(g.gain), _mean_gain(g), t.genotype_hash or "-")
    out = console()
    out.print(trials)
    out.print(gains)
    for t in rows:
        if t.error:
            out.print(
                f"trial {t.index}: {t.error.get('type')}: {t.error.get('message')}"[:300], highlight=False
            )


def interrupted(s: Any) -> bool:
    """A search whose lease expired (`db.models.lease_expired`): its holder died; resumable."""
    from auxnas.db.models import lease_expired

    return lease_expired(s.status, s.lease_expires_at, datetime.now(timezone.utc))


def _plain_value(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else str(v)


def _plain(d: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items() if k not in drop}


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.4f}"


def _mean_gain(g: Any) -> str:
    """A module's mean paired gain ± its standard error over its seeds in the row's phase group."""
    if g.mean_gain is None:
        return "-"
    se = f" ± {g.gain_se:.4f}" if g.gain_se is not None else ""
    return f"{g.mean_gain:+.4f}{se} ({len(g.seeds)})"


def _when(t: datetime | None) -> str:
    if t is None:
        return "-"
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# --- export --------------------------------------------------------------------------------


def export(
    search_id: int = typer.Argument(..., help="The search whose answer's genotype to write."),
    output: Path = typer.Option(..., "--output", "-o", help="Genotype JSON file to write."),
    database_url: str | None = DB_OPTION,
) -> None:
    """Write the answer's genotype of a search as genotype JSON version 2: `recommended`, and the
    confirmation figures under `answer`. When no module beats Joint it is the module the verdict
    quotes, with recommended false; before the search has an answer, its best trial so far."""
    from auxnas.db.storage import UnknownSearch
    from auxnas.search_space import GenotypeError, parse_genotype

    storage = _storage(database_url)
    try:
        doc = storage.best_genotype_json(search_id)
    except UnknownSearch:
        fail(f"search {search_id} does not exist")
    finally:
        storage.dispose()
    if doc is None:
        fail(f"search {search_id} has no successful trial with a genotype yet (or its answer names none)")
    try:
        genotype = parse_genotype(doc)
    except GenotypeError as e:  # a stored row that is not a valid genotype is never exported
        fail(f"search {search_id}: the best trial's genotype is invalid ({e})")
    if output.parent and not output.parent.exists():
        fail(f"--output: directory {output.parent} does not exist")
    try:
        output.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as e:
        fail(f"--output: cannot write {output} ({e.strerror or e})")
    typer.echo(f"wrote {output}: {genotype.summary()}, reward {_num(doc.get('reward'))}")
    if doc.get("answer"):
        what = "recommended" if doc["recommended"] else "NOT recommended"
        typer.echo(f"{what}: {doc['answer']['verdict']}")
    else:
        typer.echo("not recommended: the search has no answer yet (it has not finished)")
