"""Real `auxnas worker` processes: one SIGKILLed mid-search is resumed by the next without
losing or repeating a trial, and ends with the rows and iterations of an uninterrupted run; two started on one queued search never both run it.

The workers join this test session's Ray (RAY_ADDRESS) and use a fake evaluator that takes
0.6 s per candidate and logs every finished evaluation to `data.root`.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

from auxnas.db.storage import SqlStorage
from tests import service_support as support

db_url = support.db_url
storage = support.storage

pytestmark = pytest.mark.slow

LEASE = 3.0


def worker_env(db_url, ray_session) -> dict[str, str]:
    return support.auxnas_env(db_url, RAY_ADDRESS=ray_session.get_runtime_context().gcs_address)


def start_worker(env, tmp_path, name: str, lease: float = LEASE):
    args = [
        "worker",
        "--lease",
        str(lease),
        "--poll",
        "0.2",
        "--data-dir",
        str(tmp_path / "runs"),
        "--evaluator",
        "python:tests.service_support:slow_evaluate",
    ]
    return support.start_auxnas(args, env, tmp_path / f"{name}.log")


def resumable_config(budget: int, strategy: str):
    return support.tiny_search_config(
        name="resumable",
        data={"root": "evaluations"},
        search={"strategy": strategy, "budget": budget, "parallel_trials": 2, "early_stop": False},
        controller={"episodes_per_update": 4},
    )


def queue_search(storage: SqlStorage, tmp_path, budget: int, strategy: str) -> int:
    log_dir = tmp_path / "runs" / "evaluations"  # inside the worker's --data-dir
    log_dir.mkdir(parents=True)
    return storage.create_search(resumable_config(budget, strategy))


def uninterrupted(tmp_path, budget: int, strategy: str):
    """The same search run in this process without a kill (same rewards, no delay, no log)."""
    from auxnas.controller.driver import SearchDriver
    from auxnas.controller.storage import InMemoryStorage

    store = InMemoryStorage()
    driver = SearchDriver(
        resumable_config(budget, strategy), store, 1, tmp_path / "whole", evaluate_fn=support.fast_evaluate
    )
    outcome = driver.run()
    assert outcome.status == "succeeded", outcome.error
    return store.trials(1), store.iterations(1)


def rows(trials) -> list[tuple]:
    return [(t.index, t.kind, t.status, t.tokens, t.reward, t.iteration) for t in trials]


def iteration_rows(iterations) -> list[tuple]:
    return [(it.index, it.num_episodes, it.reward_mean, it.reward_max) for it in iterations]


def test_a_killed_worker_is_resumed_without_losing_or_repeating_a_trial(
    ray_session, storage, db_url, tmp_path
):
    budget = 10
    sid = queue_search(storage, tmp_path, budget, "ppo")  # the controller resumes from its checkpoint
    env = worker_env(db_url, ray_session)
    first = start_worker(env, tmp_path, "first")
    try:
        # killed after at least one controller iteration (so a checkpoint exists) and mid-way
        support.wait_until(
            lambda: len(storage.iterations(sid)) >= 1 and len(storage.trials(sid)) >= 5,
            120,
            what="the first worker to record trials",
        )
        first_owner = storage.search_row(sid).worker_id
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        support.stop(first)
    before = storage.trials(sid)
    assert storage.search_row(sid).status == "running"  # nobody told the database it died
    assert storage.summary(sid).progress.evaluated < budget

    second = start_worker(env, tmp_path, "second")
    try:
        support.wait_until(
            lambda: storage.search_row(sid).status not in ("queued", "running"),
            180,
            what="the second worker to finish the search",
        )
    finally:
        support.stop(second)
    row = storage.search_row(sid)
    log = (tmp_path / "second.log").read_text()
    assert row.status == "succeeded", (row.error, log[-3000:])
    assert row.attempts == 2 and row.worker_id != first_owner
    assert f"search {sid}: resuming" in log

    after = storage.trials(sid)
    # nothing lost: every trial finished before the kill is still there, unchanged, and every
    # genotype decided before it is still where it was (the unfinished ones ran after)
    finished = [t for t in before if t.final]
    assert [t.to_dict() for t in finished] == [after[t.index].to_dict() for t in finished]
    assert [t.tokens for t in after[: len(before)]] == [t.tokens for t in before]
    assert all(t.final for t in after)
    # nothing repeated: indices are 0..n-1 once each, one joint and one basic, budget spent once
    assert [t.index for t in after] == list(range(len(after)))
    kinds = Counter(t.kind for t in after)
    assert kinds["joint"] == 1 and kinds["basic"] == 1
    assert sum(1 for t in after if t.kind == "candidate" and t.status != "cached") == budget
    # and no finished evaluation was trained again by the second worker
    evaluations = Counter(
        tuple(e["tokens"]) if e["tokens"] is not None else None
        for e in support.logged_evaluations(tmp_path / "runs" / "evaluations")
    )
    for t in finished:
        if t.status != "cached":
            key = tuple(t.tokens) if t.tokens is not None else None
            assert evaluations[key] == 1, f"trial {t.index} was evaluated {evaluations[key]} times"
    # the controller resumed from its checkpoint rather than from scratch, and exactly: the
    # rows and iterations are those of the same search run without a kill
    iterations = storage.iterations(sid)
    assert [it.index for it in iterations] == list(range(len(iterations)))
    whole_trials, whole_iterations = uninterrupted(tmp_path, budget, "ppo")
    assert rows(after) == rows(whole_trials)
    assert iteration_rows(iterations) == iteration_rows(whole_iterations)


def test_two_workers_on_one_queued_search_never_both_run_it(ray_session, storage, db_url, tmp_path):
    sid = queue_search(storage, tmp_path, budget=4, strategy="random")
    env = worker_env(db_url, ray_session)
    # a long lease: here a heartbeat starved by a busy machine must not look like a dead worker
    workers = [start_worker(env, tmp_path, f"w{k}", lease=15) for k in range(2)]
    try:
        support.wait_until(
            lambda: storage.search_row(sid).status not in ("queued", "running"),
            180,
            what="the search to finish",
        )
    finally:
        for w in workers:
            support.stop(w)
    row = storage.search_row(sid)
    assert row.status == "succeeded", row.error
    assert row.attempts == 1
    logs = [(tmp_path / f"w{k}.log").read_text() for k in range(2)]
    starters = [k for k, text in enumerate(logs) if f"search {sid}: starting" in text]
    assert len(starters) == 1, logs
    assert all("resuming" not in text for text in logs)
    trials = storage.trials(sid)
    assert [t.index for t in trials] == list(range(len(trials)))
    evaluations = Counter(
        tuple(e["tokens"]) if e["tokens"] is not None else None
        for e in support.logged_evaluations(tmp_path / "runs" / "evaluations")
    )
    assert max(evaluations.values()) == 1  # no genotype was trained twice
