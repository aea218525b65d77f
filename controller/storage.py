"""The small interface through which a search records what it does, and the trial record.

Trials move through the lifecycle of `controller.status` (`TRANSITIONS`); `apply_transition` is
the one rule both storages apply. `db.storage.SqlStorage` implements the interface for the
service; `InMemoryStorage` keeps it in a process (tests, benchmarks).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from auxnas.controller.status import FINAL_TRIAL_STATUSES, TRANSITIONS, TrialStatus, search_status

TRIAL_KINDS = ("joint", "basic", "candidate")
# search: the baselines and each candidate at its first seed (the budget counts these candidates);
# racing: a promoted candidate's further seeds and Joint's at them; confirmation: the finalists,
# basic and Joint on fresh seeds; calibration: the optional fidelity phase
TRIAL_PHASES = ("search", "racing", "confirmation", "calibration")


class InvalidTransition(ValueError):
    """A trial asked to move between states the lifecycle does not connect."""


def check_transition(index: int, old: str, new: str) -> None:
    if new not in TRANSITIONS.get(old, frozenset()):
        raise InvalidTransition(f"trial {index}: cannot go from '{old}' to '{new}'")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class TrialRecord:
    index: int  # 0-based order of the trial within its search (the order it was decided)
    kind: str  # "joint" (no aux modules), "basic" or "candidate"
    status: str  # a TrialStatus
    tokens: list[int] | None = None  # None for the joint baseline
    genotype: dict[str, Any] | None = None  # genotype JSON v1 (no reward/metrics), None for joint
    genotype_hash: str | None = None
    reward: float | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0  # wall seconds of the evaluation
    cpu_seconds: float = 0.0  # CPU seconds of the evaluating process
    main_params: int = 0
    aux_params: int = 0
    iteration: int | None = None  # controller iteration that sampled it
    error: dict[str, Any] | None = None
    attempts: int = 0  # times it started running (a dead worker or node adds one)
    node: dict[str, str] | None = None  # the Ray node of its last attempt: {"id": ..., "ip": ...}
    phase: str = "search"  # one of TRIAL_PHASES (only search-phase candidates spend budget)
    seed: int | None = None  # training seed of the evaluation (None in old rows: the search's seed)
    replicate: int | None = None  # calibration: which independent replicate
    per_seed: list[dict[str, Any]] | None = None  # with train.reward_seeds > 1: reward and metrics per seed
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def cached(self) -> bool:
        return self.status == TrialStatus.CACHED

    @property
    def pruned(self) -> bool:
        return self.status == TrialStatus.PRUNED

    @property
    def final(self) -> bool:
        return self.status in FINAL_TRIAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IterationRecord:
    index: int
    num_episodes: int
    reward_mean: float | None
    reward_max: float | None
    stats: dict[str, float] = field(default_factory=dict)  # learner stats (policy loss, entropy, ...)
    seconds: float = 0.0


# fields a transition may set besides the status
TRIAL_RESULT_FIELDS = (
    "reward",
    "metrics",
    "seconds",
    "cpu_seconds",
    "main_params",
    "aux_params",
    "error",
    "node",
    "per_seed",
)


class SearchStorage(ABC):
    """Per-search persistence used by the driver. Implementations must be thread-safe."""

    @abstractmethod
    def add_trials(self, search_id: int, trials: list[TrialRecord]) -> None:
        """Store new trials (all or none); their indexes must be new in the search."""

    @abstractmethod
    def move_trial(self, search_id: int, index: int, status: str, **result: Any) -> TrialRecord:
        """Move one trial to `status` (an allowed transition, else InvalidTransition), setting
        the `TRIAL_RESULT_FIELDS` given; stamps started_at/finished_at; returns the new record."""

    @abstractmethod
    def trials(self, search_id: int) -> list[TrialRecord]: ...

    @abstractmethod
    def add_iteration(self, search_id: int, it: IterationRecord) -> None:
        """Store a controller iteration; storing the same index again keeps the first."""

    @abstractmethod
    def set_status(self, search_id: int, status: str, error: str | None = None) -> None: ...

    @abstractmethod
    def set_checkpoint_dir(self, search_id: int, path: str) -> None: ...

    @abstractmethod
    def set_fidelity(self, search_id: int, fidelity: dict[str, Any]) -> None:
        """Store the calibration figures (`controller.calibration.fidelity_document`)."""

    @abstractmethod
    def set_answer(self, search_id: int, answer: dict[str, Any]) -> None:
        """Store the search's answer (`controller.protocol.answer_document`)."""

    @abstractmethod
    def cancel_requested(self, search_id: int) -> bool: ...


def apply_transition(trial: TrialRecord, status: str, result: dict[str, Any]) -> TrialRecord:
    """The record after a transition: the one rule both storages apply."""
    check_transition(trial.index, trial.status, status)
    unknown = set(result) - set(TRIAL_RESULT_FIELDS)
    if unknown:
        raise ValueError(f"trial {trial.index}: cannot set {sorted(unknown)}")
    now = utcnow()
    changes: dict[str, Any] = {"status": status, **result}
    if status == TrialStatus.RUNNING:
        changes["attempts"] = trial.attempts + 1
        changes["started_at"] = now
        changes["finished_at"] = None
    elif status == TrialStatus.WAITING:
        changes["started_at"] = None
    if status in FINAL_TRIAL_STATUSES:
        changes["finished_at"] = now
    return replace(trial, **changes)


class InMemoryStorage(SearchStorage):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trials: dict[int, dict[int, TrialRecord]] = {}
        self._iterations: dict[int, dict[int, IterationRecord]] = {}
        self.status: dict[int, tuple[str, str | None]] = {}
        self.checkpoint_dirs: dict[int, str] = {}
        self.fidelity: dict[int, dict[str, Any]] = {}
        self.answers: dict[int, dict[str, Any]] = {}
        self.cancelled: set[int] = set()

    def add_trials(self, search_id: int, trials: list[TrialRecord]) -> None:
        with self._lock:
            stored = self._trials.setdefault(search_id, {})
            clash = [t.index for t in trials if t.index in stored]
            if clash or len({t.index for t in trials}) != len(trials):
                raise ValueError(f"search {search_id}: trial {clash[:1] or 'index'} is already stored")
            now = utcnow()
            for t in trials:
                stored[t.index] = replace(t, created_at=t.created_at or now)

    def move_trial(self, search_id: int, index: int, status: str, **result: Any) -> TrialRecord:
        with self._lock:
            stored = self._trials.get(search_id, {})
            if index not in stored:
                raise KeyError(f"search {search_id} has no trial {index}")
            stored[index] = apply_transition(stored[index], status, result)
            return stored[index]

    def trials(self, search_id: int) -> list[TrialRecord]:
        with self._lock:
            return [t for _, t in sorted(self._trials.get(search_id, {}).items())]

    def add_iteration(self, search_id: int, it: IterationRecord) -> None:
        with self._lock:
            self._iterations.setdefault(search_id, {}).setdefault(it.index, it)

    def iterations(self, search_id: int) -> list[IterationRecord]:
        with self._lock:
            return [it for _, it in sorted(self._iterations.get(search_id, {}).items())]

    def set_status(self, search_id: int, status: str, error: str | None = None) -> None:
        search_status(status)
        with self._lock:
            self.status[search_id] = (status, error)

    def set_checkpoint_dir(self, search_id: int, path: str) -> None:
        with self._lock:
            self.checkpoint_dirs[search_id] = path

    def set_fidelity(self, search_id: int, fidelity: dict[str, Any]) -> None:
        with self._lock:
            self.fidelity[search_id] = fidelity

    def set_answer(self, search_id: int, answer: dict[str, Any]) -> None:
        with self._lock:
            self.answers[search_id] = answer

    def cancel_requested(self, search_id: int) -> bool:
        with self._lock:
            return search_id in self.cancelled
