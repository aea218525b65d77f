"""The statuses of searches and trials: the one list that the storages, the SQL views and the
API schema use (a `StrEnum` member is its string, so rows and JSON hold the plain value).

A search is `queued` until a worker claims it (an `auxnas search` starts it `running`), then
ends `succeeded`, `failed` or `cancelled`.

A trial row exists from the moment its evaluation is decided (after Optuna's `TrialState`):

    waiting --> running --> succeeded | failed | pruned
       |           |
       |           +--> waiting      (its worker or node died, or the search stopped: re-run later)
       +--> cached                   (a duplicate: the reward of an earlier trial of the genotype)
       +--> failed                   (never started: e.g. the search gave up on it)

`succeeded`, `failed`, `pruned` (early stopped: its reward is a first-stage reward) and `cached`
are final.
"""

from __future__ import annotations

from enum import StrEnum


class SearchStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL_SEARCH_STATUSES


class TrialStatus(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PRUNED = "pruned"
    CACHED = "cached"

    @property
    def final(self) -> bool:
        return self in FINAL_TRIAL_STATUSES


FINAL_SEARCH_STATUSES = frozenset({SearchStatus.SUCCEEDED, SearchStatus.FAILED, SearchStatus.CANCELLED})
FINAL_TRIAL_STATUSES = frozenset(
    {TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.PRUNED, TrialStatus.CACHED}
)
# a candidate in one of these was trained: it spent budget (cached ones did not)
SPENT_TRIAL_STATUSES = frozenset({TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.PRUNED})
TRANSITIONS: dict[TrialStatus, frozenset[TrialStatus]] = {
    TrialStatus.WAITING: frozenset({TrialStatus.RUNNING, TrialStatus.CACHED, TrialStatus.FAILED}),
    TrialStatus.RUNNING: frozenset(
        {TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.PRUNED, TrialStatus.WAITING}
    ),
    **{s: frozenset() for s in FINAL_TRIAL_STATUSES},
}


def search_status(value: str) -> SearchStatus:
    """`value` as a SearchStatus; ValueError naming it when it is none."""
    try:
        return SearchStatus(value)
    except ValueError:
        raise ValueError(f"unknown search status {value!r}") from None
