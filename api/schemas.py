"""Response bodies of the REST API. The request body of `POST /searches` is
`controller.config.SearchConfig` itself, the schema of the YAML presets."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.config import SearchConfig
from db.views import SearchSummary

SearchStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Problem(BaseModel):
    detail: str


class FieldProblem(BaseModel):
    field: str = Field(description="dotted path of the offending field, e.g. `train.steps`")
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    message: str = Field(description="the first problem in one line, `field: message`")
    detail: list[FieldProblem]


class Progress(BaseModel):
    evaluated: int = Field(description="candidates trained and scored, failed ones included; not cached ones")
    cached: int = Field(description="duplicate genotypes answered from the cache")
    failed: int
    trials: int = Field(description="all trial rows, the joint and basic baselines included")
    budget: int
    fraction: float = Field(description="evaluated / budget, at most 1")


class Baselines(BaseModel):
    joint: float | None = Field(description="reward of the network without auxiliary modules")
    basic: float | None = Field(description="reward with the paper's hand-designed `basic` modules")


class WorkerInfo(BaseModel):
    id: str | None
    heartbeat_at: datetime | None
    lease_expires_at: datetime | None
    attempts: int = Field(description="times a worker claimed the search (more than 1: it was resumed)")


class SearchOut(BaseModel):
    id: int
    name: str
    status: SearchStatus
    launched_by: Literal["api", "cli"]
    progress: Progress
    best_reward: float | None
    best_trial: int | None = Field(description="index of the best trial (detail view only)")
    baselines: Baselines
    cancel_requested: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: WorkerInfo

    @classmethod
    def of(cls, s: SearchSummary) -> SearchOut:
        return cls(**_summary_fields(s))


class SearchDetail(SearchOut):
    checkpoint_dir: str | None
    config: SearchConfig

    @classmethod
    def of(cls, s: SearchSummary) -> SearchDetail:
        return cls(**_summary_fields(s), checkpoint_dir=s.checkpoint_dir, config=s.config)


def _summary_fields(s: SearchSummary) -> dict[str, Any]:
    p = s.progress
    return {
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "launched_by": s.launched_by,
        "progress": Progress(
            evaluated=p.evaluated,
            cached=p.cached,
            failed=p.failed,
            trials=p.trials,
            budget=p.budget,
            fraction=p.fraction,
        ),
        "best_reward": s.best_reward,
        "best_trial": s.best_trial,
        "baselines": Baselines(**s.baselines),
        "cancel_requested": s.cancel_requested,
        "error": s.error,
        "created_at": s.created_at,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "worker": WorkerInfo(
            id=s.worker_id,
            heartbeat_at=s.heartbeat_at,
            lease_expires_at=s.lease_expires_at,
            attempts=s.attempts,
        ),
    }


class SearchList(BaseModel):
    items: list[SearchOut]
    total: int
    offset: int
    limit: int


class TrialOut(BaseModel):
    index: int
    kind: Literal["joint", "basic", "candidate"]
    status: Literal["succeeded", "failed", "cached"]
    tokens: list[int] | None
    genotype: dict[str, Any] | None = Field(description="genotype JSON v1; null for the joint baseline")
    genotype_hash: str | None
    reward: float | None
    metrics: dict[str, dict[str, float | None]]
    seconds: float
    cached: bool
    early_stopped: bool
    main_params: int
    aux_params: int
    iteration: int | None
    error: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, t: dict[str, Any]) -> TrialOut:
        return cls.model_validate(t)


class TrialPage(BaseModel):
    items: list[TrialOut]
    total: int
    offset: int
    limit: int


class GenotypeDocument(BaseModel):
    """Genotype JSON, version 1 (see DESIGN.md); the format `auxnas validate` and the builder read."""

    model_config = ConfigDict(extra="allow")

    format: Literal["auxnas-genotype"]
    version: Literal[1]
    space: dict[str, Any]
    cells: list[dict[str, Any]]
    tokens: list[int]
    reward: float | None = None
    metrics: dict[str, Any] | None = None
    search: dict[str, Any] | None = None


def trial_page_json(rows: list[dict[str, Any]], total: int, offset: int, limit: int) -> bytes:
    """A `TrialPage` body written directly from rows whose JSON columns are the stored JSON text
    (`SqlStorage.trial_page(raw_json=True)`): that text was written by the storage from checked
    values, so it is spliced in instead of being parsed and serialised again. Same document as
    `TrialPage(...).model_dump_json()` (a test holds them equal)."""
    items = []
    for r in rows:
        created = r["created_at"].astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        items.append(
            f'{{"index":{r["index"]:d},"kind":{_str(r["kind"])},"status":{_str(r["status"])},'
            f'"tokens":{r["tokens"] or "null"},"genotype":{r["genotype"] or "null"},'
            f'"genotype_hash":{_str(r["genotype_hash"])},"reward":{_float(r["reward"])},'
            f'"metrics":{r["metrics"] or "{}"},"seconds":{_float(r["seconds"])},'
            f'"cached":{_bool(r["cached"])},"early_stopped":{_bool(r["early_stopped"])},'
            f'"main_params":{r["main_params"]:d},"aux_params":{r["aux_params"]:d},'
            f'"iteration":{"null" if r["iteration"] is None else format(r["iteration"], "d")},'
            f'"error":{r["error"] or "null"},"created_at":"{created}"}}'
        )
    return f'{{"items":[{",".join(items)}],"total":{total},"offset":{offset},"limit":{limit}}}'.encode()


def _str(v: str | None) -> str:
    return "null" if v is None else json.dumps(v)


def _float(v: float | None) -> str:
    return "null" if v is None else repr(float(v))  # stored values are finite: repr is valid JSON


def _bool(v: Any) -> str:
    return "true" if v else "false"
