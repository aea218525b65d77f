"""The search driver: baselines, controller iterations with racing until the budget is spent,
then confirmation and the answer.

    driver = SearchDriver(config, storage, search_id, checkpoint_dir, evaluate_fn=None,
                          on_progress=None)
    outcome = driver.run(resume=False)     # Ray must be initialised by the caller

Per iteration k: the strategy proposes `controller.episodes_per_update` genotypes and the batch
is checkpointed (`pending-k`); every genotype becomes a trial row at once, `cached` when the
search evaluated it before (its reward is reused, no budget spent) and `waiting` otherwise; the
waiting ones run as Ray tasks, at most `search.parallel_trials` at once, each row moving to
`running` and then to its outcome; the strategy learns from the rewards (failed trials feed
`search.failure_reward`); the iteration is recorded and the checkpoint written.

What the controller learns from: a candidate's paired gain at its first training seed (its reward
minus Joint's, both at the search's `seed`), given to the strategy when the candidate's iteration
ends; a failed candidate counts as a reward of `search.failure_reward`. The further seeds racing
gives a candidate later never reach the controller.

Racing (after each iteration, `controller.protocol`): the promoted candidates are trained on
further seeds (`racing` rows), Joint at every seed a candidate uses. After the budget: the final
racing sweep, then confirmation (`confirmation` rows: the finalists, basic and Joint on fresh
seeds), then the answer, stored on the search row (`SearchStorage.set_answer`).

The storage is the one source of truth for trials. Resuming after a crash at any point of an
iteration re-runs that iteration's unfinished rows (a `running` row of a dead worker goes back
to `waiting`), never re-records a finished one, and never drops a proposed genotype. An
evaluation whose Ray worker or node died is not the architecture's failure: its row goes back
to `waiting` and runs again (`attempts` counts the tries). Racing and confirmation are read
back from the rows too: an interrupted phase resumes with its unfinished rows only.

The driver's parts: its rows and the rules over them (`controller.search_rows`), running trials
on Ray (`controller.trial_runs`), the phases (`controller.search_phases`) and what it reports
(`controller.search_outcome`); this module sets up, resumes, runs and tears down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auxnas.controller import calibration
from auxnas.controller.checkpoint import CheckpointDir, CheckpointError
from auxnas.controller.config import SearchConfig
from auxnas.controller.protocol import AnswerProtocol
from auxnas.controller.search_outcome import (  # noqa: F401 - re-exported: the driver's results
    SearchCancelled,
    SearchFailed,
    SearchOutcome,
    SearchProgress,
    is_system_failure,
)
from auxnas.controller.search_phases import SearchPhases
from auxnas.controller.search_rows import SearchRows
from auxnas.controller.status import SearchStatus, TrialStatus
from auxnas.controller.storage import SearchStorage, TrialRecord
from auxnas.controller.strategies import Strategy, make_strategy
from auxnas.controller.trial_runs import TrialRuns
from auxnas.evaluator.remote import check_resources
from auxnas.evaluator.result import EvalResult, one_line
from auxnas.evaluator.starts import StartWatch
from auxnas.search_space import SearchSpace, SpaceError

log = logging.getLogger("auxnas.controller")


class SearchDriver(SearchRows, TrialRuns, SearchPhases):
    def __init__(
        self,
        config: SearchConfig,
        storage: SearchStorage,
        search_id: int,
        checkpoint_dir: str | Path,
        evaluate_fn: Callable[..., EvalResult] | None = None,
        on_progress: Callable[[SearchProgress], None] | None = None,
        calibrate_only: bool = False,
    ) -> None:
        self.config = config
        self.calibrate_only = calibrate_only  # `auxnas calibrate`: the calibration phase alone
        self.storage = storage
        self.search_id = search_id
        self.checkpoint = CheckpointDir(checkpoint_dir)
        self.evaluate_fn = evaluate_fn
        self.on_progress = on_progress
        self.eval_config = config.eval_config()
        self.space: SearchSpace | None = None
        self.strategy: Strategy | None = None
        self.trials: dict[int, TrialRecord] = {}  # the storage's rows of this search, by index
        self.cache: dict[str, TrialRecord] = {}  # genotype hash -> its evaluated trial
        self.iteration = 0
        self.stop_reason: str | None = None
        self.timings: dict[str, list[float]] = {}
        self._running: dict[Any, int] = {}  # Ray ref -> trial index
        self.fidelity: dict[str, Any] | None = None
        self.protocol: AnswerProtocol | None = None
        self.answer: dict[str, Any] | None = None
        self._state_to_restore: dict[str, Any] | None = None
        self._starts: StartWatch | None = None
        self._phase = "baselines"
        self._start = 0.0

    def run(self, resume: bool = False) -> SearchOutcome:
        self._start = time.monotonic()
        status, error = SearchStatus.FAILED, None
        try:
            self._setup(resume)
            self._calibrate()
            if not self.calibrate_only:
                self._phase = "baselines"
                self._run_baselines()
                self._phase = "search"
                self._search()
                self._check_some_candidate_succeeded()
                self._race(final=True)
                self._confirm()
            status = SearchStatus.SUCCEEDED
        except SearchCancelled:
            status = SearchStatus.CANCELLED
        except SearchFailed as e:
            error = str(e)
        except Exception as e:  # the search ends failed with the reason; the caller decides the rest
            log.exception("search %s failed", self.search_id)
            error = f"internal error: {type(e).__name__}: {one_line(str(e))}"
        finally:
            self._cancel_running()
            self._close_strategy()
        self.storage.set_status(self.search_id, status, error)
        self._phase = "done"
        self._emit_progress()
        return SearchOutcome(
            status=status,
            search_id=self.search_id,
            error=error,
            best=self.best,
            joint=self._baseline("joint"),
            basic=self._baseline("basic"),
            trials=self.trial_list(),
            iterations=self.iteration,
            evaluated=self.evaluated,
            cached=self.cached,
            failed=self.failed,
            stop_reason=self.stop_reason if status == SearchStatus.SUCCEEDED else None,
            elapsed=time.monotonic() - self._start,
            fidelity=self.fidelity,
            answer=self.answer if status == SearchStatus.SUCCEEDED else None,
            evaluations=self.evaluations,
            cpu_seconds=self.cpu_seconds,
        )

    def progress(self) -> SearchProgress:
        best = self.best
        cal = [t for t in self.trials.values() if t.phase == calibration.PHASE]
        confirming = [t for t in self.trials.values() if t.phase == "confirmation"]
        return SearchProgress(
            evaluated=self.evaluated,
            cached=self.cached,
            failed=self.failed,
            budget=self.config.search.budget,
            best_reward=best.reward if best else None,
            elapsed=time.monotonic() - self._start,
            iteration=self.iteration,
            running=len(self._running),
            waiting_for_resources=sum(
                1 for i in self._running.values() if self.trials[i].status == TrialStatus.WAITING
            ),
            phase=self._phase,
            calibrated=sum(1 for t in cal if t.final),
            calibration_total=len(cal),
            evaluations=self.evaluations,
            cpu_seconds=self.cpu_seconds,
            confirmed=sum(1 for t in confirming if t.final),
            confirmation_total=len(confirming),
        )

    def _setup(self, resume: bool) -> None:
        import ray

        if not ray.is_initialized():
            raise SearchFailed("Ray is not initialised: call ray.init() before SearchDriver.run()")
        try:
            self.space = self.config.search_space()
        except SpaceError as e:
            raise SearchFailed(f"config: {e}") from None
        try:
            self.protocol = AnswerProtocol(self.config, self.space)
        except ValueError as e:  # confirmation seeds that would reuse a search seed
            raise SearchFailed(f"search.confirm: {e}") from None
        self.checkpoint.path.mkdir(parents=True, exist_ok=True)
        self.storage.set_checkpoint_dir(self.search_id, str(self.checkpoint.path.resolve()))
        state = None
        if resume:
            try:
                state = self.checkpoint.load_state()
            except CheckpointError as e:
                raise SearchFailed(str(e)) from None
            if state is not None:
                self._check_compatible(state)
        else:
            self.checkpoint.reset()
        for trial in self.storage.trials(self.search_id):
            if trial.status == TrialStatus.RUNNING:  # its worker died with it: run it again
                trial = self.storage.move_trial(self.search_id, trial.index, TrialStatus.WAITING)
            self._account(trial)
        self._check_failure_limit()
        try:  # a trial no node can hold would wait forever: fail now instead
            check_resources(self.config.resources)
        except ValueError as e:
            raise SearchFailed(str(e)) from None
        try:  # a submitted trial stays `waiting` until Ray starts it
            self._starts = StartWatch()
        except Exception as e:  # noqa: BLE001 - without it, trials count as running once submitted
            log.warning(
                "search %s: cannot tell started trials from waiting ones (%s)", self.search_id, one_line(e)
            )
        self._state_to_restore = state
        if not self.calibrate_only:  # built now: a checkpoint it cannot take fails the search at once
            self._start_strategy()

    def _start_strategy(self) -> None:
        self.strategy = make_strategy(self.config.search.strategy, self.config, self.space)
        state = self._state_to_restore
        if state is not None:
            self.iteration = int(state.get("iterations", 0))
            strategy_dir = self.checkpoint.path
            try:
                strategy_dir = self.checkpoint.strategy_dir(state)
                if strategy_dir is not None:
                    self.strategy.restore(strategy_dir)
            except CheckpointError as e:
                raise SearchFailed(str(e)) from None
            except Exception as e:  # e.g. controller sizes changed since the checkpoint
                raise SearchFailed(
                    f"{strategy_dir}: cannot restore the controller state ({type(e).__name__}: "
                    f"{one_line(str(e), 200)}); the controller section must match the checkpoint"
                ) from None
            log.info("search %s resumed at iteration %d", self.search_id, self.iteration)

    def _check_compatible(self, state: dict[str, Any]) -> None:
        where = self.checkpoint.path
        if state.get("strategy") != self.config.search.strategy:
            raise SearchFailed(
                f"{where}: checkpoint was written by strategy {state.get('strategy')!r}, "
                f"the config says search.strategy={self.config.search.strategy!r}"
            )
        if state.get("space") != self.space.to_dict():
            raise SearchFailed(
                f"{where}: checkpoint belongs to another search space (tasks or num_aux_inputs)"
            )

    def _emit_progress(self) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.progress())
        except Exception:  # a broken progress display must not end the search
            log.exception("on_progress callback failed")

    def _check_cancel(self) -> None:
        if self.storage.cancel_requested(self.search_id):
            raise SearchCancelled()

    def _state(self) -> dict[str, Any]:
        best = self.best
        return {
            "search_id": self.search_id,
            "name": self.config.name,
            "strategy": self.config.search.strategy,
            "space": self.space.to_dict(),
            "iterations": self.iteration,
            "budget": self.config.search.budget,
            "best_index": best.index if best else None,
        }

    def _close_strategy(self) -> None:
        if self.strategy is not None:
            try:
                self.strategy.close()
            except Exception:
                log.exception("closing the strategy failed")
