"""How well does a config's reward separate architectures? Per-task breakdown, for tuning presets.

    .venv/bin/python bench/evaluate_separation.py '{"train": {"steps": 150}}' [N_RANDOM] [N_SEEDS] [--joint]

The JSON overrides the default `EvalConfig` (not a preset file). Trains `basic` with seeds
0..N_SEEDS-1 and N_RANDOM random genotypes (random.Random(100 + i)) with seed 0, then prints,
for the reward and for each task's score metric, the std over seeds and over architectures,
their ratio, and every value; `--joint` adds the Joint baseline for the same seeds. The tuning
runs in the evaluator's notes were made with this logic (bench/evaluate.py measures a preset).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from auxnas.evaluator.config import EvalConfig
    from auxnas.evaluator.evaluate import evaluate
    from auxnas.evaluator.tasks import make_task
    from auxnas.search_space import basic_genotype, sample_genotype

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not args:
        raise SystemExit(__doc__)
    overrides = json.loads(args[0])
    n_random = int(args[1]) if len(args) > 1 else 6
    n_seeds = int(args[2]) if len(args) > 2 else 3
    cfg = EvalConfig.model_validate(overrides)
    space = cfg.search_space()

    def run(genotype, seed: int) -> dict[str, float]:
        t = time.perf_counter()
        r = evaluate(cfg.model_copy(update={"seed": seed}), genotype)
        if not r.ok:
            raise SystemExit(f"evaluation failed: {r.error}")
        from auxnas.evaluator.data import load_dataset

        infos = load_dataset(cfg.data, cfg.tasks).tasks
        scores = {t: r.metrics[t][make_task(infos[t]).score_metric] for t in cfg.tasks}
        return {"reward": r.reward, "seconds": time.perf_counter() - t, **scores}

    basic = [run(basic_genotype(space), s) for s in range(n_seeds)]
    rand = [run(sample_genotype(space, random.Random(100 + i)), 0) for i in range(n_random)]
    joint = [run(None, s) for s in range(n_seeds)] if "--joint" in sys.argv else []
    print(json.dumps(overrides))
    for key in ["reward", *cfg.tasks]:
        seed_sd = statistics.stdev([r[key] for r in basic])
        arch_sd = statistics.stdev([r[key] for r in rand])
        line = (
            f"  {key:14s} seed sd {seed_sd:.4f} arch sd {arch_sd:.4f} ratio {arch_sd / seed_sd:5.2f} | "
            f"basic {[round(r[key], 3) for r in basic]} random {[round(r[key], 3) for r in rand]}"
        )
        if joint:
            line += f" joint {[round(r[key], 3) for r in joint]}"
        print(line)
    print(f"  median seconds {statistics.median([r['seconds'] for r in basic + rand]):.1f}")


if __name__ == "__main__":
    main()
