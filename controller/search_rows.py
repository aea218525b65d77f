"""The search driver's trial rows: what it counts from them, how it records a change (in the
storage first), and the rules over them that end a search (failure limit, failed baselines).

`SearchRows` is a part of `controller.driver.SearchDriver`, which holds the state it uses.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from auxnas.controller.config import SearchConfig
from auxnas.controller.export import best_trial
from auxnas.controller.progress import count
from auxnas.controller.search_outcome import SearchFailed, is_system_failure
from auxnas.controller.status import SPENT_TRIAL_STATUSES as SPENT
from auxnas.controller.status import TrialStatus
from auxnas.controller.storage import SearchStorage, TrialRecord
from auxnas.search_space import Genotype

# failures that belong to the architecture: every other failure of a baseline would hit every
# candidate too (data, config, code), so it ends the search
ARCHITECTURE_FAILURES = ("NaNLoss", "OutOfMemory", "InvalidReward")


class SearchRows:
    # set by SearchDriver.__init__ (controller.driver)
    config: SearchConfig
    storage: SearchStorage
    search_id: int
    trials: dict[int, TrialRecord]
    cache: dict[str, TrialRecord]
    timings: dict[str, list[float]]

    def trial_list(self) -> list[TrialRecord]:
        return [t for _, t in sorted(self.trials.items())]

    def _search_trials(self) -> list[TrialRecord]:
        return [t for t in self.trials.values() if t.phase == "search"]

    @property
    def evaluated(self) -> int:
        return count("evaluated", self.trials.values())

    @property
    def cached(self) -> int:
        return count("cached", self.trials.values())

    @property
    def failed(self) -> int:
        return count("failed", self.trials.values())

    @property
    def evaluations(self) -> int:
        """Trainings run, every phase: a candidate raced over three seeds counts three."""
        return count("evaluations", self.trials.values())

    @property
    def cpu_seconds(self) -> float:
        return sum(t.cpu_seconds for t in self.trials.values())

    @property
    def best(self) -> TrialRecord | None:
        return best_trial(self.trials.values())

    def _baseline(self, kind: str) -> TrialRecord | None:
        return next((t for t in self._search_trials() if t.kind == kind), None)

    @property
    def next_index(self) -> int:
        return max(self.trials, default=-1) + 1

    def _iteration_rows(self, k: int) -> list[TrialRecord]:
        return sorted(
            (t for t in self._search_trials() if t.kind == "candidate" and t.iteration == k),
            key=lambda t: t.index,
        )

    def _account(self, trial: TrialRecord) -> None:
        self.trials[trial.index] = trial
        if (
            trial.phase == "search"
            and trial.genotype_hash
            and trial.status in SPENT
            and not is_system_failure(trial.error)
        ):
            self.cache.setdefault(trial.genotype_hash, trial)

    def _move(self, index: int, status: str, **result: Any) -> TrialRecord:
        started = time.perf_counter()
        trial = self.storage.move_trial(self.search_id, index, status, **result)
        self._account(trial)
        self.timings.setdefault("record_seconds", []).append(time.perf_counter() - started)
        return trial

    def _add(self, trials: list[TrialRecord]) -> None:
        self.storage.add_trials(self.search_id, trials)
        for t in trials:
            self._account(t)
        self._emit_progress()

    def _waiting(
        self, genotype: Genotype, index: int, iteration: int | None, kind: str = "candidate"
    ) -> TrialRecord:
        return TrialRecord(
            index=index,
            kind=kind,
            status=TrialStatus.WAITING,
            tokens=list(genotype.tokens),
            genotype=genotype.to_json(),
            genotype_hash=genotype.canonical_hash(),
            iteration=iteration,
            seed=self.config.seed,
        )

    @staticmethod
    def _cached_copy(row: TrialRecord, original: TrialRecord, status: str) -> TrialRecord:
        return replace(row, status=status, **result_of(original), seconds=0.0, cpu_seconds=0.0)

    def _check_failure_limit(self, last: TrialRecord | None = None) -> None:
        limit = self.config.search.max_failed_trials
        if self.failed > limit:
            err = (last.error if last else None) or next(
                (t.error for t in reversed(self.trial_list()) if t.status == TrialStatus.FAILED and t.error),
                None,
            )
            detail = f"; last error: {err.get('type', 'Error')}: {err.get('message', '')}" if err else ""
            raise SearchFailed(
                f"{self.failed} trials failed, more than search.max_failed_trials={limit}{detail}"
            )

    def _check_baseline(self, trial: TrialRecord) -> None:
        """A baseline that fails for a reason every candidate shares ends the search now."""
        if trial.status != TrialStatus.FAILED:
            return
        err = trial.error or {}
        shared = trial.kind == "joint" or err.get("type") not in ARCHITECTURE_FAILURES
        if shared:
            raise SearchFailed(
                f"the {'Joint' if trial.kind == 'joint' else 'basic'} baseline failed "
                f"({err.get('type', 'Error')}: {err.get('message', '')}); every candidate trains the same "
                "network on the same data, so the search stops"
            )

    def _check_some_candidate_succeeded(self) -> None:
        cands = [t for t in self._search_trials() if t.kind == "candidate" and t.status in SPENT]
        if cands and not any(t.status in (TrialStatus.SUCCEEDED, TrialStatus.PRUNED) for t in cands):
            err = next((t.error for t in reversed(cands) if t.error), None) or {}
            raise SearchFailed(
                f"no candidate succeeded ({len(cands)} failed; last error: "
                f"{err.get('type', 'Error')}: {err.get('message', '')})"
            )


def result_of(trial: TrialRecord) -> dict[str, Any]:
    """What a cached copy repeats of the trial it copies."""
    return {
        "reward": trial.reward,
        "metrics": trial.metrics,
        "main_params": trial.main_params,
        "aux_params": trial.aux_params,
        "error": trial.error,
        "per_seed": trial.per_seed,
    }
