"""Per-seed rewards of uniformly random genotypes on a preset, for fitting `auxnas surrogate fit`.

    nohup nice -n 19 .venv/bin/python bench/collect_rewards.py \
        --config configs/synthetic-compete.yaml --out runs/rewards/collect.jsonl &

Resumable: every finished evaluation is one JSON line of `--out` (appended, flushed), and a
restart skips the (genotype, seed) pairs already there. The plan, in order:

1. Joint at the first seed (a reproducibility check against stored figures: rewards are
   deterministic per seed on the CPU);
2. `--first` distinct random genotypes at the first seed (`--seeds`' first entry);
3. the first `--replicated` of them at each further seed;
4. Joint and `basic` at every seed;
5. more distinct random genotypes at the first seed, up to `--max-genotypes`.

Genotypes come from `random.Random("auxnas-collect-<sampling seed>")`, each token uniform over
its valid choices (`search_space.sample_genotype`), distinct by canonical hash and never `basic`;
the same sampling seed gives the same list. Each evaluation is the product's `train` evaluator
(`evaluator.evaluate.evaluate`, no early stop) in this one process with one torch thread (the
preset's `resources.num_cpus`). A line holds the genotype's tokens and hash, its kind
(`candidate`, `joint`, `basic`), the training seed, reward, metrics, CPU seconds of this process,
wall seconds and the load average at its start.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

from auxnas.controller.config import load_search_config
from auxnas.evaluator.evaluate import evaluate
from auxnas.search_space import Genotype, SearchSpace, basic_genotype, sample_genotype


def random_genotypes(space: SearchSpace, n: int, sampling_seed: int) -> list[Genotype]:
    """`n` distinct uniformly random genotypes (never `basic`), the same for the same seed."""
    rng = random.Random(f"auxnas-collect-{sampling_seed}")
    seen = {basic_genotype(space).canonical_hash()}
    out: list[Genotype] = []
    while len(out) < n:
        g = sample_genotype(space, rng)
        if g.canonical_hash() not in seen:
            seen.add(g.canonical_hash())
            out.append(g)
    return out


def plan(
    space: SearchSpace, seeds: list[int], first: int, replicated: int, max_genotypes: int, sampling_seed: int
) -> list[tuple[str, Genotype | None, int]]:
    """(kind, genotype, seed) in the order they are evaluated (module docstring)."""
    genos = random_genotypes(space, max_genotypes, sampling_seed)
    items: list[tuple[str, Genotype | None, int]] = [("joint", None, seeds[0])]
    items += [("candidate", g, seeds[0]) for g in genos[:first]]
    items += [("candidate", g, s) for s in seeds[1:] for g in genos[:replicated]]
    items += [(kind, g, s) for s in seeds for kind, g in (("joint", None), ("basic", basic_genotype(space)))]
    items += [("candidate", g, seeds[0]) for g in genos[first:]]
    seen: set[tuple[str, int]] = set()
    unique = []
    for kind, g, s in items:
        if (key := (key_of(kind, g), s)) not in seen:
            seen.add(key)
            unique.append((kind, g, s))
    return unique


def key_of(kind: str, genotype: Genotype | None) -> str:
    return "joint" if genotype is None else genotype.canonical_hash()


def done_keys(path: Path) -> set[tuple[str, int]]:
    """(genotype key, seed) of every line already written (a torn last line is ignored)."""
    if not path.is_file():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        keys.add((rec["key"], rec["seed"]))
    return keys


def run_one(config, kind: str, genotype: Genotype | None, seed: int) -> dict:
    load = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    result = evaluate(config.model_copy(update={"seed": seed}), genotype)
    return {
        "key": key_of(kind, genotype),
        "kind": kind,
        "tokens": None if genotype is None else list(genotype.tokens),
        "seed": seed,
        "ok": result.ok,
        "reward": result.reward,
        "metrics": result.metrics,
        "error": result.error,
        "cpu_seconds": time.process_time() - c0,
        "wall_seconds": time.perf_counter() - t0,
        "load_at_start": [round(x, 2) for x in load],
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/synthetic-compete.yaml")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds, first one first")
    ap.add_argument("--first", type=int, default=200, help="genotypes at the first seed before replicates")
    ap.add_argument("--replicated", type=int, default=100, help="genotypes scored at every seed")
    ap.add_argument("--max-genotypes", type=int, default=600)
    ap.add_argument("--sampling-seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="stop after this many new evaluations")
    args = ap.parse_args(argv)

    search = load_search_config(args.config)
    config = search.eval_config()
    space = SearchSpace(num_inputs=config.model.num_aux_inputs, tasks=tuple(config.tasks))
    items = plan(space, args.seeds, args.first, args.replicated, args.max_genotypes, args.sampling_seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(args.out)
    todo = [it for it in items if (key_of(it[0], it[1]), it[2]) not in done]
    print(f"{len(items)} planned, {len(items) - len(todo)} done, {len(todo)} to go", file=sys.stderr)
    torch.set_num_threads(1)
    for n, (kind, g, seed) in enumerate(todo):
        if args.limit is not None and n >= args.limit:
            break
        rec = run_one(config, kind, g, seed)
        rec["config"] = search.name
        with args.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        print(
            f"{rec['utc']} {kind} {rec['key']} seed {seed}: reward {rec['reward']} "
            f"cpu {rec['cpu_seconds']:.1f}s wall {rec['wall_seconds']:.1f}s load {rec['load_at_start'][0]}",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
