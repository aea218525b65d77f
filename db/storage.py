"""`SqlStorage`: the controller's storage interface on SQLAlchemy, plus what the service needs.

A storage built with `owner=<worker id>` is *fenced*: it writes to a search only while that
search is `running` under that owner. A worker that lost its lease (another worker resumed the
search) can therefore never add a trial or a status to it; its writes raise `LeaseLost` and its
`cancel_requested` answers True so the driver stops.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auxnas.controller.status import SearchStatus, search_status
from auxnas.controller.storage import (
    IterationRecord,
    SearchStorage,
    TrialRecord,
    apply_transition,
)
from auxnas.db import views
from auxnas.db.engine import make_engine, session_factory, transaction
from auxnas.db.models import Iteration, Search, Trial, lease_held, utcnow


class LeaseLost(RuntimeError):
    """This process no longer owns the search (its lease expired and another worker took it)."""


class UnknownSearch(KeyError):
    def __str__(self) -> str:
        return f"search {self.args[0]} does not exist"


def finite_or_none(x: Any) -> Any:
    """JSON and PostgreSQL have no NaN/inf: non-finite floats become None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    return x


class SqlStorage(SearchStorage):
    def __init__(self, engine: Engine | str | None = None, *, owner: str | None = None) -> None:
        self.engine = engine if isinstance(engine, Engine) else make_engine(engine)
        self.sessions = session_factory(self.engine)
        self.owner = owner
        # set by the owner's heartbeat when a renewal finds the search taken
        self.lease_lost = threading.Event()

    def fenced(self, owner: str) -> SqlStorage:
        """The same database, writing only while `owner` holds the search."""
        other = SqlStorage.__new__(SqlStorage)
        other.engine, other.sessions, other.owner = self.engine, self.sessions, owner
        other.lease_lost = threading.Event()
        return other

    # --- the controller's interface -------------------------------------------------------

    def add_trials(self, search_id: int, trials: list[TrialRecord]) -> None:
        now = utcnow()
        rows = [_trial_row(search_id, t, now) for t in trials]
        what = (
            f"trial {trials[0].index}" if len(trials) == 1 else f"one of trials {[t.index for t in trials]}"
        )
        self._insert_owned(search_id, rows, what)

    def move_trial(self, search_id: int, index: int, status: str, **result: Any) -> TrialRecord:
        with transaction(self.sessions, write=True) as s:
            self._check_owner(s, search_id)
            row = s.scalars(
                select(Trial).where(Trial.search_id == search_id, Trial.index == index).with_for_update()
            ).one_or_none()
            if row is None:
                raise KeyError(f"search {search_id} has no trial {index}")
            record = apply_transition(trial_record(row), status, result)
            for key, value in _trial_columns(record).items():
                setattr(row, key, value)
            return record

    def trials(self, search_id: int) -> list[TrialRecord]:
        with transaction(self.sessions) as s:
            rows = s.scalars(select(Trial).where(Trial.search_id == search_id).order_by(Trial.index))
            return [trial_record(r) for r in rows]

    def add_iteration(self, search_id: int, it: IterationRecord) -> None:
        row = Iteration(
            search_id=search_id,
            index=it.index,
            num_episodes=it.num_episodes,
            reward_mean=finite_or_none(it.reward_mean),
            reward_max=finite_or_none(it.reward_max),
            stats=finite_or_none(dict(it.stats or {})),
            seconds=float(it.seconds or 0.0),
            created_at=utcnow(),
        )
        with transaction(self.sessions) as s:
            exists = s.scalar(
                select(Iteration.id).where(Iteration.search_id == search_id, Iteration.index == it.index)
            )
        if exists is None:  # a resumed search may finish an iteration it had recorded already
            self._insert_owned(search_id, [row], f"iteration {it.index}")

    def _insert_owned(self, search_id: int, rows: list[Any], what: str) -> None:
        """Insert rows of a search this storage's owner holds (all or none); a duplicate index
        is an error."""
        try:
            with transaction(self.sessions, write=True) as s:
                self._check_owner(s, search_id)
                s.add_all(rows)
        except IntegrityError:
            raise ValueError(f"search {search_id}: {what} is already stored") from None

    def iterations(self, search_id: int) -> list[IterationRecord]:
        with transaction(self.sessions) as s:
            rows = s.scalars(
                select(Iteration).where(Iteration.search_id == search_id).order_by(Iteration.index)
            )
            return [
                IterationRecord(
                    index=r.index,
                    num_episodes=r.num_episodes,
                    reward_mean=r.reward_mean,
                    reward_max=r.reward_max,
                    stats=dict(r.stats or {}),
                    seconds=r.seconds,
                )
                for r in rows
            ]

    def set_status(self, search_id: int, status: str, error: str | None = None) -> None:
        status = search_status(status)
        with transaction(self.sessions, write=True) as s:
            row = self._check_owner(s, search_id)
            now = utcnow()
            row.status = status
            row.error = error
            if status == SearchStatus.RUNNING and row.started_at is None:
                row.started_at = now
            if status.final:
                row.finished_at = now
                row.lease_expires_at = None

    def set_checkpoint_dir(self, search_id: int, path: str) -> None:
        with transaction(self.sessions, write=True) as s:
            self._check_owner(s, search_id).checkpoint_dir = str(path)

    def set_fidelity(self, search_id: int, fidelity: dict[str, Any]) -> None:
        with transaction(self.sessions, write=True) as s:
            self._check_owner(s, search_id).fidelity = finite_or_none(fidelity)

    def set_answer(self, search_id: int, answer: dict[str, Any]) -> None:
        with transaction(self.sessions, write=True) as s:
            self._check_owner(s, search_id).answer = finite_or_none(answer)

    def cancel_requested(self, search_id: int) -> bool:
        if self.lease_lost.is_set():
            return True
        with transaction(self.sessions) as s:
            row = s.execute(
                select(Search.cancel_requested, Search.worker_id, Search.status).where(Search.id == search_id)
            ).one_or_none()
        if row is None:
            return True  # the search was deleted under us
        if self.owner is not None and (row.worker_id != self.owner or row.status != SearchStatus.RUNNING):
            self.lease_lost.set()
            return True
        return bool(row.cancel_requested)

    def _check_owner(self, s: Session, search_id: int) -> Search:
        row = s.get(Search, search_id, with_for_update=self.owner is not None)
        if row is None:
            raise UnknownSearch(search_id)
        if self.owner is not None and (row.worker_id != self.owner or row.status != SearchStatus.RUNNING):
            self.lease_lost.set()
            raise LeaseLost(
                f"search {search_id} is {row.status} under {row.worker_id or 'nobody'}, not {self.owner}"
            )
        return row

    # --- the service's side -----------------------------------------------------------------

    def create_search(
        self,
        config: Any,
        *,
        launched_by: str = "api",
        owner: str | None = None,
        lease_seconds: float = 30.0,
    ) -> int:
        """Store a validated `SearchConfig`. API searches are queued for a worker; a CLI search
        starts `running` under `owner` with a lease of `lease_seconds` that it must renew (a
        Heartbeat): if the CLI dies, the lease expires and any worker may resume the search."""
        doc = config.model_dump(mode="json")
        now = utcnow()
        row = Search(
            name=config.name,
            config=doc,
            status=SearchStatus.QUEUED if owner is None else SearchStatus.RUNNING,
            budget=config.search.budget,
            launched_by=launched_by,
            created_at=now,
            started_at=None if owner is None else now,
            worker_id=owner,
            lease_expires_at=None if owner is None else now + timedelta(seconds=lease_seconds),
            heartbeat_at=None if owner is None else now,
            attempts=0 if owner is None else 1,
            cancel_requested=False,
        )
        with transaction(self.sessions, write=True) as s:
            s.add(row)
            s.flush()
            return row.id

    def take_over(self, search_id: int, owner: str, lease_seconds: float = 30.0) -> Search:
        """`auxnas search --resume`: run the search under `owner`, with a fresh lease. Refused
        while someone else (a worker or another CLI) holds it with a live lease."""
        with transaction(self.sessions, write=True) as s:
            row = s.get(Search, search_id, with_for_update=True)
            if row is None:
                raise UnknownSearch(search_id)
            now = utcnow()
            if lease_held(row.status, row.lease_expires_at, now):
                raise LeaseLost(f"search {search_id} is running under {row.worker_id} (lease not expired)")
            row.status, row.worker_id = SearchStatus.RUNNING, owner
            row.lease_expires_at, row.heartbeat_at = now + timedelta(seconds=lease_seconds), now
            row.error, row.finished_at, row.cancel_requested = None, None, False
            row.started_at = row.started_at or now
            row.attempts += 1
            return row

    def find_cli_search(self, name: str) -> int | None:
        """The newest search named `name` that `auxnas search` launched (its `--resume`)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(Search.id)
                .where(Search.launched_by == "cli", Search.name == name)
                .order_by(Search.id.desc())
                .limit(1)
            ).scalar()

    def request_cancel(self, search_id: int) -> str:
        """Ask a search to stop; returns its status afterwards. A queued search, or one whose
        worker died, is cancelled at once; a running one is stopped by its worker (it polls)."""
        with transaction(self.sessions, write=True) as s:
            row = s.get(Search, search_id, with_for_update=True)
            if row is None:
                raise UnknownSearch(search_id)
            if SearchStatus(row.status).final:
                return row.status
            now = utcnow()
            row.cancel_requested = True
            if row.status == SearchStatus.QUEUED or row.lease_expired(now):
                row.status, row.finished_at, row.lease_expires_at = SearchStatus.CANCELLED, now, None
            return row.status

    def search_row(self, search_id: int) -> Search | None:
        with transaction(self.sessions) as s:
            return s.get(Search, search_id)

    def summary(self, search_id: int) -> views.SearchSummary | None:
        with self.engine.connect() as conn:
            return views.search_summary(conn, search_id)

    def list_searches(
        self, offset: int = 0, limit: int = 50, status: str | None = None
    ) -> tuple[list[views.SearchSummary], int]:
        with self.engine.connect() as conn:
            return views.list_summaries(conn, offset, limit, status)

    def trial_page(
        self, search_id: int, offset: int = 0, limit: int = 50, status: str | None = None
    ) -> tuple[list[TrialRecord], int]:
        with self.engine.connect() as conn:
            rows, total = views.trial_page(conn, search_id, offset, limit, status)
        return [trial_record(r) for r in rows], total

    def search_exists(self, search_id: int) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(Search.id).where(Search.id == search_id)).first() is not None

    def best_genotype_json(self, search_id: int) -> dict[str, Any] | None:
        """The search's genotype document (controller.export.answer_document): the answer's module,
        or before there is an answer the best trial so far; None if there is neither."""
        from auxnas.controller.export import answer_document, answer_trial

        with self.engine.connect() as conn:
            search = conn.execute(select(Search.name, Search.answer).where(Search.id == search_id)).first()
            if search is None:
                raise UnknownSearch(search_id)
            index = answer_trial(search.answer)
            if index is not None:
                row = views.trial_at(conn, search_id, index)
            else:
                row = None if search.answer else views.best_trial(conn, search_id)
        if row is None:
            return None
        return answer_document(trial_record(row), search_id, search.name, search.answer)

    def pairing(self, search_id: int) -> Any:
        """Paired gains of every trial of the search (`controller.pairing.Pairing`)."""
        from auxnas.controller.pairing import Pairing

        with self.engine.connect() as conn:
            rows, default_seed = views.pairing_rows(conn, search_id)
        return Pairing(rows, default_seed)

    def expire_lease_now(self, search_id: int, owner: str) -> bool:
        """A worker shutting down hands its search back: the next worker resumes it at once."""
        with transaction(self.sessions, write=True) as s:
            res = s.execute(
                update(Search)
                .where(
                    Search.id == search_id, Search.worker_id == owner, Search.status == SearchStatus.RUNNING
                )
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
            return res.rowcount == 1

    def dispose(self) -> None:
        self.engine.dispose()


def _trial_columns(t: TrialRecord) -> dict[str, Any]:
    """The columns of a trial row (but its ids) from a record."""
    node = t.node or {}
    return {
        "index": t.index,
        "kind": t.kind,
        "status": t.status,
        "phase": t.phase,
        "seed": t.seed,
        "replicate": t.replicate,
        "tokens": list(t.tokens) if t.tokens is not None else None,
        "genotype": finite_or_none(t.genotype),
        "genotype_hash": t.genotype_hash,
        "reward": finite_or_none(t.reward),
        "metrics": finite_or_none(t.metrics or {}),
        "per_seed": finite_or_none(t.per_seed),
        "seconds": float(t.seconds or 0.0),
        "cpu_seconds": float(t.cpu_seconds or 0.0),
        "main_params": int(t.main_params or 0),
        "aux_params": int(t.aux_params or 0),
        "iteration": t.iteration,
        "error": finite_or_none(t.error),
        "attempts": int(t.attempts),
        "node_id": node.get("id"),
        "node_ip": node.get("ip"),
        "started_at": t.started_at,
        "finished_at": t.finished_at,
    }


def _trial_row(search_id: int, t: TrialRecord, now: Any) -> Trial:
    return Trial(search_id=search_id, **_trial_columns(t), created_at=t.created_at or now)


_RECORD_FIELDS = tuple(f for f in TrialRecord.__dataclass_fields__ if f != "node")


def trial_record(r: Trial | dict[str, Any]) -> TrialRecord:
    """A stored trial (ORM row or a views dict) as the controller's record."""
    get = r.get if isinstance(r, dict) else lambda k: getattr(r, k)
    values = {k: get(k) for k in _RECORD_FIELDS}
    values["tokens"] = list(values["tokens"]) if values["tokens"] is not None else None
    values["metrics"] = values["metrics"] or {}
    node_id, node_ip = get("node_id"), get("node_ip")
    values["node"] = {"id": node_id, "ip": node_ip} if node_id or node_ip else None
    return TrialRecord(**values)
