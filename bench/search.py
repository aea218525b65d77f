"""Controller benchmarks: overhead per candidate, parallel efficiency, learning vs random.

    .venv/bin/python bench/search.py overhead   # instant evaluator, 8 episodes per update
    .venv/bin/python bench/search.py parallel   # 2 s sleeping evaluator, 1 vs 2 parallel trials
    .venv/bin/python bench/search.py learning   # known-optimum reward, PPO vs random, 3 seeds
    .venv/bin/python bench/search.py scale      # 2 s sleeping evaluator on 1, 2, 4, 8 GPU slots
    .venv/bin/python bench/search.py all

Every figure is measured by running `controller.driver.SearchDriver` for real (Ray tasks through
`evaluator.remote.submit`, RLlib PPO, checkpoints every iteration) with a fake evaluator from
`evaluator.testing` in place of training. The search space is the default preset's: tasks
segmentation, depth, normal and P=3 inputs (45 tokens per genotype). `scale` runs on a local
multi-node Ray cluster (`evaluator.local_cluster`: a head without GPUs and nodes of 2 GPUs that
Ray only counts, all on 127.0.0.1), one trial per GPU.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from auxnas.controller.config import SearchConfig  # noqa: E402
from auxnas.controller.driver import SearchDriver, SearchOutcome, SearchProgress  # noqa: E402
from auxnas.controller.storage import InMemoryStorage  # noqa: E402
from auxnas.evaluator import testing as fakes  # noqa: E402

TASKS = ["segmentation", "depth", "normal"]


def _config(seed: int = 0, **search) -> SearchConfig:
    controller = search.pop("controller", {})
    resources = search.pop("resources", {})
    return SearchConfig(
        name="bench",
        seed=seed,
        tasks=TASKS,
        model={"num_aux_inputs": 3},
        search=search,
        controller=controller,
        resources=resources,
    )


def _search(config: SearchConfig, evaluate_fn) -> tuple[SearchOutcome, SearchDriver, float]:
    """Run one search; returns its outcome, the driver and the wall seconds of the candidate phase."""
    marks: dict[str, float] = {}

    def on_progress(p: SearchProgress) -> None:
        if p.phase == "search" and "search" not in marks:
            marks["search"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as ck:
        driver = SearchDriver(
            config, InMemoryStorage(), 1, ck, evaluate_fn=evaluate_fn, on_progress=on_progress
        )
        outcome = driver.run()
        end = time.perf_counter()
    if outcome.status != "succeeded":
        raise SystemExit(f"bench search {outcome.status}: {outcome.error}")
    return outcome, driver, end - marks["search"]


def overhead(budget: int) -> None:
    config = _config(strategy="ppo", budget=budget, parallel_trials=8, controller={"episodes_per_update": 8})
    _search(
        config.model_copy(update={"search": config.search.model_copy(update={"budget": 8})}),
        fakes.hashed_reward,
    )
    # measured run: Ray's 8 worker processes are warm now
    outcome, driver, wall = _search(config, fakes.hashed_reward)
    candidates = outcome.evaluated + outcome.cached
    t = {k: sum(v) for k, v in driver.timings.items()}
    # trial records of the candidate phase only (the baselines' two come first)
    record = sum(driver.timings["record_seconds"][2:])
    controller = t["propose_seconds"] + t["observe_seconds"] + t["checkpoint_seconds"] + record
    per = 1000.0 / candidates
    print(
        f"overhead: {candidates} candidates ({outcome.cached} cached), {outcome.iterations} iterations of 8"
    )
    print(
        f"overhead: controller {controller * per:.1f} ms/candidate "
        f"(sample {t['propose_seconds'] * per:.1f}, PPO update + weight sync {t['observe_seconds'] * per:.1f}, "
        f"checkpoint {t['checkpoint_seconds'] * per:.1f}, trial bookkeeping {record * per:.1f})"
    )
    print(
        f"overhead: Ray tasks {(t['evaluate_seconds'] - record) * per:.1f} ms/candidate "
        f"(round trip of the instant evaluator through evaluator.remote, 8 in parallel)"
    )
    print(f"overhead: wall {wall * per:.1f} ms/candidate over the candidate phase ({wall:.1f} s)")


def parallel(budget: int, seconds: float) -> None:
    rates = {}
    for p in (1, 2):
        config = _config(
            strategy="ppo", budget=budget, parallel_trials=p, controller={"episodes_per_update": 8}
        )
        outcome, _, wall = _search(config, functools.partial(fakes.sleeping, seconds=seconds))
        rates[p] = outcome.evaluated / wall * 60.0
        print(
            f"parallel: parallel_trials={p}: {outcome.evaluated} candidates in {wall:.1f} s "
            f"= {rates[p]:.2f} candidates/min ({seconds:g} s evaluator)"
        )
    print(f"parallel: efficiency 2 over 1 = {rates[2] / rates[1]:.2f}x")


def scale(seconds: float, waves: int, strategy: str) -> None:
    """Parallel efficiency = ideal wall (waves x seconds) / measured wall of the candidate phase,
    at 1, 2, 4 and 8 GPU slots, each on a fresh cluster of ceil(slots / 2) nodes."""
    from auxnas.evaluator.local_cluster import local_cluster

    rows = []
    for slots in (1, 2, 4, 8):
        nodes, per_node = max(1, slots // 2), min(slots, 2)
        config = _config(
            strategy=strategy,
            budget=waves * slots,
            parallel_trials=slots,
            early_stop=False,
            controller={"episodes_per_update": slots},
            resources={"num_gpus": 1},
        )
        evaluate = functools.partial(fakes.sleeping, seconds=seconds)
        with local_cluster(worker_nodes=nodes, gpus_per_node=per_node, cpus_per_node=per_node):
            # warm-up: one wave starts a Ray worker process per slot
            warm = config.search.model_copy(update={"budget": slots})
            _search(config.model_copy(update={"search": warm}), evaluate)
            load = os.getloadavg()[0]
            outcome, _, wall = _search(config, evaluate)
        rows.append((slots, nodes, outcome.evaluated, wall, waves * seconds / wall, load))
        print(f"scale: {slots} slots done", file=sys.stderr, flush=True)
    print(f"scale: {strategy} controller, {seconds:g} s sleeping evaluator, {waves} waves of `slots` trials")
    print("scale: slots  nodes  trials   wall s  efficiency  load")
    for slots, nodes, n, wall, eff, load in rows:
        print(f"scale: {slots:5d}  {nodes:5d}  {n:6d}  {wall:7.2f}  {eff:10.2f}  {load:4.1f}")


def learning(budget: int, seeds: list[int]) -> None:
    summary: dict[str, list[tuple[float, float, float]]] = {}
    for strategy in ("ppo", "random"):
        for seed in seeds:
            config = _config(seed=seed, strategy=strategy, budget=budget, parallel_trials=8, early_stop=False)
            outcome, _, wall = _search(config, fakes.target_share)
            rewards = [t.reward for t in outcome.trials if t.kind == "candidate" and t.status == "succeeded"]
            last = rewards[-80:]
            row = (max(rewards), statistics.fmean(rewards), statistics.fmean(last))
            summary.setdefault(strategy, []).append(row)
            print(
                f"learning: {strategy:6s} seed {seed}: best {row[0]:.3f} mean {row[1]:.3f} "
                f"last-80 mean {row[2]:.3f} ({len(rewards)} evaluated, {outcome.cached} cached, "
                f"{outcome.iterations} iterations, {wall:.0f} s)"
            )
    for strategy, rows in summary.items():
        best, mean, last = (statistics.fmean(r[i] for r in rows) for i in range(3))
        print(
            f"learning: {strategy:6s} over {len(rows)} seeds: best {best:.3f} mean {mean:.3f} "
            f"last-80 mean {last:.3f} (reward = share of {len(TASKS) * 3 * 5} tokens equal to a hidden target)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", choices=["overhead", "parallel", "learning", "scale", "all"])
    parser.add_argument("--overhead-budget", type=int, default=160)
    parser.add_argument("--parallel-budget", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--learning-budget", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale-waves", type=int, default=3)
    parser.add_argument("--scale-strategy", choices=["random", "ppo"], default="random")
    args = parser.parse_args()

    import ray

    if args.which == "scale":  # its own clusters, no local Ray
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
        scale(args.sleep, args.scale_waves, args.scale_strategy)
        return

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    if args.which in ("overhead", "all"):
        overhead(args.overhead_budget)
    if args.which in ("parallel", "all"):
        parallel(args.parallel_budget, args.sleep)
    if args.which in ("learning", "all"):
        learning(args.learning_budget, args.seeds)
    ray.shutdown()
    if args.which == "all":
        scale(args.sleep, args.scale_waves, args.scale_strategy)
    print(f"machine: load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
