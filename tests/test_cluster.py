"""Searches on a multi-node Ray cluster: a head with no GPUs and two worker nodes of
2 GPUs each, all on 127.0.0.1. Placement within the GPU slots and `parallel_trials`, the node
of every trial, a node killed mid-search, an impossible request, two searches sharing the
cluster, and trials that wait for resources."""

from __future__ import annotations

import functools
from collections import Counter

import pytest

from auxnas.controller.driver import SearchDriver
from auxnas.controller.storage import InMemoryStorage
from auxnas.evaluator import testing as fakes
from auxnas.evaluator.remote import get_result, submit
from auxnas.evaluator.starts import StartWatch
from auxnas.search_space import basic_genotype
from tests.cluster_support import (
    LOOPBACK,
    add_gpu_node,
    kill_node,
    local_cluster,
    max_overlap,
    recording_sleep,
    run_in_thread,
    runs,
    wait_until,
)
from tests.service_support import tiny_search_config

# a local multi-node Ray cluster for the module: about a minute in all
pytestmark = pytest.mark.slow

GPU_SLOTS = 4  # 2 worker nodes x 2 GPUs, one GPU per trial


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(worker_nodes=2, gpus_per_node=2, cpus_per_node=2) as c:
        yield c


def _gpu_nodes(cluster) -> set[str]:
    return {n.node_id for n in cluster.worker_nodes}


def _config(budget: int, parallel: int, **search):
    return tiny_search_config(
        search={"budget": budget, "parallel_trials": parallel, "max_failed_trials": 0, **search},
        controller={"episodes_per_update": budget},
        resources={"num_gpus": 1},
    )


def _recorder(tmp_path, name: str, seconds: float):
    log_dir = tmp_path / name
    log_dir.mkdir()
    return functools.partial(recording_sleep, seconds=seconds, log_dir=str(log_dir)), log_dir


def _intervals(log_dir) -> list[tuple[float, float]]:
    return [(r["start"], r["end"]) for r in runs(log_dir)]


def _evaluated(store, sid: int = 1):
    return [t for t in store.trials(sid) if t.status != "cached"]


def test_trials_fill_the_gpu_slots_of_both_nodes_and_record_their_node(cluster, tmp_path):
    fn, log_dir = _recorder(tmp_path, "runs", seconds=2.0)  # long enough for cold workers to start
    store = InMemoryStorage()
    outcome = SearchDriver(_config(10, parallel=8), store, 1, tmp_path / "ck", evaluate_fn=fn).run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.evaluated == 10
    # 8 allowed by the search, 4 by the cluster: the cluster wins, and is used to the full
    assert max_overlap(_intervals(log_dir)) == GPU_SLOTS
    trials = _evaluated(store)
    assert {t.node["id"] for t in trials} == _gpu_nodes(cluster)  # both nodes, never the head
    assert {t.node["ip"] for t in trials} == {LOOPBACK}
    assert all(t.attempts == 1 for t in trials)
    # the node field counts what each node ran: the same as the evaluations' own record
    assert Counter(t.node["id"] for t in trials) == Counter(r["node"] for r in runs(log_dir))

    fn, log_dir = _recorder(tmp_path, "narrow", seconds=1.0)
    outcome = SearchDriver(
        _config(6, parallel=3), InMemoryStorage(), 1, tmp_path / "ck2", evaluate_fn=fn
    ).run()
    assert outcome.status == "succeeded", outcome.error
    assert max_overlap(_intervals(log_dir)) == 3  # the search's own limit, below the cluster's


@pytest.mark.parametrize("gpus", [3, 16])
def test_a_trial_no_node_can_hold_fails_the_search_fast(cluster, tmp_path, gpus):
    # 4 GPUs in the cluster, but a trial runs on one node: 3 per trial is as impossible as 16
    store = InMemoryStorage()
    config = tiny_search_config(resources={"num_gpus": gpus})
    # were it to wait for a node that cannot come, the search would never end
    thread, box = run_in_thread(
        lambda: SearchDriver(config, store, 1, tmp_path, evaluate_fn=fakes.target_share).run()
    )
    thread.join(120)
    assert not thread.is_alive(), "the search waits for resources no node has"
    assert "error" not in box, box.get("error")
    outcome = box["value"]
    assert outcome.status == "failed"
    assert outcome.error == (
        f"resources.num_gpus: no node offers {gpus} GPU(s) for one trial: the most a node of the "
        "Ray cluster has is 2; set resources.num_gpus: 0 to run on CPUs"
    )
    assert store.trials(1) == []


def test_two_searches_share_the_cluster_each_within_its_limit(cluster, tmp_path):
    fn_a, log_a = _recorder(tmp_path, "a", seconds=1.0)
    fn_b, log_b = _recorder(tmp_path, "b", seconds=1.0)
    store_a, store_b = InMemoryStorage(), InMemoryStorage()
    a = SearchDriver(_config(6, parallel=2), store_a, 1, tmp_path / "ck-a", evaluate_fn=fn_a)
    b = SearchDriver(_config(6, parallel=3), store_b, 1, tmp_path / "ck-b", evaluate_fn=fn_b)
    (ta, box_a), (tb, box_b) = run_in_thread(a.run), run_in_thread(b.run)
    ta.join(120)
    tb.join(120)
    for box in (box_a, box_b):
        assert "error" not in box, box.get("error")
        assert box["value"].status == "succeeded", box["value"].error
        assert box["value"].evaluated == 6
    runs_a, runs_b = _intervals(log_a), _intervals(log_b)
    assert max_overlap(runs_a) <= 2 and max_overlap(runs_b) <= 3
    # 5 wanted, 4 slots: together they keep the cluster full, and both run at the same time
    assert max_overlap(runs_a + runs_b) == GPU_SLOTS
    assert max(s for s, _ in runs_a) > min(s for s, _ in runs_b)
    assert max(s for s, _ in runs_b) > min(s for s, _ in runs_a)


def test_trials_beyond_the_free_gpus_wait_for_resources(cluster):
    config = _config(4, parallel=6).eval_config()
    genotype = basic_genotype(_config(4, parallel=6).search_space())
    watch = StartWatch()
    refs = [submit(config, genotype, None, functools.partial(fakes.sleeping, seconds=2.0)) for _ in range(6)]
    # Ray starts 4, one per GPU; the other 2 wait until a GPU is free
    started = {}
    wait_until(lambda: started.update(watch.poll(refs)) or len(started) == GPU_SLOTS, 30, "4 trials to start")
    assert len(watch.not_started(refs)) == 2
    assert {node["id"] for node in started.values()} == _gpu_nodes(cluster)
    results = [get_result(r, timeout=60) for r in refs]
    assert all(r.ok for r in results)
    assert watch.not_started(refs) == []
    # all seen: no round trip at all (a poll that asked the board would find none and break)
    watch._board = None
    assert watch.poll(refs) == {} and not watch.broken


def test_a_node_killed_mid_search_costs_no_trial(cluster, tmp_path):
    """Runs last: it kills a worker node (and joins a fresh one while the search goes on)."""
    fn, log_dir = _recorder(tmp_path, "runs", seconds=3.0)
    store = InMemoryStorage()
    config = _config(10, parallel=4)
    basic = basic_genotype(config.search_space()).canonical_hash()
    driver = SearchDriver(config, store, 1, tmp_path / "ck", evaluate_fn=fn)
    thread, box = run_in_thread(driver.run)

    def running_candidates():
        return [r for r in runs(log_dir) if "end" not in r and r["genotype"] not in ("joint", basic)]

    victim_id = wait_until(lambda: [r["node"] for r in running_candidates()], 90, "a candidate to run")[0]
    victim = next(n for n in cluster.worker_nodes if n.node_id == victim_id)
    kill_node(cluster, victim)
    interrupted = {r["genotype"] for r in runs(log_dir) if r["node"] == victim_id and "end" not in r}
    joined = add_gpu_node(cluster)  # a node that joins while the search runs takes trials too
    thread.join(180)
    assert "error" not in box, box.get("error")
    outcome = box["value"]
    assert outcome.status == "succeeded", outcome.error
    assert outcome.evaluated == 10 and outcome.failed == 0
    trials = [t for t in _evaluated(store) if t.kind == "candidate"]
    assert len(trials) == 10 and len({t.genotype_hash for t in trials}) == 10  # each stored once
    assert all(t.status in ("succeeded", "pruned") and t.error is None for t in trials)
    rerun = {t.genotype_hash for t in trials if t.attempts == 2}
    assert interrupted and interrupted <= rerun  # what ran on the dead node ran again
    assert all(t.attempts in (1, 2) for t in trials)
    assert all(t.node["id"] != victim_id for t in trials if t.attempts == 2)
    assert joined.node_id in {t.node["id"] for t in trials}
