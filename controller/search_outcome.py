"""What a search driver reports (its progress, its outcome) and the two ways a search ends early."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auxnas.controller.storage import TrialRecord


@dataclass
class SearchProgress:
    evaluated: int  # candidates evaluated (budget spent; failed ones included)
    cached: int  # candidates answered from the cache
    failed: int  # failed search-phase trials, baselines included (controller.progress)
    budget: int
    best_reward: float | None  # best genotype so far (basic or candidate)
    elapsed: float  # seconds since run() started
    iteration: int = 0  # controller iterations finished
    running: int = 0  # evaluations in flight (started or not)
    waiting_for_resources: int = 0  # submitted to Ray, not started: no free slot for them yet
    # "calibration" | "baselines" | "search" | "racing" | "confirmation" | "done"
    phase: str = "baselines"
    calibrated: int = 0  # calibration trials finished
    calibration_total: int = 0
    evaluations: int = 0  # trainings run (candidate x seed, baselines and confirmation included)
    cpu_seconds: float = 0.0  # CPU seconds of those trainings
    confirmed: int = 0  # confirmation rows finished
    confirmation_total: int = 0


@dataclass
class SearchOutcome:
    status: str  # a final SearchStatus
    search_id: int = 0
    error: str | None = None
    best: TrialRecord | None = None
    joint: TrialRecord | None = None
    basic: TrialRecord | None = None
    trials: list[TrialRecord] = field(default_factory=list)
    iterations: int = 0
    evaluated: int = 0
    cached: int = 0
    failed: int = 0
    stop_reason: str | None = None  # why a succeeded search stopped
    elapsed: float = 0.0
    fidelity: dict[str, Any] | None = None  # the calibration figures, when it calibrated
    answer: dict[str, Any] | None = None  # controller.protocol.answer_document, when it finished
    evaluations: int = 0  # trainings run (candidate x seed)
    cpu_seconds: float = 0.0


class SearchCancelled(Exception):
    pass


class SearchFailed(Exception):
    """Ends the search with status failed; the message is what users see."""


def is_system_failure(error: dict[str, Any] | None) -> bool:
    """The evaluation did not fail: its Ray worker process or node did (see evaluator.remote)."""
    return bool(error and error.get("system"))
