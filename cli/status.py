"""`auxnas status [ID]`: the searches of the database, or one search and its latest trials."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

import typer

from auxnas.cli.database import DB_OPTION, open_storage
from auxnas.cli.main import fail
from auxnas.controller.status import SearchStatus, TrialStatus


def register(app: typer.Typer) -> None:
    app.command()(status)


def status(
    search_id: int = typer.Argument(None, help="A search id: details and its latest trials."),
    database_url: str | None = DB_OPTION,
    limit: int = typer.Option(20, "--limit", min=1, help="Rows to show (searches, or trials of one search)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show searches (newest first), or one search and its latest trials."""
    storage = open_storage(database_url)
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
            number(s.best_reward),
            number(s.baselines.get("joint")),
            number(s.baselines.get("basic")),
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
    typer.echo("\n".join(_search_lines(s) + _state_lines(s, running)))
    if rows:
        _print_trials(rows, total, pairing)


def _search_lines(s: Any) -> list[str]:
    """What the search is and how far it got."""
    p = s.progress
    return [
        f"search {s.id} {s.name!r}: {s.status}" + (" (cancel requested)" if s.cancel_requested else ""),
        f"progress   {p.evaluated}/{p.budget} evaluated, {p.cached} cached, {p.failed} failed, "
        f"{p.running} running, {p.waiting} waiting, {p.trials} trials",
        f"cost       {p.evaluations} evaluations (candidate x seed), {p.cpu_seconds:.0f} CPU-s",
        f"best       {number(s.best_reward)}"
        + (f" (trial {s.best_trial})" if s.best_trial is not None else ""),
        f"baselines  joint {number(s.baselines.get('joint'))}, basic {number(s.baselines.get('basic'))}",
        f"created    {_when(s.created_at)}; started {_when(s.started_at)}; finished {_when(s.finished_at)}",
        f"worker     {s.worker_id or '-'} (attempts {s.attempts}, heartbeat {_when(s.heartbeat_at)})",
        f"checkpoint {s.checkpoint_dir or '-'}",
    ]


def _state_lines(s: Any, running: list[Any]) -> list[str]:
    """Its error, interruption, answer, fidelity and running trials, where it has them."""
    lines = [f"error      {s.error}"] if s.error else []
    if interrupted(s):
        lines.append(
            f"interrupted its lease expired at {_when(s.lease_expires_at)}: `auxnas search CONFIG --resume {s.id}` "
            "or any worker continues it"
        )
    if s.answer:
        lines.append(f"answer     {s.answer.get('verdict')}")
    elif not SearchStatus(s.status).final:
        lines.append("answer     none yet (racing, then confirmation on fresh seeds, after the budget)")
    if s.fidelity:
        f = s.fidelity
        lines.append(
            f"fidelity   {f.get('verdict')}; noise {number(f.get('noise'))}, spread {number(f.get('spread'))}, "
            f"{len(f.get('per_genotype', []))} genotypes x {f.get('replicates')} replicates"
        )
    for t in running:
        node = (t.node or {}).get("ip") or "-"
        lines.append(
            f"running    trial {t.index} ({t.kind}, attempt {t.attempts}, on {node}, since {_when(t.started_at)})"
        )
    return lines


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
            number(t.reward),
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


def number(x: float | None) -> str:
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
