"""The phases of a search, in the order the driver runs them: the optional calibration, the
baselines, the controller's iterations (each followed by racing), the final racing sweep and the
confirmation that gives the answer.

`SearchPhases` is a part of `controller.driver.SearchDriver`, which holds the state it uses.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from auxnas.controller import calibration
from auxnas.controller.config import SearchConfig
from auxnas.controller.protocol import AnswerProtocol, ProtocolError
from auxnas.controller.search_outcome import SearchFailed
from auxnas.controller.status import TrialStatus
from auxnas.controller.storage import IterationRecord, SearchStorage, TrialRecord
from auxnas.search_space import Genotype, basic_genotype

log = logging.getLogger("auxnas.controller")


class SearchPhases:
    # set by SearchDriver.__init__ (controller.driver)
    config: SearchConfig
    storage: SearchStorage
    search_id: int
    iteration: int
    stop_reason: str | None
    fidelity: dict[str, Any] | None
    protocol: AnswerProtocol | None
    answer: dict[str, Any] | None

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
                TrialRecord(
                    index=self.next_index, kind="joint", status=TrialStatus.WAITING, seed=self.config.seed
                )
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
        new = sum(1 for t in rows if t.status != TrialStatus.CACHED)
        self._run_batch(rows)
        evaluated_at = time.perf_counter()
        rows = [self.trials[t.index] for t in rows]
        rewards = [self._controller_reward(t) for t in rows]
        stats = self.strategy.observe(rewards)
        observed = time.perf_counter()
        stats = {
            **stats,
            "evaluated": float(new),
            "cached": float(sum(1 for t in rows if t.status == TrialStatus.CACHED)),
            "failed": float(sum(1 for t in rows if t.status == TrialStatus.FAILED)),
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
                rows.append(
                    self._cached_copy(self._waiting(genotype, index, k), original, status=TrialStatus.CACHED)
                )
        self._add(rows)
        return rows

    def _controller_reward(self, trial: TrialRecord) -> float:
        """The candidate's paired gain over Joint at its first seed (the search's `seed`); a
        failed candidate's as if it had scored `search.failure_reward`."""
        reward = trial.reward
        if reward is None or trial.status == TrialStatus.FAILED:
            reward = self.config.search.failure_reward
        return float(reward) - float(self._baseline("joint").reward)

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
