"""Running a search's waiting trials as Ray tasks, at most `search.parallel_trials` at once:
each row moves to `running` when Ray starts it and then to its outcome; a trial whose Ray worker
or node died goes back to `waiting` and runs again.

`TrialRuns` is a part of `controller.driver.SearchDriver`, which holds the state it uses.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any

from auxnas.controller import calibration
from auxnas.controller.config import SearchConfig
from auxnas.controller.search_outcome import SearchFailed, is_system_failure
from auxnas.controller.search_rows import result_of
from auxnas.controller.status import TrialStatus
from auxnas.controller.storage import SearchStorage, TrialRecord
from auxnas.evaluator.result import EvalResult
from auxnas.evaluator.starts import StartWatch
from auxnas.search_space import Genotype

log = logging.getLogger("auxnas.controller")

POLL_SECONDS = 0.25  # how often cancel is checked while evaluations run
# an evaluation whose Ray worker or node died this many times ends the search (a system fault)
MAX_SYSTEM_ATTEMPTS = 3


class TrialRuns:
    # set by SearchDriver.__init__ (controller.driver)
    config: SearchConfig
    storage: SearchStorage
    search_id: int
    trials: dict[int, TrialRecord]
    cache: dict[str, TrialRecord]
    _running: dict[Any, int]
    _starts: StartWatch | None

    def _early_stop_below(self) -> float | None:
        s = self.config.search
        rewards = [t.reward for t in self._search_trials() if t.status == TrialStatus.SUCCEEDED and t.reward]
        if not s.early_stop or not rewards or max(rewards) <= 0:
            return None
        return s.early_stop_ratio * max(rewards)

    def _run_batch(self, rows: list[TrialRecord]) -> None:
        """Run the batch's waiting rows, each genotype once; its duplicates become cached."""
        to_run, seen = [], set()
        for t in rows:
            t = self.trials[t.index]
            if t.final or t.genotype_hash in self.cache or t.genotype_hash in seen:
                continue
            seen.add(t.genotype_hash)
            to_run.append(t)
        self._run_trials(to_run)
        for t in rows:
            t = self.trials[t.index]
            if t.status == TrialStatus.WAITING:
                self._move(
                    t.index,
                    TrialStatus.CACHED,
                    **result_of(self.cache[t.genotype_hash]),
                    seconds=0.0,
                    cpu_seconds=0.0,
                )

    def _run_trials(self, trials: list[TrialRecord]) -> None:
        """Evaluate waiting `trials`, at most `parallel_trials` at once, moving each row through
        running to its outcome as it happens; a system failure sends the row back to waiting."""
        import ray

        from auxnas.evaluator.remote import get_result, submit

        pending = deque(trials)
        while pending or self._running:
            submitted = False
            while pending and len(self._running) < self.config.search.parallel_trials:
                trial = pending.popleft()
                genotype = Genotype(self.space, tuple(trial.tokens)) if trial.tokens is not None else None
                below = (
                    self._early_stop_below()
                    if trial.kind == "candidate" and trial.phase == "search"
                    else None
                )
                config = self.eval_config
                if trial.phase == calibration.PHASE:
                    config = calibration.replicate_config(config, trial.replicate)
                elif trial.seed is not None and trial.seed != config.seed:
                    config = config.model_copy(update={"seed": trial.seed})
                if self._starts is None:
                    self._move(trial.index, TrialStatus.RUNNING)
                self._running[submit(config, genotype, below, self.evaluate_fn)] = trial.index
                submitted = True
            if submitted:
                self._emit_progress()
            refs = list(self._running)
            ready, rest = ray.wait(refs, num_returns=1, timeout=POLL_SECONDS)
            if ready and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            started = self._starts.poll(list(self._running)) if self._starts is not None else {}
            for ref, node in started.items():
                if self.trials[self._running[ref]].status == TrialStatus.WAITING:
                    self._move(self._running[ref], TrialStatus.RUNNING, node=node)
            if started:
                self._emit_progress()
            for ref in ready:
                index = self._running.pop(ref)
                if self.trials[index].status == TrialStatus.WAITING:  # it ended before a poll saw it start
                    self._move(index, TrialStatus.RUNNING)
                trial = self._finish(index, get_result(ref))
                if trial.status == TrialStatus.WAITING:
                    pending.appendleft(trial)
            self._check_cancel()

    def _finish(self, index: int, result: EvalResult) -> TrialRecord:
        trial = self.trials[index]
        node = getattr(result, "node", None)
        if not result.ok and is_system_failure(result.error):
            trial = self._move(index, TrialStatus.WAITING, error=dict(result.error), node=node)
            log.warning(
                "search %s: trial %d lost its worker (%s); running it again",
                self.search_id,
                index,
                result.error.get("type"),
            )
            if trial.attempts >= MAX_SYSTEM_ATTEMPTS:
                self._move(index, TrialStatus.FAILED)
                raise SearchFailed(
                    f"trial {index}: its Ray worker or node died {trial.attempts} times "
                    f"({result.error.get('type')}: {result.error.get('message', '')})"
                )
            return trial
        ok, error, reward = bool(result.ok), result.error, result.reward
        if ok and (reward is None or not math.isfinite(reward)):
            ok, error = False, {"type": "InvalidReward", "message": f"evaluation returned reward {reward!r}"}
        if not ok and not error:
            error = {"type": "EvaluationFailed", "message": "the evaluation failed without an error"}
        status = (
            (TrialStatus.PRUNED if result.early_stopped else TrialStatus.SUCCEEDED)
            if ok
            else TrialStatus.FAILED
        )
        trial = self._move(
            index,
            status,
            reward=float(reward) if ok else None,
            metrics=result.metrics or {},
            seconds=float(result.seconds) if result.seconds > 0 else 0.0,
            cpu_seconds=float(getattr(result, "cpu_seconds", 0.0)),
            main_params=int(result.main_params),
            aux_params=int(result.aux_params),
            error=None if ok else dict(error),
            node=node,
            per_seed=getattr(result, "per_seed", None),
        )
        self._emit_progress()
        if trial.status == TrialStatus.FAILED:
            self._check_failure_limit(trial)
        return trial

    def _cancel_running(self) -> None:
        if not self._running:
            return
        import ray

        for ref, index in list(self._running.items()):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or its worker is gone
                log.debug("cancel of %s failed", ref, exc_info=True)
            try:  # it did not finish: whoever resumes the search runs it again
                if self.trials[index].status == TrialStatus.RUNNING:
                    self._move(index, TrialStatus.WAITING)
            except Exception:  # e.g. the lease is lost: the next owner resets running rows
                log.debug("could not hand trial %d back", index, exc_info=True)
        self._running.clear()
