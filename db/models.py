"""Tables: searches, their trials and their controller iterations (SQLAlchemy 2 declarative).

Everything the API reports is derived from these rows; schema changes go through a new Alembic
revision in `db/migrations/versions/`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.ext.hybrid import hybrid_method
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from auxnas.controller.status import SearchStatus


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC (SQLite has no time zones), returned as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


# Python None becomes SQL NULL (not JSON 'null'), so `IS NULL` filters mean what they say
NULLABLE_JSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    pass


def lease_expired(status: str, lease_expires_at: datetime | None, now: datetime) -> bool:
    """The lease-expiry rule: the search is `running` but its holder (a worker, or the `auxnas
    search` that runs it) stopped renewing its lease before it ran out, so it died. Such a search
    is shown as interrupted, any worker may resume it, and a cancel ends it at once.
    `Search.lease_expired(now)` is the same rule in SQL."""
    return status == SearchStatus.RUNNING and lease_expires_at is not None and lease_expires_at < now


def lease_held(status: str, lease_expires_at: datetime | None, now: datetime) -> bool:
    """A holder owns the running search: its lease has not expired."""
    return (
        status == SearchStatus.RUNNING
        and lease_expires_at is not None
        and not lease_expired(status, lease_expires_at, now)
    )


class Search(Base):
    __tablename__ = "searches"

    @hybrid_method
    def lease_expired(self, now: datetime) -> bool:
        return lease_expired(self.status, self.lease_expires_at, now)

    @lease_expired.expression
    def lease_expired(cls, now: datetime):  # noqa: ANN206, N805 - the SQL side of the rule
        return and_(
            cls.status == SearchStatus.RUNNING,
            cls.lease_expires_at.is_not(None),
            cls.lease_expires_at < now,
        )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # a validated SearchConfig, dumped
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    budget: Mapped[int] = mapped_column(Integer)
    launched_by: Mapped[str] = mapped_column(String(16), default="api")  # "api" (workers) | "cli"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the worker (or `auxnas search`) holding the search; it owns it until lease_expires_at,
    # which its heartbeat renews (`lease_expired`)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times a worker claimed it
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    checkpoint_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the calibration figures (controller.calibration.fidelity_document), when it calibrated
    fidelity: Mapped[dict[str, Any] | None] = mapped_column(NULLABLE_JSON, nullable=True)
    # the answer of a finished search (controller.protocol.answer_document): the recommended module
    # or Joint, with the confirmation figures and the verdict line
    answer: Mapped[dict[str, Any] | None] = mapped_column(NULLABLE_JSON, nullable=True)


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("search_id", "index", name="uq_trials_search_index"),
        Index("ix_trials_search_reward", "search_id", "reward"),
        Index("ix_trials_search_status", "search_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # joint | basic | candidate
    # waiting | running | succeeded | failed | pruned | cached (controller.storage.TRANSITIONS)
    status: Mapped[str] = mapped_column(String(16))
    # search | racing (a candidate's further seeds) | confirmation | calibration
    phase: Mapped[str] = mapped_column(String(16), default="search")
    # the training seed of the evaluation (NULL in rows stored before seeds were recorded: the
    # search's `seed`)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    replicate: Mapped[int | None] = mapped_column(Integer, nullable=True)  # calibration replicate
    tokens: Mapped[list[int] | None] = mapped_column(NULLABLE_JSON, nullable=True)
    genotype: Mapped[dict[str, Any] | None] = mapped_column(NULLABLE_JSON, nullable=True)
    genotype_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    per_seed: Mapped[list[dict[str, Any]] | None] = mapped_column(NULLABLE_JSON, nullable=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    main_params: Mapped[int] = mapped_column(BigInteger, default=0)
    aux_params: Mapped[int] = mapped_column(BigInteger, default=0)
    iteration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(NULLABLE_JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times it started running
    node_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # Ray node of the last attempt
    node_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # decided (waiting)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Iteration(Base):
    __tablename__ = "iterations"
    __table_args__ = (UniqueConstraint("search_id", "index", name="uq_iterations_search_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    num_episodes: Mapped[int] = mapped_column(Integer)
    reward_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    reward_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
