"""What the API and `auxnas status` show, always computed from the rows (nothing kept in memory).

Progress, best reward and baseline rewards of a search are aggregates over its trial rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, case, func, select
from sqlalchemy.orm import Session

from db.models import Search, Trial

# trials that can be "the best" (as the driver decides it): a genotype, a reward that is not a
# failure, and a full training run (an early-stopped reward is a partial one)
_SCORED = and_(
    Trial.kind != "joint",
    Trial.status != "failed",
    Trial.reward.is_not(None),
    Trial.early_stopped.is_(False),
)


@dataclass
class Progress:
    evaluated: int = 0  # candidates trained and scored (succeeded or failed), not cached ones
    cached: int = 0  # duplicates answered from the cache
    failed: int = 0
    trials: int = 0  # all trial rows, baselines included
    budget: int = 0

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["progress"]["fraction"] = self.progress.fraction
        return d


def _aggregates(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}

    def count_if(cond):  # noqa: ANN001, ANN202
        return func.sum(case((cond, 1), else_=0)).cast(Integer)

    def reward_of(kind: str):  # noqa: ANN202
        return func.max(case((and_(Trial.kind == kind, Trial.status != "failed"), Trial.reward)))

    q = (
        select(
            Trial.search_id,
            func.count().label("trials"),
            count_if(and_(Trial.kind == "candidate", Trial.status != "cached")).label("evaluated"),
            count_if(Trial.status == "cached").label("cached"),
            count_if(Trial.status == "failed").label("failed"),
            func.max(case((_SCORED, Trial.reward))).label("best_reward"),
            reward_of("joint").label("joint"),
            reward_of("basic").label("basic"),
        )
        .where(Trial.search_id.in_(ids))
        .group_by(Trial.search_id)
    )
    return {row.search_id: row._asdict() for row in session.execute(q)}


def _summary(row: Search, agg: dict[str, Any] | None, best_trial: int | None) -> SearchSummary:
    agg = agg or {}
    return SearchSummary(
        id=row.id,
        name=row.name,
        status=row.status,
        launched_by=row.launched_by,
        error=row.error,
        progress=Progress(
            evaluated=agg.get("evaluated") or 0,
            cached=agg.get("cached") or 0,
            failed=agg.get("failed") or 0,
            trials=agg.get("trials") or 0,
            budget=row.budget,
        ),
        best_reward=agg.get("best_reward"),
        best_trial=best_trial,
        baselines={"joint": agg.get("joint"), "basic": agg.get("basic")},
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        cancel_requested=row.cancel_requested,
        worker_id=row.worker_id,
        heartbeat_at=row.heartbeat_at,
        lease_expires_at=row.lease_expires_at,
        attempts=row.attempts,
        checkpoint_dir=row.checkpoint_dir,
        config=row.config,
    )


def best_trial(session: Session, search_id: int) -> Trial | None:
    """The highest-reward trial with a genotype; among equals the earliest (not a cached copy)."""
    q = (
        select(Trial)
        .where(Trial.search_id == search_id, _SCORED)
        .order_by(Trial.reward.desc(), Trial.cached, Trial.index)
        .limit(1)
    )
    return session.scalars(q).first()


def search_summary(session: Session, search_id: int) -> SearchSummary | None:
    row = session.get(Search, search_id)
    if row is None:
        return None
    best = best_trial(session, search_id)
    return _summary(row, _aggregates(session, [search_id]).get(search_id), best.index if best else None)


def list_summaries(
    session: Session, offset: int = 0, limit: int = 50, status: str | None = None
) -> tuple[list[SearchSummary], int]:
    """A page of searches, newest first, and how many there are in all."""
    where = [] if status is None else [Search.status == status]
    total = session.scalar(select(func.count()).select_from(Search).where(*where)) or 0
    rows = list(
        session.scalars(select(Search).where(*where).order_by(Search.id.desc()).offset(offset).limit(limit))
    )
    aggs = _aggregates(session, [r.id for r in rows])
    return [_summary(r, aggs.get(r.id), None) for r in rows], total


def trial_page(session: Session, search_id: int, offset: int, limit: int) -> tuple[list[Trial], int]:
    total = session.scalar(select(func.count()).select_from(Trial).where(Trial.search_id == search_id))
    rows = session.scalars(
        select(Trial).where(Trial.search_id == search_id).order_by(Trial.index).offset(offset).limit(limit)
    )
    return list(rows), total or 0
