"""Response bodies of the REST API. The request body of `POST /searches` is
`controller.config.SearchConfig` itself, the schema of the YAML presets."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from auxnas.controller.config import CONFIG_SCHEMA_VERSION, SearchConfig
from auxnas.controller.pairing import Pairing
from auxnas.controller.status import SearchStatus, TrialStatus
from auxnas.controller.storage import TrialRecord
from auxnas.db.views import SearchSummary
from auxnas.evaluator.config import describe_validation_error


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
    running: int = Field(description="evaluations running now")
    waiting: int = Field(description="trials decided and not started yet")
    trials: int = Field(description="all trial rows, the joint and basic baselines included")
    budget: int
    fraction: float = Field(description="evaluated / budget, at most 1")
    evaluations: int = Field(
        0,
        description="trainings run in every phase (candidate x seed): a candidate raced on 3 training "
        "seeds counts 3; baselines, racing and confirmation included",
    )
    cpu_seconds: float = Field(0.0, description="CPU seconds of those evaluations")


class Baselines(BaseModel):
    joint: float | None = Field(description="reward of the network without auxiliary modules")
    basic: float | None = Field(description="reward with the paper's hand-designed `basic` modules")


class Comparison(BaseModel):
    """A module's paired gain over a baseline (Joint or basic) on the confirmation seeds."""

    module: str = Field(description="a finalist's short genotype hash, or `basic`")
    baseline: Literal["joint", "basic"]
    n: int = Field(description="confirmation seeds paired")
    mean: float = Field(description="mean paired gain")
    se: float | None = Field(description="its standard error")
    p: float | None = Field(description="one-sided paired t test of gain <= 0")
    lower: float | None = Field(description="the plain interval at `confidence`")
    upper: float | None
    level: float | None = Field(
        description="over Joint: the one-sided level the family-wise correction tested it at (0: not reached)"
    )
    adj_lower: float | None = Field(description="the interval at that level; above 0 decides")
    adj_upper: float | None
    above_zero: bool | None = Field(description="over Joint: the correction declares the gain above 0")


class RacingFigure(BaseModel):
    """A candidate's paired gains over Joint on its search seeds (racing)."""

    key: str
    seeds: list[int]
    gains: list[float]
    mean: float
    se: float | None


class AnswerModule(BaseModel):
    genotype_hash: str
    trial: int = Field(description="index of the module's search-phase trial (its genotype)")


class AnswerOut(BaseModel):
    """What the search tells its user: the module to use, or that none beats Joint."""

    verdict: str = Field(
        description="the answer in one line, as `auxnas search` and `auxnas status` print it"
    )
    recommended: bool = Field(description="a module is recommended (only ever after confirmation)")
    module: str | None = Field(description="the recommended module (short hash or `basic`); null: Joint")
    confirmed: bool = Field(description="false when the search skipped confirmation (confirm.seeds 0)")
    confirm_seeds: int
    confidence: float = Field(description="two-sided level of the intervals")
    correction: str | None = Field(description="the family-wise correction over the finalists and basic")
    quoted: str | None = Field(description="the module whose figures the verdict quotes")
    over_joint: Comparison | None
    over_basic: Comparison | None
    comparisons: list[Comparison] = Field(description="every comparison of the confirmation")
    racing: RacingFigure | None = Field(
        description="unconfirmed answers: the quoted candidate's racing gains"
    )
    finalists: list[str] = Field(description="the top candidates by racing, best first")
    modules: dict[str, AnswerModule]
    seeds: dict[str, list[int]] = Field(
        description="`search`: training seeds racing used; `confirmation`: the fresh ones"
    )
    racing_rule: dict[str, Any]


def answer_out(answer: dict[str, Any] | None) -> AnswerOut | None:
    """The stored answer as served; None before there is one (or if it cannot be read)."""
    if not answer:
        return None
    try:
        return AnswerOut.model_validate(answer)
    except ValidationError:
        return None


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
    # a stored config that today's schema refuses (e.g. `lr: Infinity` from before the bounds)
    # is shown as stored, and "Infinity" is written as a string since JSON has no such number
    model_config = ConfigDict(ser_json_inf_nan="strings")

    checkpoint_dir: str | None
    config: SearchConfig | dict[str, Any] = Field(
        description="the search config: as today's schema reads it when `config_valid`, "
        "else exactly as stored"
    )
    config_valid: bool = Field(description="whether the stored config still validates under today's schema")
    config_error: str | None = Field(description="why it does not, in one line naming the field")
    config_schema_version: int = Field(
        description=f"schema version the config was stored under (today's: {CONFIG_SCHEMA_VERSION}; "
        "1: stored before versions were recorded)"
    )

    fidelity: dict[str, Any] | None = Field(
        None,
        description="calibration figures when the search calibrated (search.calibrate): spearman and "
        "kendall between replicates with 90% intervals, spread, noise, per-genotype rewards, verdict",
    )

    verdict: str | None = Field(
        None,
        description="the answer in one line (`answer.verdict`); null until the search has finished",
    )
    answer: AnswerOut | None = Field(
        None,
        description="the search's answer: racing over training seeds, then confirmation of the finalists, "
        "basic and Joint on fresh seeds; null until the search has finished",
    )

    @classmethod
    def of(cls, s: SearchSummary) -> SearchDetail:
        answer = answer_out(s.answer)
        return cls(
            **_summary_fields(s),
            checkpoint_dir=s.checkpoint_dir,
            fidelity=s.fidelity,
            verdict=answer.verdict if answer else None,
            answer=answer,
            **stored_config_fields(s.config),
        )


def stored_config_fields(stored: Any) -> dict[str, Any]:
    """The `config*` fields of a search detail; never raises, whatever was stored."""
    version = stored.get("schema_version", 1) if isinstance(stored, dict) else 1
    try:
        config: SearchConfig | dict[str, Any] = SearchConfig.model_validate(stored)
        error = None
    except ValidationError as e:
        config = stored if isinstance(stored, dict) else {"stored": stored}
        error = describe_validation_error(e)
    return {
        "config": config,
        "config_valid": error is None,
        "config_error": error,
        "config_schema_version": version if isinstance(version, int) and not isinstance(version, bool) else 1,
    }


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
            running=p.running,
            waiting=p.waiting,
            trials=p.trials,
            budget=p.budget,
            fraction=p.fraction,
            evaluations=p.evaluations,
            cpu_seconds=p.cpu_seconds,
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


class NodeOut(BaseModel):
    id: str | None = Field(description="Ray node id")
    ip: str | None = Field(description="the node's address")


class TrialOut(BaseModel):
    index: int
    kind: Literal["joint", "basic", "candidate"]
    status: TrialStatus = Field(
        description="waiting -> running -> succeeded | failed | pruned (early stopped); or cached"
    )
    phase: Literal["search", "racing", "confirmation", "calibration"] = Field(
        description="search: baselines and each candidate at its first seed; racing: a promoted "
        "candidate's further seeds and Joint's at them; confirmation: the fresh seeds"
    )
    replicate: int | None = Field(description="calibration trials: the replicate")
    seed: int | None = Field(description="the training seed of this evaluation")
    gain: float | None = Field(
        None, description="this evaluation's paired gain: its reward minus Joint's at the same seed"
    )
    seeds: list[int] | None = Field(
        None,
        description="the module's seeds with a paired gain in this trial's phase group (search and racing, "
        "or confirmation)",
    )
    mean_gain: float | None = Field(None, description="the module's mean paired gain over those seeds")
    gain_se: float | None = Field(None, description="its standard error (null with one seed)")
    tokens: list[int] | None
    genotype: dict[str, Any] | None = Field(description="genotype JSON v1; null for the joint baseline")
    genotype_hash: str | None
    reward: float | None
    metrics: dict[str, dict[str, float | None]]
    per_seed: list[dict[str, Any]] | None = Field(description="with train.reward_seeds > 1: per seed")
    seconds: float = Field(description="wall seconds of the evaluation")
    cpu_seconds: float = Field(description="CPU seconds of the process that evaluated it")
    cached: bool = Field(description="status is cached: the reward of an earlier trial of the genotype")
    main_params: int
    aux_params: int
    iteration: int | None
    error: dict[str, Any] | None
    attempts: int = Field(description="times it started running (more than 1: its worker or node died)")
    node: NodeOut | None = Field(description="the Ray node of its last attempt")
    created_at: datetime = Field(description="when it was decided (waiting)")
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, t: TrialRecord, pairing: Pairing | None = None) -> TrialOut:
        gains = asdict(pairing.of(t)) if pairing is not None else {}
        seed = (
            t.seed
            if t.seed is not None or pairing is None or t.phase == "calibration"
            else pairing.default_seed
        )
        return cls.model_validate({**asdict(t), **gains, "seed": seed, "cached": t.cached})


class IterationOut(BaseModel):
    index: int
    num_episodes: int = Field(description="genotypes proposed in this iteration")
    reward_mean: float | None
    reward_max: float | None
    stats: dict[str, float | None] = Field(description="learner statistics (policy loss, entropy, timings)")
    seconds: float


class TrialPage(BaseModel):
    items: list[TrialOut]
    total: int
    offset: int
    limit: int


class GenotypeDocument(BaseModel):
    """Genotype JSON, version 1 or 2 (docs/design.md); the format `auxnas validate` and the builder
    read. Version 2 adds `recommended` and `answer` (a search's answer)."""

    model_config = ConfigDict(extra="allow")

    format: Literal["auxnas-genotype"]
    version: Literal[1, 2]
    space: dict[str, Any]
    cells: list[dict[str, Any]]
    tokens: list[int]
    reward: float | None = None
    metrics: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    recommended: bool | None = Field(
        None, description="version 2: whether the search recommends training with this module"
    )
    answer: dict[str, Any] | None = Field(
        None,
        description="version 2: the answer's verdict and confirmation figures (null: no answer yet)",
    )
