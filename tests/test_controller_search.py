"""The search driver end to end with fast fake evaluators (Ray tasks, the real submit path)."""

from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path

import pytest

from auxnas.controller.config import SearchConfig
from auxnas.controller.driver import SearchDriver, SearchProgress
from auxnas.controller.export import answer_document, best_trial, greedy_genotype
from auxnas.controller.storage import InMemoryStorage
from auxnas.evaluator import testing as fakes
from auxnas.search_space import basic_genotype, parse_genotype
from tests.cluster_support import run_in_thread

pytestmark = pytest.mark.usefixtures("ray_session")


def _config(**search) -> SearchConfig:
    strategy = search.pop("strategy", "random")
    controller = search.pop("controller", {"episodes_per_update": 4})
    num_inputs = search.pop("num_inputs", 2)
    tasks = search.pop("tasks", ["seg", "depth"])
    return SearchConfig(
        name="test",
        tasks=tasks,
        model={"num_aux_inputs": num_inputs},
        # the search phase alone: racing and confirmation are tested in test_answer_wiring.py
        search={
            "strategy": strategy,
            "parallel_trials": 2,
            "racing": {"rungs": [1]},
            "confirm": {"seeds": 0},
            **search,
        },
        controller=controller,
    )


def _evaluated_hashes(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _check_bookkeeping(trials, budget: int) -> None:
    """Every trial once, indices 0..n-1, Joint then basic first, each genotype trained once."""
    assert [t.index for t in trials] == list(range(len(trials)))
    assert [t.kind for t in trials[:2]] == ["joint", "basic"]
    assert Counter(t.kind for t in trials)["joint"] == 1
    assert Counter(t.kind for t in trials)["basic"] == 1
    assert all(t.final for t in trials)
    evaluated = [t for t in trials if t.kind == "candidate" and t.status != "cached"]
    assert len(evaluated) == budget
    trained = [t.genotype_hash for t in trials if t.status != "cached" and t.genotype_hash]
    assert len(trained) == len(set(trained))
    for t in trials:
        if t.status == "cached":
            assert t.cached and t.genotype_hash in trained


def test_cached_genotype_is_not_evaluated_again(tmp_path):
    # one task, one input: 42 distinct genotypes, so a budget of 24 draws many duplicates
    config = _config(budget=24, num_inputs=1, tasks=["seg"])
    log = tmp_path / "evaluated.txt"
    storage = InMemoryStorage()
    fn = functools.partial(fakes.recording, log_path=str(log))
    outcome = SearchDriver(config, storage, 7, tmp_path / "ck", evaluate_fn=fn).run()

    assert outcome.status == "succeeded", outcome.error
    trials = storage.trials(7)
    _check_bookkeeping(trials, 24)
    assert outcome.cached > 0 and outcome.evaluated == 24
    hashes = _evaluated_hashes(log)
    assert len(hashes) == len(set(hashes)) == 2 + 24  # joint, basic, candidates: once each
    by_hash = {t.genotype_hash: t for t in trials if t.status in ("succeeded", "pruned") and t.genotype_hash}
    for t in trials:
        if t.status == "cached":
            assert t.reward == by_hash[t.genotype_hash].reward and t.seconds == 0.0
    assert storage.status[7] == ("succeeded", None)
    assert storage.checkpoint_dirs[7] == str((tmp_path / "ck").resolve())


def test_random_strategy_spends_the_budget_and_records_iterations(tmp_path):
    config = _config(budget=10)
    storage = InMemoryStorage()
    seen: list[SearchProgress] = []
    outcome = SearchDriver(
        config, storage, 1, tmp_path, evaluate_fn=fakes.target_share, on_progress=seen.append
    ).run()
    assert outcome.status == "succeeded"
    _check_bookkeeping(storage.trials(1), 10)
    iterations = storage.iterations(1)
    assert [it.index for it in iterations] == list(range(outcome.iterations))
    assert sum(it.num_episodes for it in iterations) == 10 + outcome.cached
    assert seen[-1].evaluated == 10 and seen[-1].budget == 10 and seen[-1].phase == "done"
    assert [p.evaluated for p in seen] == sorted(p.evaluated for p in seen)
    assert outcome.joint.reward == fakes.JOINT_REWARD
    assert outcome.basic.tokens == list(basic_genotype(outcome_space(config)).tokens)
    assert outcome.best == best_trial(storage.trials(1))

    doc = answer_document(outcome.best, outcome.search_id, "test", None)  # no answer: not recommended
    assert doc["version"] == 2 and doc["recommended"] is False and doc["answer"] is None
    assert parse_genotype(doc).canonical_hash() == outcome.best.genotype_hash
    assert doc["reward"] == outcome.best.reward
    assert doc["search"] == {"id": 1, "name": "test", "trial": outcome.best.index}


def outcome_space(config):
    return config.search_space()


def test_failures_are_counted_and_end_the_search_at_the_limit(tmp_path):
    config = _config(budget=20, max_failed_trials=3, failure_reward=-1.0)
    storage = InMemoryStorage()
    outcome = SearchDriver(config, storage, 3, tmp_path, evaluate_fn=fakes.failing_candidates).run()

    assert outcome.status == "failed"
    assert outcome.error.startswith("4 trials failed, more than search.max_failed_trials=3")
    assert "RuntimeError: loss is NaN" in outcome.error
    assert storage.status[3] == ("failed", outcome.error)
    failed = [t for t in storage.trials(3) if t.status == "failed"]
    assert len(failed) == outcome.failed == 4
    for t in failed:
        assert t.reward is None and t.error["type"] == "RuntimeError" and t.genotype is not None
    assert outcome.joint.status == outcome.basic.status == "succeeded"


def test_early_stop_threshold_follows_the_best_reward(tmp_path):
    config = _config(budget=12, early_stop_ratio=1.0)
    storage = InMemoryStorage()
    SearchDriver(config, storage, 1, tmp_path, evaluate_fn=fakes.target_share).run()
    trials = storage.trials(1)
    assert not any(t.pruned for t in trials if t.kind != "candidate")
    stopped = [t for t in trials if t.status == "pruned"]
    assert stopped  # the fake stops whatever falls below the best so far
    best = best_trial(trials)
    assert best.status == "succeeded"


def test_cancel_stops_running_evaluations_promptly(tmp_path):
    config = _config(budget=40)
    storage = InMemoryStorage()

    def on_progress(p: SearchProgress) -> None:
        if p.phase == "search" and p.running == 2 and not p.waiting_for_resources:
            storage.cancelled.add(5)  # two hour-long runs started

    # an event, not a stopwatch: the run must return, and only a cancel of its evaluations can
    # make it return within the wait (they would sleep for an hour)
    slow = functools.partial(fakes.sleeping_candidates, seconds=3600.0)
    driver = SearchDriver(config, storage, 5, tmp_path, evaluate_fn=slow, on_progress=on_progress)
    thread, box = run_in_thread(driver.run)
    thread.join(120)
    assert not thread.is_alive(), "the cancelled search waits for its running evaluations"
    assert "error" not in box, box.get("error")
    outcome = box["value"]
    assert 5 in storage.cancelled
    assert outcome.status == "cancelled" and storage.status[5] == ("cancelled", None)
    assert outcome.evaluated == 0
    # the interrupted evaluations went back to waiting: whoever resumes the search runs them
    candidates = [t for t in storage.trials(5) if t.kind == "candidate"]
    assert candidates and {t.status for t in candidates} == {"waiting"}
    assert sorted(t.attempts for t in candidates)[-2:] == [1, 1]


def test_killed_search_resumes_with_every_trial_exactly_once(tmp_path):
    """A kill mid-iteration (after the 10th candidate); the resumed search trains nothing twice."""

    class Killed(BaseException):
        pass

    config = _config(budget=16, strategy="ppo")
    first_log, second_log = tmp_path / "first.txt", tmp_path / "second.txt"
    storage = InMemoryStorage()

    def kill_at_ten(p: SearchProgress) -> None:
        if p.evaluated >= 10:
            raise Killed()

    driver = SearchDriver(
        config,
        storage,
        1,
        tmp_path / "ck",
        evaluate_fn=functools.partial(fakes.recording, log_path=str(first_log)),
        on_progress=kill_at_ten,
    )
    with pytest.raises(Killed):
        driver.run()
    before = storage.trials(1)
    assert 1 not in storage.status  # killed: no final status written
    assert driver.iteration == 2  # two full iterations of 4 checkpointed, the third was cut
    assert {t.status for t in before if t.iteration == 2} & {"waiting", "running"}

    resumed = SearchDriver(
        config,
        storage,
        1,
        tmp_path / "ck",
        evaluate_fn=functools.partial(fakes.recording, log_path=str(second_log)),
    )
    outcome = resumed.run(resume=True)
    assert outcome.status == "succeeded", outcome.error
    trials = storage.trials(1)
    _check_bookkeeping(trials, 16)
    finished = [t for t in before if t.final]
    assert [t.to_dict() for t in finished] == [trials[t.index].to_dict() for t in finished]
    assert [t.tokens for t in before] == [t.tokens for t in trials[: len(before)]]  # nothing dropped
    finished_before = {t.genotype_hash or "joint" for t in finished if t.status != "cached"}
    assert not finished_before & set(_evaluated_hashes(second_log))  # nothing trained twice
    its = [it.index for it in storage.iterations(1)]
    assert its == list(range(outcome.iterations))

    greedy = greedy_genotype(config, Path(os.path.relpath(tmp_path / "ck")))  # relative paths work
    assert greedy.space == outcome_space(config)

    # a controller of another size cannot take over this checkpoint
    bigger = config.model_copy(
        update={"controller": config.controller.model_copy(update={"hidden_size": 32})}
    )
    again = SearchDriver(bigger, InMemoryStorage(), 1, tmp_path / "ck").run(resume=True)
    assert again.status == "failed" and "cannot restore the controller state" in again.error


def test_resume_without_checkpoint_reuses_stored_baselines(tmp_path):
    config = _config(budget=4)
    storage = InMemoryStorage()
    log = tmp_path / "evaluated.txt"

    class Killed(BaseException):
        pass

    def kill_after_baselines(p: SearchProgress) -> None:
        if p.phase == "search":
            raise Killed()

    fn = functools.partial(fakes.recording, log_path=str(log))
    with pytest.raises(Killed):
        SearchDriver(config, storage, 1, tmp_path, evaluate_fn=fn, on_progress=kill_after_baselines).run()
    assert (
        not (tmp_path / "state.json").exists() and len(storage.trials(1)) == 2 + 4
    )  # the first batch decided
    outcome = SearchDriver(config, storage, 1, tmp_path, evaluate_fn=fn).run(resume=True)
    assert outcome.status == "succeeded"
    _check_bookkeeping(storage.trials(1), 4)
    assert Counter(_evaluated_hashes(log))["joint"] == 1


def test_resume_refuses_another_strategy(tmp_path):
    storage = InMemoryStorage()
    SearchDriver(_config(budget=4), storage, 1, tmp_path, evaluate_fn=fakes.target_share).run()
    outcome = SearchDriver(
        _config(budget=8, strategy="ppo"), storage, 1, tmp_path, evaluate_fn=fakes.target_share
    ).run(resume=True)
    assert outcome.status == "failed"
    assert "strategy 'random'" in outcome.error and "search.strategy='ppo'" in outcome.error
