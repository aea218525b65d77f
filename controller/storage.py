"""The small interface through which a search records what it does.

The search driver writes every trial as soon as its evaluation ends, and every controller
iteration; `db.storage.SqlStorage` implements the same interface for the service.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

SEARCH_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TRIAL_KINDS = ("joint", "basic", "candidate")
TRIAL_STATUSES = ("succeeded", "failed", "cached")


@dataclass
class TrialRecord:
    index: int  # 0-based order of the trial within its search
    kind: str  # "joint" (no aux modules), "basic" or "candidate"
    status: str  # "succeeded" | "failed" | "cached"
    tokens: list[int] | None = None  # None for the joint baseline
    genotype: dict[str, Any] | None = None  # genotype JSON v1 (no reward/metrics), None for joint
    genotype_hash: str | None = None
    reward: float | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False
    early_stopped: bool = False
    main_params: int = 0
    aux_params: int = 0
    iteration: int | None = None  # controller iteration that sampled it
    error: dict[str, str] | None = None

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


class SearchStorage(ABC):
    """Per-search persistence used by the driver. Implementations must be thread-safe."""

    @abstractmethod
    def add_trial(self, search_id: int, trial: TrialRecord) -> None: ...

    @abstractmethod
    def trials(self, search_id: int) -> list[TrialRecord]: ...

    @abstractmethod
    def add_iteration(self, search_id: int, it: IterationRecord) -> None: ...

    @abstractmethod
    def set_status(self, search_id: int, status: str, error: str | None = None) -> None: ...

    @abstractmethod
    def set_checkpoint_dir(self, search_id: int, path: str) -> None: ...

    @abstractmethod
    def cancel_requested(self, search_id: int) -> bool: ...


class InMemoryStorage(SearchStorage):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trials: dict[int, list[TrialRecord]] = {}
        self._iterations: dict[int, list[IterationRecord]] = {}
        self.status: dict[int, tuple[str, str | None]] = {}
        self.checkpoint_dirs: dict[int, str] = {}
        self.cancelled: set[int] = set()

    def add_trial(self, search_id: int, trial: TrialRecord) -> None:
        with self._lock:
            self._trials.setdefault(search_id, []).append(trial)

    def trials(self, search_id: int) -> list[TrialRecord]:
        with self._lock:
            return list(self._trials.get(search_id, []))

    def add_iteration(self, search_id: int, it: IterationRecord) -> None:
        with self._lock:
            self._iterations.setdefault(search_id, []).append(it)

    def iterations(self, search_id: int) -> list[IterationRecord]:
        with self._lock:
            return list(self._iterations.get(search_id, []))

    def set_status(self, search_id: int, status: str, error: str | None = None) -> None:
        if status not in SEARCH_STATUSES:
            raise ValueError(f"unknown search status {status!r}")
        with self._lock:
            self.status[search_id] = (status, error)

    def set_checkpoint_dir(self, search_id: int, path: str) -> None:
        with self._lock:
            self.checkpoint_dirs[search_id] = path

    def cancel_requested(self, search_id: int) -> bool:
        with self._lock:
            return search_id in self.cancelled
