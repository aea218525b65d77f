"""Which worker runs which search: atomic claims and lease renewal.

A worker claims the oldest queued search, or a running one whose lease expired
(`db.models.lease_expired`: its worker, or the `auxnas search` that ran it, died; the claimer
resumes it). The claim is one conditional UPDATE that re-checks the condition
and must hit exactly one row, so two workers can never both win; on PostgreSQL the candidate
rows are also locked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers pick different
searches instead of queueing on the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, literal, or_, select, update

from auxnas.controller.status import SearchStatus
from auxnas.db.engine import transaction
from auxnas.db.models import Search, UTCDateTime, utcnow
from auxnas.db.storage import SqlStorage


@dataclass(frozen=True)
class Claim:
    search_id: int
    resume: bool  # it ran before (a worker died holding it): continue from trials + checkpoint
    attempts: int
    lease_expires_at: datetime


def _claimable(now: datetime):  # noqa: ANN202
    # whoever launched it: a CLI search holds a lease too, so a dead `auxnas search` is resumed
    return or_(Search.status == SearchStatus.QUEUED, Search.lease_expired(now))


def claim_next(storage: SqlStorage, worker_id: str, lease_seconds: float) -> Claim | None:
    now = utcnow()
    lease_until = now + timedelta(seconds=lease_seconds)
    postgres = storage.engine.dialect.name == "postgresql"
    with transaction(storage.sessions, write=True) as s:
        # a search cancelled while its worker was dead needs no worker to end it
        s.execute(
            update(Search)
            .where(Search.lease_expired(now), Search.cancel_requested.is_(True))
            .values(status=SearchStatus.CANCELLED, finished_at=now, lease_expires_at=None)
        )
        q = (
            select(Search.id, Search.status, Search.started_at, Search.attempts)
            .where(_claimable(now))
            .order_by(Search.created_at, Search.id)
            .limit(8)
        )
        if postgres:
            q = q.with_for_update(skip_locked=True)
        for cand in s.execute(q).all():
            res = s.execute(
                update(Search)
                .where(Search.id == cand.id, _claimable(now))
                .values(
                    status=SearchStatus.RUNNING,
                    worker_id=worker_id,
                    lease_expires_at=lease_until,
                    heartbeat_at=now,
                    started_at=func.coalesce(Search.started_at, literal(now, UTCDateTime())),
                    attempts=Search.attempts + 1,
                    error=None,
                )
            )
            if res.rowcount == 1:
                return Claim(
                    search_id=cand.id,
                    resume=cand.status == SearchStatus.RUNNING or cand.started_at is not None,
                    attempts=cand.attempts + 1,
                    lease_expires_at=lease_until,
                )
    return None


def renew_lease(storage: SqlStorage, search_id: int, worker_id: str, lease_seconds: float) -> datetime | None:
    """Extend this worker's lease; None when the search is no longer running under it."""
    now = utcnow()
    until = now + timedelta(seconds=lease_seconds)
    with transaction(storage.sessions, write=True) as s:
        res = s.execute(
            update(Search)
            .where(
                Search.id == search_id, Search.worker_id == worker_id, Search.status == SearchStatus.RUNNING
            )
            .values(lease_expires_at=until, heartbeat_at=now)
        )
        return until if res.rowcount == 1 else None
