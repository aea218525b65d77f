"""PPO, random search and regularized evolution on the surrogate of a benchmark's reward.

    .venv/bin/python bench/surrogate_study.py --surrogate FILE --state runs/study/state.json \
        --strategies random evolution ppo --seeds 0-9 --budget 2000
    .venv/bin/python bench/surrogate_study.py --state docs/data/surrogate-study/study.json.gz \
        --report --plot docs/img/surrogate-study-best-so-far.png \
        --plot-variants random/default evolution/default ppo/epu8 ppo/default
    .venv/bin/python bench/surrogate_study.py --surrogate FILE --state x.json --strategies ppo \
        --ppo episodes_per_update=8 --seeds 0 --overhead 2000      # the controller's cost alone

One run = one strategy at one seed, driven as `controller.driver.SearchDriver` drives it:
batches of `controller.episodes_per_update` proposals; a genotype proposed before is answered
from the cache and spends no budget; 20 batches in a row with nothing new end the run early.
The run's seed is the search config's `seed`: it seeds the strategy and is the training seed the
surrogate answers at (common random numbers, as in a real search). The best genotype so far is
the one with the highest *observed* reward; the curves plot its *true* mean (the surrogate's
ensemble mean), at every number of candidates up to the budget, so one run to 2,000 gives every
smaller budget.

Controller overhead: process CPU seconds spent in `propose` + `observe` (evaluations excluded),
per candidate; memory: the process's resident set size after the run minus before it.

docs/data/surrogate-study/ keeps the runs of docs/results.md ("Controllers at scale"): `tune` and
`tune2` (tuning seeds 100-102), `study` (seeds 0-9), gzip-compressed (`--report` reads them).
The state file keeps every finished run (strategy, settings, seed) -> curve and costs; a rerun
skips finished runs. `--ppo KEY=VALUE ...` overrides controller settings (`lr`, `entropy_coeff`,
`episodes_per_update`, ...); `--label` names such a variant. Evolution: Real et al. 2019
(tournament selection of the best of `sample` random members of a population of the last
`population` candidates, one-token mutation, the oldest member dies).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "synthetic-compete.yaml"
BUDGETS = (50, 200, 1000, 2000)
MAX_IDLE = 20


# --- regularized evolution -----------------------------------------------------------------------
class Evolution:
    """Regularized evolution (aging), with the Strategy interface's propose/observe."""

    name = "evolution"

    def __init__(self, space: Any, seed: int, population: int = 50, sample: int = 10) -> None:
        self.space = space
        self.rng = random.Random(f"auxnas-evolution-{seed}")
        self.population_size, self.sample = population, sample
        self.population: list[tuple[tuple[int, ...], float]] = []  # oldest first
        self._batch: list[Any] = []

    def propose(self, n: int) -> list[Any]:
        from auxnas.search_space import Genotype, sample_genotype

        if len(self.population) < self.population_size:
            self._batch = [sample_genotype(self.space, self.rng) for _ in range(n)]
        else:
            self._batch = [Genotype(self.space, self._mutate(self._parent())) for _ in range(n)]
        return self._batch

    def _parent(self) -> tuple[int, ...]:
        contenders = self.rng.sample(self.population, self.sample)
        return max(contenders, key=lambda m: m[1])[0]

    def _mutate(self, tokens: tuple[int, ...]) -> tuple[int, ...]:
        counts = self.space.choice_counts()
        positions = [i for i, c in enumerate(counts) if c > 1]
        i = self.rng.choice(positions)
        new = list(tokens)
        new[i] = self.rng.choice([v for v in range(counts[i]) if v != tokens[i]])
        return tuple(new)

    def observe(self, rewards: Sequence[float]) -> dict[str, float]:
        for g, r in zip(self._batch, rewards, strict=True):
            self.population.append((g.tokens, r))
        del self.population[: max(0, len(self.population) - self.population_size)]
        return {}

    def close(self) -> None:
        pass


# --- one run ---------------------------------------------------------------------------------------
def make_strategy(name: str, seed: int, ppo: dict[str, Any], evo: dict[str, int]) -> tuple[Any, int]:
    """(strategy, batch size) for the run."""
    from auxnas.controller.config import load_search_config
    from auxnas.controller.strategies import make_strategy as product_strategy
    from auxnas.search_space import SearchSpace

    config = load_search_config(PRESET)
    controller = config.controller.model_copy(update=ppo)
    config = config.model_copy(update={"seed": seed, "controller": controller})
    space = SearchSpace(num_inputs=config.model.num_aux_inputs, tasks=tuple(config.tasks))
    batch = controller.episodes_per_update
    if name == "evolution":
        return Evolution(space, seed, **evo), batch
    return product_strategy(name, config, space), batch


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_one(
    surrogate: Any, name: str, seed: int, budget: int, ppo: dict, evo: dict, max_idle: int = MAX_IDLE
) -> dict[str, Any]:
    rss0, cpu0 = rss_bytes(), time.process_time()
    strategy, batch = make_strategy(name, seed, ppo, evo)
    build_cpu = time.process_time() - cpu0
    cache: dict[str, float] = {}
    observed_best, best_true, curve, overhead, idle = -math.inf, None, [], 0.0, 0
    rss_tenth, proposed = None, 0
    while len(curve) < budget and idle < max_idle:
        if rss_tenth is None and len(curve) >= budget // 10:
            rss_tenth = (len(curve), rss_bytes())
        t = time.process_time()
        genos = strategy.propose(batch)
        overhead += time.process_time() - t
        proposed += len(genos)
        surrogate.prefetch(genos)
        rewards, new = [], 0
        for g in genos:
            key = g.canonical_hash()
            if key not in cache and len(curve) < budget:
                cache[key] = surrogate.reward(g, seed)
                new += 1
                if cache[key] > observed_best:
                    observed_best, best_true = cache[key], surrogate.true_mean(g)
                curve.append(best_true)
            rewards.append(cache.get(key, surrogate.reward(g, seed)))
        idle = 0 if new else idle + 1
        t = time.process_time()
        strategy.observe(rewards)
        overhead += time.process_time() - t
    strategy.close()
    return {
        "curve": curve,
        "evaluated": len(curve),
        "stopped_idle": idle >= max_idle,
        "proposed": proposed,
        "overhead_cpu_per_proposal_ms": 1000 * overhead / max(1, proposed),
        "overhead_cpu_per_candidate_ms": 1000 * overhead / max(1, len(curve)),
        "build_cpu_seconds": build_cpu,
        "rss_growth_bytes": rss_bytes() - rss0,
        # memory that grows with the candidates: from the first tenth of the run to its end
        "rss_bytes_per_candidate": (rss_bytes() - rss_tenth[1]) / max(1, len(curve) - rss_tenth[0])
        if rss_tenth
        else None,
    }


def overhead_run(
    surrogate: Any, name: str, seed: int, proposals: int, ppo: dict, evo: dict
) -> dict[str, Any]:
    """The controller's cost alone over `proposals` proposals, cached or not (a converged PPO
    proposes known genotypes, which a search still pays for): CPU ms per proposal, and resident
    memory per proposal from the first tenth to the end."""
    strategy, batch = make_strategy(name, seed, ppo, evo)
    cpu, done, tenth = 0.0, 0, None
    while done < proposals:
        if tenth is None and done >= proposals // 10:
            tenth = (done, rss_bytes())
        t = time.process_time()
        genos = strategy.propose(batch)
        cpu += time.process_time() - t
        surrogate.prefetch(genos)
        rewards = [surrogate.reward(g, seed) for g in genos]
        t = time.process_time()
        strategy.observe(rewards)
        cpu += time.process_time() - t
        done += len(genos)
    strategy.close()
    return {
        "proposals": done,
        "cpu_ms_per_proposal": 1000 * cpu / done,
        "rss_bytes_per_proposal": (rss_bytes() - tenth[1]) / (done - tenth[0]),
        "rss_bytes_at_end": rss_bytes(),
    }


# --- state and report ------------------------------------------------------------------------------
def load_state(path: Path) -> dict[str, Any]:
    """The runs so far (a `.json.gz` copy, as docs/data keeps them, is read as well)."""
    if not path.is_file():
        return {"runs": {}}
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)


def run_key(name: str, label: str, seed: int) -> str:
    return f"{name}/{label}/{seed}"


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k, v = item.split("=", 1)
        out[k] = float(v) if "." in v or "e" in v else int(v)
    return out


def at(curve: list[float], n: int) -> float | None:
    return curve[min(n, len(curve)) - 1] if curve else None


def summary(state: dict, variant: str, budgets: Sequence[int]) -> dict[int, tuple[float, float, int]]:
    """budget -> (mean, standard error, runs) of the best-so-far true mean."""
    runs = [r for k, r in state["runs"].items() if k.rsplit("/", 1)[0] == variant]
    out = {}
    for b in budgets:
        vals = [v for r in runs if r["budget"] >= b and (v := at(r["curve"], b)) is not None]
        if vals:
            se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else float("nan")
            out[b] = (statistics.fmean(vals), se, len(vals))
    return out


def paired_difference(state: dict, a: str, b: str, budget: int) -> tuple[float, float, int] | None:
    """Mean and standard error of (a - b) over the seeds both ran."""
    ra = {k.rsplit("/", 1)[1]: r for k, r in state["runs"].items() if k.rsplit("/", 1)[0] == a}
    rb = {k.rsplit("/", 1)[1]: r for k, r in state["runs"].items() if k.rsplit("/", 1)[0] == b}
    seeds = sorted(s for s in set(ra) & set(rb) if min(ra[s]["budget"], rb[s]["budget"]) >= budget)
    diffs = [at(ra[s]["curve"], budget) - at(rb[s]["curve"], budget) for s in seeds]
    if len(diffs) < 2:
        return None
    return statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs)), len(diffs)


def print_report(state: dict, budgets: Sequence[int]) -> None:
    variants = sorted({k.rsplit("/", 1)[0] for k in state["runs"]})
    print("best-so-far true mean reward (mean ± standard error over seeds, runs)")
    print("variant".ljust(40) + "".join(f"{b:>26}" for b in budgets) + "   overhead ms/cand   RSS KB/cand")
    for v in variants:
        s = summary(state, v, budgets)
        cells = "".join(
            f"{s[b][0]:>14.5f} ± {s[b][1]:.5f} ({s[b][2]})" if b in s else f"{'-':>26}" for b in budgets
        )
        runs = [r for k, r in state["runs"].items() if k.rsplit("/", 1)[0] == v]
        ms = statistics.fmean(r["overhead_cpu_per_candidate_ms"] for r in runs)
        per = [r["rss_bytes_per_candidate"] for r in runs if r.get("rss_bytes_per_candidate") is not None]
        kb = f"{statistics.fmean(per) / 1024:10.2f}" if per else f"{'-':>10}"
        print(v.ljust(40) + cells + f"   {ms:10.2f}   {kb}")
    for v in variants:
        if v.startswith("random/"):
            continue
        for b in budgets:
            d = paired_difference(state, v, "random/default", b)
            if d:
                print(f"{v} - random at {b}: {d[0]:+.5f} ± {d[1]:.5f} ({d[0] / d[1]:+.1f} SE, {d[2]} seeds)")


def plot(state: dict, variants: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for v in variants:
        runs = [r["curve"] for k, r in state["runs"].items() if k.rsplit("/", 1)[0] == v]
        if not runs:
            continue
        # a run that stopped early (nothing new to propose) keeps its answer: pad with its last value
        n = max(r["budget"] for k, r in state["runs"].items() if k.rsplit("/", 1)[0] == v)
        runs = [c + [c[-1]] * (n - len(c)) for c in runs]
        xs = list(range(1, n + 1))
        means = [statistics.fmean(c[i] for c in runs) for i in range(n)]
        ses = [
            statistics.stdev(c[i] for c in runs) / math.sqrt(len(runs)) if len(runs) > 1 else 0
            for i in range(n)
        ]
        ax.plot(xs, means, label=f"{v} ({len(runs)} seeds)")
        ax.fill_between(
            xs,
            [m - s for m, s in zip(means, ses, strict=True)],
            [m + s for m, s in zip(means, ses, strict=True)],
            alpha=0.25,
        )
    ax.set_xscale("log")
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel("true mean reward of the best-so-far genotype")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--surrogate", type=Path)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--strategies", nargs="+", default=["random", "evolution", "ppo"])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--ppo", nargs="*", default=[], help="controller overrides KEY=VALUE")
    ap.add_argument("--evo", nargs="*", default=[], help="evolution overrides population=N sample=N")
    ap.add_argument("--label", default="default")
    ap.add_argument(
        "--max-idle", type=int, default=MAX_IDLE, help="batches in a row with nothing new that end a run"
    )
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--overhead", type=int, help="only time the controller over this many proposals")
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--plot-variants", nargs="*")
    args = ap.parse_args(argv)

    state = load_state(args.state)
    if args.report:
        print(f"load average {os.getloadavg()}")
        print_report(state, BUDGETS)
        if args.plot:
            variants = args.plot_variants or sorted({k.rsplit("/", 1)[0] for k in state["runs"]})
            plot(
                state, variants, args.plot, "synthetic-compete surrogate: best so far (mean ± SE over seeds)"
            )
        return 0
    from auxnas.evaluator.surrogate import load_surrogate

    surrogate = load_surrogate(args.surrogate)
    ppo, evo = parse_overrides(args.ppo), parse_overrides(args.evo)
    if args.overhead:
        for name in args.strategies:
            load = os.getloadavg()
            got = overhead_run(surrogate, name, parse_seeds(args.seeds)[0], args.overhead, ppo, evo)
            print(f"{name} {args.label}: load at start {load}; {json.dumps(got)}", flush=True)
        return 0
    args.state.parent.mkdir(parents=True, exist_ok=True)
    for name in args.strategies:
        for seed in parse_seeds(args.seeds):
            key = run_key(name, args.label, seed)
            if key in state["runs"] and state["runs"][key]["budget"] >= args.budget:
                continue
            load = os.getloadavg()
            t0 = time.perf_counter()
            result = run_one(
                surrogate, name, seed, args.budget, ppo if name == "ppo" else {}, evo, args.max_idle
            )
            result.update(
                budget=args.budget,
                settings=ppo if name == "ppo" else (evo if name == "evolution" else {}),
                load_at_start=[round(x, 2) for x in load],
                wall_seconds=time.perf_counter() - t0,
            )
            state["runs"][key] = result
            args.state.write_text(json.dumps(state))
            print(
                f"{key}: best true {result['curve'][-1]:.5f} after {result['evaluated']}, "
                f"overhead {result['overhead_cpu_per_candidate_ms']:.2f} ms/cand, "
                f"{result['wall_seconds']:.1f}s wall, load {load[0]:.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
