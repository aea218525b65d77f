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
from pathlib import Path

import typer

from auxnas.cli.database import DB_OPTION, open_storage
from auxnas.cli.evaluators import EVALUATOR_HELP, load_evaluator
from auxnas.cli.main import fail


class Shutdown(BaseException):
    """SIGTERM: stop now (a running search is handed back for the next worker)."""


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.command()(export)


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
    storage = open_storage(database_url)
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


# --- export --------------------------------------------------------------------------------


def export(
    search_id: int = typer.Argument(..., help="The search whose answer's genotype to write."),
    output: Path = typer.Option(..., "--output", "-o", help="Genotype JSON file to write."),
    database_url: str | None = DB_OPTION,
) -> None:
    """Write the answer's genotype of a search as genotype JSON version 2: `recommended`, and the
    confirmation figures under `answer`. When no module beats Joint it is the module the verdict
    quotes, with recommended false; before the search has an answer, its best trial so far."""
    from auxnas.cli.status import number
    from auxnas.db.storage import UnknownSearch
    from auxnas.search_space import GenotypeError, parse_genotype

    storage = open_storage(database_url)
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
    typer.echo(f"wrote {output}: {genotype.summary()}, reward {number(doc.get('reward'))}")
    if doc.get("answer"):
        what = "recommended" if doc["recommended"] else "NOT recommended"
        typer.echo(f"{what}: {doc['answer']['verdict']}")
    else:
        typer.echo("not recommended: the search has no answer yet (it has not finished)")
