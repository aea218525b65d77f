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
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from auxnas.controller import calibration
from auxnas.controller.checkpoint import CheckpointDir, CheckpointError
from auxnas.controller.config import SearchConfig
from auxnas.controller.export import best_trial
from auxnas.controller.progress import count
from auxnas.controller.protocol import AnswerProtocol, ProtocolError
from auxnas.controller.storage import SPENT_STATUSES as SPENT
from auxnas.controller.storage import IterationRecord, SearchStorage, TrialRecord
from auxnas.controller.strategies import Strategy, make_strategy
from auxnas.evaluator.remote import check_resources
from auxnas.evaluator.result import EvalResult, one_line
from auxnas.evaluator.starts import StartWatch
from auxnas.search_space import Genotype, SearchSpace, SpaceError, basic_genotype

log = logging.getLogger("auxnas.controller")

POLL_SECONDS = 0.25  # how often cancel is checked while evaluations run
# an evaluation whose Ray worker or node died this many times ends the search (a system fault)
MAX_SYSTEM_ATTEMPTS = 3
# failures that belong to the architecture: every other failure of a baseline would hit every
# candidate too (data, config, code), so it ends the search
ARCHITECTURE_FAILURES = ("NaNLoss", "OutOfMemory", "InvalidReward")


@dataclass
class SearchProgress:
    evaluated: int  # candidates evaluated (budget spent; failed ones included)
    cached: int  # candidates answered from the cache
    failed: int  # failed trials (baselines included)
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
    status: str  # "succeeded" | "failed" | "cancelled"
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


def space_for(config: SearchConfig) -> SearchSpace:
    return config.search_space()


def is_system_failure(error: dict[str, Any] | None) -> bool:
    """The evaluation did not fail: its Ray worker process or node did (see evaluator.remote)."""
    return bool(error and error.get("system"))


class SearchDriver:
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

    # --- public ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> SearchOutcome:
        self._start = time.monotonic()
        status, error = "failed", None
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
            status = "succeeded"
        except SearchCancelled:
            status = "cancelled"
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
            stop_reason=self.stop_reason if status == "succeeded" else None,
            elapsed=time.monotonic() - self._start,
            fidelity=self.fidelity,
            answer=self.answer if status == "succeeded" else None,
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
                1 for i in self._running.values() if self.trials[i].status == "waiting"
            ),
            phase=self._phase,
            calibrated=sum(1 for t in cal if t.final),
            calibration_total=len(cal),
            evaluations=self.evaluations,
            cpu_seconds=self.cpu_seconds,
            confirmed=sum(1 for t in confirming if t.final),
            confirmation_total=len(confirming),
        )

    # --- counts, always from the rows ----------------------------------------------------------
    def trial_list(self) -> list[TrialRecord]:
        return [t for _, t in sorted(self.trials.items())]

    def _search_trials(self) -> list[TrialRecord]:
        return [t for t in self.trials.values() if t.phase == "search"]

    @property
    def evaluated(self) -> int:
        return sum(1 for t in self._search_trials() if t.kind == "candidate" and t.status in SPENT)

    @property
    def cached(self) -> int:
        return sum(1 for t in self._search_trials() if t.status == "cached")

    @property
    def failed(self) -> int:
        return sum(1 for t in self._search_trials() if t.status == "failed")

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

    # --- setup and resume ----------------------------------------------------------------------
    def _setup(self, resume: bool) -> None:
        import ray

        if not ray.is_initialized():
            raise SearchFailed("Ray is not initialised: call ray.init() before SearchDriver.run()")
        try:
            self.space = space_for(self.config)
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
            if trial.status == "running":  # its worker died with it: run it again
                trial = self.storage.move_trial(self.search_id, trial.index, "waiting")
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

    # --- bookkeeping ---------------------------------------------------------------------------
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

    def _check_failure_limit(self, last: TrialRecord | None = None) -> None:
        limit = self.config.search.max_failed_trials
        if self.failed > limit:
            err = (last.error if last else None) or next(
                (t.error for t in reversed(self.trial_list()) if t.status == "failed" and t.error), None
            )
            detail = f"; last error: {err.get('type', 'Error')}: {err.get('message', '')}" if err else ""
            raise SearchFailed(
                f"{self.failed} trials failed, more than search.max_failed_trials={limit}{detail}"
            )

    def _check_baseline(self, trial: TrialRecord) -> None:
        """A baseline that fails for a reason every candidate shares ends the search now."""
        if trial.status != "failed":
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
        if cands and not any(t.status in ("succeeded", "pruned") for t in cands):
            err = next((t.error for t in reversed(cands) if t.error), None) or {}
            raise SearchFailed(
                f"no candidate succeeded ({len(cands)} failed; last error: "
                f"{err.get('type', 'Error')}: {err.get('message', '')})"
            )

    def _emit_progress(self) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.progress())
        except Exception:  # a broken progress display must not end the search
            log.exception("on_progress callback failed")

    def _early_stop_below(self) -> float | None:
        s = self.config.search
        rewards = [t.reward for t in self._search_trials() if t.status == "succeeded" and t.reward]
        if not s.early_stop or not rewards or max(rewards) <= 0:
            return None
        return s.early_stop_ratio * max(rewards)

    def _controller_reward(self, trial: TrialRecord) -> float:
        """The candidate's paired gain over Joint at its first seed (the search's `seed`); a
        failed candidate's as if it had scored `search.failure_reward`."""
        reward = trial.reward
        if reward is None or trial.status == "failed":
            reward = self.config.search.failure_reward
        return float(reward) - float(self._baseline("joint").reward)

    def _check_cancel(self) -> None:
        if self.storage.cancel_requested(self.search_id):
            raise SearchCancelled()

    # --- calibration, baselines and candidates ------------------------------------------------
    def _calibrate(self) -> None:
        """The optional calibration phase: score its trials, store the fidelity figures, and
        stop the search when they are below `search.calibrate.min_spearman`."""
        cal = self.config.search.calibrate
        if cal is None:
            return
        self._phase = "calibration"
        rows = [t for t in self.trial_list() if t.phase == calibration.PHASE]
        if not rows:
            try:
                rows = calibration.calibration_trials(self.config, self.space, cal, self.next_index)
            except ValueError as e:
                raise SearchFailed(str(e)) from None
            self._add(rows)
        self._run_trials([self.trials[t.index] for t in rows if not self.trials[t.index].final])
        finished = [self.trials[t.index] for t in rows]
        threshold = cal.min_spearman if cal.min_spearman is not None else 0.5
        try:
            report = calibration.calibration_report(
                finished, cal.replicates, self.config.train.reward_seeds, threshold=threshold
            )
        except ValueError as e:  # e.g. too many failed trials to rank anything
            raise SearchFailed(f"calibration: {e}") from None
        self.fidelity = calibration.fidelity_document(report, cal, finished)
        self.storage.set_fidelity(self.search_id, self.fidelity)
        self._emit_progress()
        reason = calibration.below_minimum(report, cal)
        if reason:
            raise SearchFailed(reason)

    def _run_baselines(self) -> None:
        new = []
        if self._baseline("joint") is None:
            new.append(
                TrialRecord(index=self.next_index, kind="joint", status="waiting", seed=self.config.seed)
            )
        if self._baseline("basic") is None:
            new.append(
                self._waiting(basic_genotype(self.space), self.next_index + len(new), None, kind="basic")
            )
        if new:
            self._add(new)
        baselines = [self._baseline("joint"), self._baseline("basic")]
        self._run_trials([t for t in baselines if not t.final])
        for t in baselines:
            self._check_baseline(self.trials[t.index])

    def _waiting(
        self, genotype: Genotype, index: int, iteration: int | None, kind: str = "candidate"
    ) -> TrialRecord:
        return TrialRecord(
            index=index,
            kind=kind,
            status="waiting",
            tokens=list(genotype.tokens),
            genotype=genotype.to_json(),
            genotype_hash=genotype.canonical_hash(),
            iteration=iteration,
            seed=self.config.seed,
        )

    def _search(self) -> None:
        budget = self.config.search.budget
        idle = 0
        if self._iteration_rows(self.iteration):  # resuming inside an iteration: race after it
            self._run_phase_rows("racing")
        else:  # what an interrupted run left of the last iteration's racing
            self._race()
        while self.evaluated < budget or self._iteration_rows(self.iteration):
            self._check_cancel()
            new = self._iteration(budget)
            self._race()
            idle = 0 if new else idle + 1
            if idle >= self.config.search.max_idle_iterations:
                self.stop_reason = (
                    f"{idle} iterations in a row proposed only genotypes already evaluated "
                    f"(controller converged or space exhausted); {self.evaluated} of {budget} spent"
                )
                return
        self.stop_reason = f"budget of {budget} candidates spent"

    def _iteration_rows(self, k: int) -> list[TrialRecord]:
        return sorted(
            (t for t in self._search_trials() if t.kind == "candidate" and t.iteration == k),
            key=lambda t: t.index,
        )

    def _iteration(self, budget: int) -> int:
        """One controller iteration (or the rest of an interrupted one); returns how many of its
        genotypes were new to the search."""
        k = self.iteration
        started = time.perf_counter()
        rows = self._iteration_rows(k)
        payload = self.checkpoint.load_pending(k)
        if payload is not None:
            genotypes = self.strategy.restore_pending(payload)
        elif rows:
            raise SearchFailed(
                f"{self.checkpoint.path}: iteration {k} has trials but its proposed batch is missing"
            )
        else:
            n = min(self.config.controller.episodes_per_update, budget - self.evaluated)
            genotypes = self.strategy.propose(n)
            self.checkpoint.save_pending(k, self.strategy.pending())
        proposed = time.perf_counter()
        if not rows:
            rows = self._decide(genotypes, k)
        elif [list(g.tokens) for g in genotypes] != [t.tokens for t in rows]:
            raise SearchFailed(
                f"{self.checkpoint.path}: iteration {k}'s trials do not match its proposed batch"
            )
        new = sum(1 for t in rows if t.status != "cached")
        self._run_batch(rows)
        evaluated_at = time.perf_counter()
        rows = [self.trials[t.index] for t in rows]
        rewards = [self._controller_reward(t) for t in rows]
        stats = self.strategy.observe(rewards)
        observed = time.perf_counter()
        stats = {
            **stats,
            "evaluated": float(new),
            "cached": float(sum(1 for t in rows if t.status == "cached")),
            "failed": float(sum(1 for t in rows if t.status == "failed")),
            "propose_seconds": proposed - started,
            "evaluate_seconds": evaluated_at - proposed,
            "observe_seconds": observed - evaluated_at,
        }
        record = IterationRecord(
            index=k,
            num_episodes=len(rows),
            reward_mean=sum(rewards) / len(rewards),
            reward_max=max(rewards),
            stats=stats,
            seconds=observed - started,
        )
        self.storage.add_iteration(self.search_id, record)
        self.iteration += 1
        saved = self.checkpoint.save(self._state(), self.strategy, self.iteration)
        for key in ("propose_seconds", "evaluate_seconds", "observe_seconds"):
            self.timings.setdefault(key, []).append(stats[key])
        self.timings.setdefault("checkpoint_seconds", []).append(saved)
        self._emit_progress()
        return new

    def _decide(self, genotypes: list[Genotype], k: int) -> list[TrialRecord]:
        """One row per proposed genotype, in order: cached when evaluated before, else waiting."""
        rows = []
        for i, genotype in enumerate(genotypes):
            index = self.next_index + i
            original = self.cache.get(genotype.canonical_hash())
            if original is None:
                rows.append(self._waiting(genotype, index, k))
            else:
                rows.append(self._cached_copy(self._waiting(genotype, index, k), original, status="cached"))
        self._add(rows)
        return rows

    @staticmethod
    def _cached_copy(row: TrialRecord, original: TrialRecord, status: str) -> TrialRecord:
        return replace(row, status=status, **_result_of(original), seconds=0.0, cpu_seconds=0.0)

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
            if t.status == "waiting":
                self._move(
                    t.index, "cached", **_result_of(self.cache[t.genotype_hash]), seconds=0.0, cpu_seconds=0.0
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
                    self._move(trial.index, "running")
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
                if self.trials[self._running[ref]].status == "waiting":
                    self._move(self._running[ref], "running", node=node)
            if started:
                self._emit_progress()
            for ref in ready:
                index = self._running.pop(ref)
                if self.trials[index].status == "waiting":  # it ended before a poll saw it start
                    self._move(index, "running")
                trial = self._finish(index, get_result(ref))
                if trial.status == "waiting":
                    pending.appendleft(trial)
            self._check_cancel()

    def _finish(self, index: int, result: EvalResult) -> TrialRecord:
        trial = self.trials[index]
        node = getattr(result, "node", None)
        if not result.ok and is_system_failure(result.error):
            trial = self._move(index, "waiting", error=dict(result.error), node=node)
            log.warning(
                "search %s: trial %d lost its worker (%s); running it again",
                self.search_id,
                index,
                result.error.get("type"),
            )
            if trial.attempts >= MAX_SYSTEM_ATTEMPTS:
                self._move(index, "failed")
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
        status = ("pruned" if result.early_stopped else "succeeded") if ok else "failed"
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
        if trial.status == "failed":
            self._check_failure_limit(trial)
        return trial

    # --- racing, confirmation and the answer (rules: controller.protocol) ------------------------
    def _race(self, final: bool = False) -> None:
        """Run the racing rows left unfinished, then the promotions due (`final`: the sweep after
        the budget) until none is due; Joint is trained at every seed a promotion adds."""
        phase, self._phase = self._phase, "racing"
        self._run_phase_rows("racing")
        while due := self.protocol.due(self.trial_list(), final):
            rows = self.protocol.promotion_rows(due, self.trial_list(), self.next_index)
            if not rows:
                break
            log.info("search %s: racing promotes %s", self.search_id, [(p.key, p.seeds) for p in due])
            self._add(rows)
            self._run_phase_rows("racing")
        self._phase = phase

    def _run_phase_rows(self, phase: str) -> None:
        rows = [t for t in self.trial_list() if t.phase == phase]
        self._run_trials([t for t in rows if not t.final])
        for t in rows:
            if t.kind == "joint":
                self._check_baseline(self.trials[t.index])

    def _confirm(self) -> None:
        """The finalists, basic and Joint on the fresh seeds (skipped when search.confirm.seeds
        is 0), then the answer, stored on the search row."""
        if self.protocol.confirm_seeds > 0:
            self._phase = "confirmation"
            if not any(t.phase == "confirmation" for t in self.trials.values()):
                self._add(self.protocol.confirmation_rows(self.trial_list(), self.next_index))
            self._run_phase_rows("confirmation")
        try:
            self.answer = self.protocol.answer_document(self.trial_list())
        except ProtocolError as e:
            raise SearchFailed(str(e)) from None
        self.storage.set_answer(self.search_id, self.answer)
        log.info("search %s: %s", self.search_id, self.answer["verdict"])

    # --- state and teardown --------------------------------------------------------------------
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
                if self.trials[index].status == "running":
                    self._move(index, "waiting")
            except Exception:  # e.g. the lease is lost: the next owner resets running rows
                log.debug("could not hand trial %d back", index, exc_info=True)
        self._running.clear()

    def _close_strategy(self) -> None:
        if self.strategy is not None:
            try:
                self.strategy.close()
            except Exception:
                log.exception("closing the strategy failed")


def _result_of(trial: TrialRecord) -> dict[str, Any]:
    """What a cached copy repeats of the trial it copies."""
    return {
        "reward": trial.reward,
        "metrics": trial.metrics,
        "main_params": trial.main_params,
        "aux_params": trial.aux_params,
        "error": trial.error,
        "per_seed": trial.per_seed,
    }
