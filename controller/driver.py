"""The search driver: baselines, then controller iterations until the budget is spent.

    driver = SearchDriver(config, storage, search_id, checkpoint_dir, evaluate_fn=None,
                          on_progress=None)
    outcome = driver.run(resume=False)     # Ray must be initialised by the caller

Per iteration: the strategy proposes `controller.episodes_per_update` genotypes; those already
evaluated in this search become cached trials (their reward is reused, no budget spent); the
others are evaluated as Ray tasks, at most `search.parallel_trials` at once, each recorded the
moment it ends; the strategy learns from the rewards (failed trials feed
`search.failure_reward`); the iteration is recorded and a checkpoint written.

`storage` is the source of truth of finished trials. The checkpoint directory holds the strategy
state and a journal of trials, so that a search whose storage lived in memory can resume too.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.checkpoint import CheckpointDir, CheckpointError
from controller.config import SearchConfig
from controller.storage import IterationRecord, SearchStorage, TrialRecord
from controller.strategies import Strategy, make_strategy
from evaluator.result import EvalResult
from search_space import Genotype, SearchSpace, SpaceError, basic_genotype

log = logging.getLogger("auxnas.controller")

POLL_SECONDS = 0.25  # how often cancel is checked while evaluations run


@dataclass
class SearchProgress:
    evaluated: int  # candidates evaluated (budget spent; failed ones included)
    cached: int  # candidates answered from the cache
    failed: int  # failed trials (baselines included)
    budget: int
    best_reward: float | None  # best genotype so far (basic or candidate)
    elapsed: float  # seconds since run() started
    iteration: int = 0  # controller iterations finished
    running: int = 0  # evaluations in flight
    phase: str = "baselines"  # "baselines" | "search" | "done"


@dataclass
class SearchOutcome:
    status: str  # "succeeded" | "failed" | "cancelled"
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


class SearchCancelled(Exception):
    pass


class SearchFailed(Exception):
    """Ends the search with status failed; the message is what users see."""


def space_for(config: SearchConfig) -> SearchSpace:
    return SearchSpace(num_inputs=config.model.num_aux_inputs, tasks=tuple(config.tasks))


@dataclass
class _Job:
    kind: str
    genotype: Genotype | None
    iteration: int | None
    ref: Any = None
    started: float = 0.0
    trial: TrialRecord | None = None


class SearchDriver:
    def __init__(
        self,
        config: SearchConfig,
        storage: SearchStorage,
        search_id: int,
        checkpoint_dir: str | Path,
        evaluate_fn: Callable[..., EvalResult] | None = None,
        on_progress: Callable[[SearchProgress], None] | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.search_id = search_id
        self.checkpoint = CheckpointDir(checkpoint_dir)
        self.evaluate_fn = evaluate_fn
        self.on_progress = on_progress
        self.eval_config = config.eval_config()
        self.space: SearchSpace | None = None
        self.strategy: Strategy | None = None
        # rebuilt from the trials on resume
        self.trials: list[TrialRecord] = []
        self.cache: dict[str, TrialRecord] = {}
        self.evaluated = self.cached = self.failed = 0
        self.best: TrialRecord | None = None
        self.best_any_reward: float | None = None  # joint included: drives early stop
        self.joint: TrialRecord | None = None
        self.basic: TrialRecord | None = None
        self.iteration = 0
        self.next_index = 0
        self.stop_reason: str | None = None
        self.timings: dict[str, list[float]] = {}
        self._running: dict[Any, _Job] = {}
        self._phase = "baselines"
        self._start = 0.0

    # --- public ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> SearchOutcome:
        self._start = time.monotonic()
        status, error = "failed", None
        try:
            self._setup(resume)
            self._run_baselines()
            self._phase = "search"
            self._search()
            status = "succeeded"
        except SearchCancelled:
            status = "cancelled"
        except SearchFailed as e:
            error = str(e)
        except Exception as e:  # the search ends failed with the reason; the caller decides the rest
            log.exception("search %s failed", self.search_id)
            error = f"internal error: {type(e).__name__}: {_one_line(str(e))}"
        finally:
            self._cancel_running()
            self._close_strategy()
        self.storage.set_status(self.search_id, status, error)
        self._phase = "done"
        self._emit_progress()
        return SearchOutcome(
            status=status,
            error=error,
            best=self.best,
            joint=self.joint,
            basic=self.basic,
            trials=list(self.trials),
            iterations=self.iteration,
            evaluated=self.evaluated,
            cached=self.cached,
            failed=self.failed,
            stop_reason=self.stop_reason if status == "succeeded" else None,
            elapsed=time.monotonic() - self._start,
        )

    def progress(self) -> SearchProgress:
        return SearchProgress(
            evaluated=self.evaluated,
            cached=self.cached,
            failed=self.failed,
            budget=self.config.search.budget,
            best_reward=self.best.reward if self.best else None,
            elapsed=time.monotonic() - self._start,
            iteration=self.iteration,
            running=len(self._running),
            phase=self._phase,
        )

    # --- setup and resume ----------------------------------------------------------------------
    def _setup(self, resume: bool) -> None:
        import ray

        if not ray.is_initialized():
            raise SearchFailed("Ray is not initialised: call ray.init() before SearchDriver.run()")
        try:
            self.space = space_for(self.config)
        except SpaceError as e:
            raise SearchFailed(f"config: {e}") from None
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
            self._restore_trials()
        else:
            self.checkpoint.reset()
            for trial in sorted(self.storage.trials(self.search_id), key=lambda t: t.index):
                self._account(trial)  # normally none: a fresh search has no trials
        self._check_failure_limit()
        self.strategy = make_strategy(self.config.search.strategy, self.config, self.space)
        if state is not None:
            self.iteration = max(self.iteration, int(state.get("iterations", 0)))
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
                    f"{_one_line(str(e), 200)}); the controller section must match the checkpoint"
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

    def _restore_trials(self) -> None:
        """Storage and journal together: a trial in either is finished and is not run again."""
        stored = {t.index: t for t in self.storage.trials(self.search_id)}
        journal_trials, journal_iterations = self.checkpoint.read_journal()
        journaled = {t.index for t in journal_trials}
        for trial in journal_trials:
            if trial.index not in stored:
                self.storage.add_trial(self.search_id, trial)
                stored[trial.index] = trial
        for index, trial in sorted(stored.items()):
            if index not in journaled:
                self.checkpoint.append_trial(trial)
            self._account(trial)
        if journal_iterations:
            self.iteration = max(it.index for it in journal_iterations) + 1

    # --- bookkeeping ---------------------------------------------------------------------------
    def _account(self, trial: TrialRecord) -> None:
        self.trials.append(trial)
        self.next_index = max(self.next_index, trial.index + 1)
        if trial.status == "cached":
            self.cached += 1
        elif trial.kind == "candidate":
            self.evaluated += 1
        if trial.status == "failed":
            self.failed += 1
        if trial.status != "cached" and trial.genotype_hash:
            self.cache.setdefault(trial.genotype_hash, trial)
        if trial.kind == "joint" and self.joint is None:
            self.joint = trial
        if trial.kind == "basic" and self.basic is None:
            self.basic = trial
        if trial.status == "succeeded" and trial.reward is not None:
            if self.best_any_reward is None or trial.reward > self.best_any_reward:
                self.best_any_reward = trial.reward
            better = self.best is None or trial.reward > (self.best.reward or 0.0)
            if trial.kind != "joint" and not trial.early_stopped and better:
                self.best = trial

    def _record(self, trial: TrialRecord) -> None:
        started = time.perf_counter()
        trial.index = self._take_index()  # at record time: indices follow the storage order
        self.storage.add_trial(self.search_id, trial)
        self.checkpoint.append_trial(trial)
        self._account(trial)
        self._emit_progress()
        self.timings.setdefault("record_seconds", []).append(time.perf_counter() - started)
        if trial.status == "failed":
            self._check_failure_limit(trial)

    def _check_failure_limit(self, last: TrialRecord | None = None) -> None:
        limit = self.config.search.max_failed_trials
        if self.failed > limit:
            detail = ""
            err = (last.error if last else None) or next(
                (t.error for t in reversed(self.trials) if t.status == "failed" and t.error), None
            )
            if err:
                detail = f"; last error: {err.get('type', 'Error')}: {err.get('message', '')}"
            raise SearchFailed(
                f"{self.failed} trials failed, more than search.max_failed_trials={limit}{detail}"
            )

    def _emit_progress(self) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.progress())
        except Exception:  # a broken progress display must not end the search
            log.exception("on_progress callback failed")

    def _take_index(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    def _early_stop_below(self) -> float | None:
        s = self.config.search
        if not s.early_stop or self.best_any_reward is None or self.best_any_reward <= 0:
            return None
        return s.early_stop_ratio * self.best_any_reward

    def _controller_reward(self, trial: TrialRecord) -> float:
        if trial.reward is None or trial.error is not None:
            return self.config.search.failure_reward
        return float(trial.reward)

    def _check_cancel(self) -> None:
        if self.storage.cancel_requested(self.search_id):
            raise SearchCancelled()

    # --- baselines and candidates --------------------------------------------------------------
    def _run_baselines(self) -> None:
        jobs = []
        if self.joint is None:
            jobs.append(_Job("joint", None, None))
        if self.basic is None:
            jobs.append(_Job("basic", basic_genotype(self.space), None))
        self._run_jobs(jobs, ordered=True)

    def _search(self) -> None:
        budget = self.config.search.budget
        per_update = self.config.controller.episodes_per_update
        idle = 0
        while self.evaluated < budget:
            self._check_cancel()
            started = time.perf_counter()
            n = min(per_update, budget - self.evaluated)
            genotypes = self.strategy.propose(n)
            proposed = time.perf_counter()
            evaluated_before, cached_before, failed_before = self.evaluated, self.cached, self.failed
            rewards = self._run_candidates(genotypes)
            evaluated_at = time.perf_counter()
            stats = self.strategy.observe(rewards)
            observed = time.perf_counter()
            new = self.evaluated - evaluated_before
            stats = {
                **stats,
                "evaluated": float(new),
                "cached": float(self.cached - cached_before),
                "failed": float(self.failed - failed_before),
                "propose_seconds": proposed - started,
                "evaluate_seconds": evaluated_at - proposed,
                "observe_seconds": observed - evaluated_at,
            }
            record = IterationRecord(
                index=self.iteration,
                num_episodes=len(genotypes),
                reward_mean=sum(rewards) / len(rewards),
                reward_max=max(rewards),
                stats=stats,
                seconds=observed - started,
            )
            self.storage.add_iteration(self.search_id, record)
            self.checkpoint.append_iteration(record)
            self.iteration += 1
            saved = self.checkpoint.save(self._state(), self.strategy, self.iteration)
            for key in ("propose_seconds", "evaluate_seconds", "observe_seconds"):
                self.timings.setdefault(key, []).append(stats[key])
            self.timings.setdefault("checkpoint_seconds", []).append(saved)
            self._emit_progress()
            idle = 0 if new else idle + 1
            if idle >= self.config.search.max_idle_iterations:
                self.stop_reason = (
                    f"{idle} iterations in a row proposed only genotypes already evaluated "
                    f"(controller converged or space exhausted); {self.evaluated} of {budget} spent"
                )
                return
        self.stop_reason = f"budget of {budget} candidates spent"

    def _run_candidates(self, genotypes: list[Genotype]) -> list[float]:
        """Evaluate or look up each genotype; one controller reward per genotype, same order."""
        trials: list[TrialRecord | _Job | None] = [None] * len(genotypes)
        jobs: list[_Job] = []
        first_in_batch: dict[str, _Job] = {}
        for i, genotype in enumerate(genotypes):
            h = genotype.canonical_hash()
            if h in self.cache:
                trials[i] = self._record_cached(genotype, self.cache[h])
            elif h in first_in_batch:
                trials[i] = first_in_batch[h]  # recorded as cached once the original ends
            else:
                job = _Job("candidate", genotype, self.iteration)
                first_in_batch[h] = job
                jobs.append(job)
                trials[i] = job
        self._run_jobs(jobs, ordered=False)
        rewards = []
        seen: set[int] = set()
        for i, item in enumerate(trials):
            if isinstance(item, _Job):
                if id(item) in seen:
                    item = self._record_cached(genotypes[i], item.trial)
                else:
                    seen.add(id(item))
                    item = item.trial
            rewards.append(self._controller_reward(item))
        return rewards

    def _record_cached(self, genotype: Genotype, original: TrialRecord) -> TrialRecord:
        trial = TrialRecord(
            index=-1,
            kind="candidate",
            status="cached",
            tokens=list(genotype.tokens),
            genotype=genotype.to_json(),
            genotype_hash=genotype.canonical_hash(),
            reward=original.reward,
            metrics=original.metrics,
            seconds=0.0,
            cached=True,
            early_stopped=original.early_stopped,
            main_params=original.main_params,
            aux_params=original.aux_params,
            iteration=self.iteration,
            error=original.error,
        )
        self._record(trial)
        return trial

    def _run_jobs(self, jobs: list[_Job], *, ordered: bool) -> None:
        """Evaluate `jobs`, at most `parallel_trials` at once, recording each as it ends
        (`ordered`: in the order given, for joint-then-basic)."""
        import ray

        from evaluator.remote import get_result, submit

        pending = deque(jobs)
        finished: set[int] = set()
        next_ordered = 0
        while pending or self._running:
            submitted = False
            while pending and len(self._running) < self.config.search.parallel_trials:
                job = pending.popleft()
                below = self._early_stop_below() if job.kind == "candidate" else None
                job.started = time.monotonic()
                job.ref = submit(self.eval_config, job.genotype, below, self.evaluate_fn)
                self._running[job.ref] = job
                submitted = True
            if submitted:
                self._emit_progress()
            refs = list(self._running)
            ready, rest = ray.wait(refs, num_returns=1, timeout=POLL_SECONDS)
            if ready and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            for ref in ready:
                job = self._running.pop(ref)
                job.trial = self._trial_from_result(job, get_result(ref))
                if not ordered:
                    self._record(job.trial)
                finished.add(id(job))
            while ordered and next_ordered < len(jobs) and id(jobs[next_ordered]) in finished:
                self._record(jobs[next_ordered].trial)
                next_ordered += 1
            self._check_cancel()

    def _trial_from_result(self, job: _Job, result: EvalResult) -> TrialRecord:
        g = job.genotype
        ok = bool(result.ok)
        error = result.error
        reward = result.reward
        if ok and (reward is None or not math.isfinite(reward)):
            ok, error = False, {"type": "InvalidReward", "message": f"evaluation returned reward {reward!r}"}
        if not ok and not error:
            error = {"type": "EvaluationFailed", "message": "the evaluation failed without an error"}
        seconds = result.seconds if result.seconds > 0 else time.monotonic() - job.started
        return TrialRecord(
            index=-1,
            kind=job.kind,
            status="succeeded" if ok else "failed",
            tokens=list(g.tokens) if g is not None else None,
            genotype=g.to_json() if g is not None else None,
            genotype_hash=g.canonical_hash() if g is not None else None,
            reward=float(reward) if ok else None,
            metrics=result.metrics or {},
            seconds=float(seconds),
            cached=False,
            early_stopped=bool(result.early_stopped),
            main_params=int(result.main_params),
            aux_params=int(result.aux_params),
            iteration=job.iteration,
            error=None if ok else dict(error),
        )

    # --- state and teardown --------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "search_id": self.search_id,
            "name": self.config.name,
            "strategy": self.config.search.strategy,
            "space": self.space.to_dict(),
            "iterations": self.iteration,
            "next_index": self.next_index,
            "budget": self.config.search.budget,
            "evaluated": self.evaluated,
            "cached": self.cached,
            "failed": self.failed,
            "best_index": self.best.index if self.best else None,
            "best_reward": self.best.reward if self.best else None,
            "cache": {h: t.index for h, t in self.cache.items()},
        }

    def _cancel_running(self) -> None:
        if not self._running:
            return
        import ray

        for ref in list(self._running):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or its worker is gone
                log.debug("cancel of %s failed", ref, exc_info=True)
        self._running.clear()

    def _close_strategy(self) -> None:
        if self.strategy is not None:
            try:
                self.strategy.close()
            except Exception:
                log.exception("closing the strategy failed")


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
