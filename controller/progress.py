"""What a search's progress counts: one definition, which the driver applies to its rows in
Python (`auxnas search`, the failure limit) and `db.views` in SQL (`auxnas status`, the API).

- evaluated: candidates of the search phase that were trained (they spent budget);
- cached: search-phase trials answered from the cache (no budget spent);
- failed: search-phase trials that failed, the count `search.max_failed_trials` limits. A
  failed calibration trial is not one of them: the calibration phase judges its own failures
  (too many and it cannot rank, which fails the search with that reason), and the trial list
  shows it;
- running, waiting: trials evaluating now, and decided but not started, in every phase;
- evaluations: trainings run in every phase (candidate x seed: a candidate raced over three
  training seeds counts three; baselines, racing and confirmation included), the protocol's cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from auxnas.controller.status import SPENT_TRIAL_STATUSES, TrialStatus

SEARCH_PHASE = "search"


@dataclass(frozen=True)
class Count:
    """Trials whose status, kind and phase are among these (None: any)."""

    statuses: frozenset[str]
    kinds: frozenset[str] | None = None
    phases: frozenset[str] | None = None

    def counts(self, trial: object) -> bool:
        return (
            trial.status in self.statuses
            and (self.kinds is None or trial.kind in self.kinds)
            and (self.phases is None or trial.phase in self.phases)
        )


COUNTS: dict[str, Count] = {
    "evaluated": Count(SPENT_TRIAL_STATUSES, frozenset({"candidate"}), frozenset({SEARCH_PHASE})),
    "cached": Count(frozenset({TrialStatus.CACHED}), phases=frozenset({SEARCH_PHASE})),
    "failed": Count(frozenset({TrialStatus.FAILED}), phases=frozenset({SEARCH_PHASE})),
    "running": Count(frozenset({TrialStatus.RUNNING})),
    "waiting": Count(frozenset({TrialStatus.WAITING})),
    "evaluations": Count(SPENT_TRIAL_STATUSES),
}


def count(name: str, trials: Iterable[object]) -> int:
    """How many of `trials` the progress figure `name` counts."""
    rule = COUNTS[name]
    return sum(1 for t in trials if rule.counts(t))
