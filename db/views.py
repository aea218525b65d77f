"""What the API and `auxnas status` show, always computed from the rows (nothing kept in memory).

Progress, best reward and baseline rewards of a search are aggregates over its trial rows.
The statements are built once with bound parameters: the API's polling endpoints then cost a
few hundred microseconds of SQLAlchemy work instead of rebuilding the expressions per request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, and_, bindparam, case, func, select

from auxnas.controller.export import BEST_KINDS, BEST_PHASE, BEST_STATUS
from auxnas.controller.progress import COUNTS, SEARCH_PHASE, Count
from auxnas.controller.status import TrialStatus
from auxnas.db.models import Search, Trial

# trials that can be "the best": the rule of controller.export, in SQL
_SCORED = and_(
    Trial.kind.in_(BEST_KINDS),
    Trial.status == BEST_STATUS,
    Trial.phase == BEST_PHASE,
    Trial.reward.is_not(None),
    Trial.genotype.is_not(None),
)
_SEARCH_PHASE = Trial.phase == SEARCH_PHASE


@dataclass
class Progress:
    # the counts of controller.progress.COUNTS
    evaluated: int = 0  # search-phase candidates trained and scored, not cached ones
    cached: int = 0  # duplicates answered from the cache
    failed: int = 0  # failed search-phase trials (what search.max_failed_trials limits)
    running: int = 0  # evaluations in flight now
    waiting: int = 0  # decided, not started yet
    trials: int = 0  # all trial rows, baselines included
    budget: int = 0
    evaluations: int = 0  # trainings run in every phase (candidate x seed)
    cpu_seconds: float = 0.0  # CPU seconds of the evaluations

    @property
    def fraction(self) -> float:
        return min(1.0, self.evaluated / self.budget) if self.budget else 0.0


@dataclass
class SearchSummary:
    id: int
    name: str
    status: str
    launched_by: str
    error: str | None
    progress: Progress
    best_reward: float | None
    best_trial: int | None
    baselines: dict[str, float | None]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool
    worker_id: str | None
    heartbeat_at: datetime | None
    lease_expires_at: datetime | None
    attempts: int
    checkpoint_dir: str | None
    config: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None  # controller.protocol.answer_document, once finished

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["progress"]["fraction"] = self.progress.fraction
        return d


def _count_if(cond):  # noqa: ANN001, ANN202
    return func.sum(case((cond, 1), else_=0)).cast(Integer)


def _matches(rule: Count):  # noqa: ANN202 - controller.progress's rule, in SQL
    conds = [Trial.status.in_(sorted(rule.statuses))]
    if rule.kinds is not None:
        conds.append(Trial.kind.in_(sorted(rule.kinds)))
    if rule.phases is not None:
        conds.append(Trial.phase.in_(sorted(rule.phases)))
    return and_(*conds)


def _reward_of(kind: str):  # noqa: ANN202
    return func.max(
        case((and_(Trial.kind == kind, Trial.status == TrialStatus.SUCCEEDED, _SEARCH_PHASE), Trial.reward))
    )


_AGGREGATES = (
    func.count().label("trials"),
    *(_count_if(_matches(rule)).label(name) for name, rule in COUNTS.items()),
    func.sum(Trial.cpu_seconds).label("cpu_seconds"),
    func.max(case((_SCORED, Trial.reward))).label("best_reward"),
    _reward_of("joint").label("joint"),
    _reward_of("basic").label("basic"),
)
_AGG_ONE = select(*_AGGREGATES).where(Trial.search_id == bindparam("sid"))
_AGG_MANY = (
    select(Trial.search_id, *_AGGREGATES)
    .where(Trial.search_id.in_(bindparam("ids", expanding=True)))
    .group_by(Trial.search_id)
)
_SEARCH_COLUMNS = [c for c in Search.__table__.c]
_SEARCH_ONE = select(*_SEARCH_COLUMNS).where(Search.id == bindparam("sid"))
_BEST_ORDER = (Trial.reward.desc(), Trial.index)
_BEST_INDEX = (
    select(Trial.index).where(Trial.search_id == bindparam("sid"), _SCORED).order_by(*_BEST_ORDER).limit(1)
)
_TRIAL_COLUMNS = [c for c in Trial.__table__.c if c.name not in ("id", "search_id")]
_BEST_TRIAL = (
    select(*_TRIAL_COLUMNS)
    .where(Trial.search_id == bindparam("sid"), _SCORED)
    .order_by(*_BEST_ORDER)
    .limit(1)
)
_TRIAL_COUNT = select(func.count()).select_from(Trial).where(Trial.search_id == bindparam("sid"))


def _summary(row: Any, agg: Any, best_trial: int | None) -> SearchSummary:
    def get(key: str) -> Any:
        return agg[key] if agg is not None else None

    return SearchSummary(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        launched_by=row["launched_by"],
        error=row["error"],
        progress=Progress(
            **{name: get(name) or 0 for name in COUNTS},
            trials=get("trials") or 0,
            budget=row["budget"],
            cpu_seconds=float(get("cpu_seconds") or 0.0),
        ),
        best_reward=get("best_reward"),
        best_trial=best_trial,
        baselines={"joint": get("joint"), "basic": get("basic")},
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        cancel_requested=bool(row["cancel_requested"]),
        worker_id=row["worker_id"],
        heartbeat_at=row["heartbeat_at"],
        lease_expires_at=row["lease_expires_at"],
        attempts=row["attempts"],
        checkpoint_dir=row["checkpoint_dir"],
        config=row["config"],
        fidelity=row["fidelity"],
        answer=row["answer"],
    )


def search_summary(conn: Connection, search_id: int) -> SearchSummary | None:
    row = conn.execute(_SEARCH_ONE, {"sid": search_id}).mappings().one_or_none()
    if row is None:
        return None
    agg = conn.execute(_AGG_ONE, {"sid": search_id}).mappings().one()
    best = conn.execute(_BEST_INDEX, {"sid": search_id}).scalar()
    return _summary(row, agg, best)


def list_summaries(
    conn: Connection, offset: int = 0, limit: int = 50, status: str | None = None
) -> tuple[list[SearchSummary], int]:
    """A page of searches, newest first, and how many there are in all."""
    where = [] if status is None else [Search.status == status]
    total = conn.execute(select(func.count()).select_from(Search).where(*where)).scalar() or 0
    rows = (
        conn.execute(
            select(*_SEARCH_COLUMNS).where(*where).order_by(Search.id.desc()).offset(offset).limit(limit)
        )
        .mappings()
        .all()
    )
    ids = [r["id"] for r in rows]
    aggs = {a["search_id"]: a for a in conn.execute(_AGG_MANY, {"ids": ids}).mappings()} if ids else {}
    return [_summary(r, aggs.get(r["id"]), None) for r in rows], total


def best_trial(conn: Connection, search_id: int) -> dict[str, Any] | None:
    """The best trial by controller.export's rule (the earliest among equals)."""
    row = conn.execute(_BEST_TRIAL, {"sid": search_id}).mappings().one_or_none()
    return dict(row) if row is not None else None


def trial_at(conn: Connection, search_id: int, index: int) -> dict[str, Any] | None:
    stmt = select(*_TRIAL_COLUMNS).where(Trial.search_id == search_id, Trial.index == index)
    row = conn.execute(stmt).mappings().one_or_none()
    return dict(row) if row is not None else None


_PAIRING_COLUMNS = (
    Trial.index,
    Trial.kind,
    Trial.status,
    Trial.phase,
    Trial.seed,
    Trial.reward,
    Trial.genotype_hash,
)


def pairing_rows(conn: Connection, search_id: int) -> tuple[list[Any], int]:
    """What `controller.pairing.Pairing` reads of every trial of a search, and the search's seed
    (the training seed of rows stored before seeds were recorded)."""
    config = conn.execute(select(Search.config).where(Search.id == search_id)).scalar()
    seed = config.get("seed", 0) if isinstance(config, dict) else 0
    rows = conn.execute(select(*_PAIRING_COLUMNS).where(Trial.search_id == search_id)).all()
    return list(rows), seed if isinstance(seed, int) else 0


def trial_page(
    conn: Connection, search_id: int, offset: int, limit: int, status: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Trials as plain dicts (every column but the row id), in index order, and their total
    (of that `status` when given)."""
    where = [Trial.search_id == search_id] + ([] if status is None else [Trial.status == status])
    total = conn.execute(select(func.count()).select_from(Trial).where(*where)).scalar() or 0
    if offset >= total:
        return [], total
    stmt = select(*_TRIAL_COLUMNS).where(*where).order_by(Trial.index).offset(offset).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()], total
