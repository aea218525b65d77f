"""Which model for the surrogate? Held-out rank agreement of each kind on the same rewards.

    .venv/bin/python bench/surrogate_models.py docs/data/rewards-synthetic-compete.jsonl.gz

For each kind of `evaluator.surrogate_model` (bagged gradient-boosted trees, ridge, a small MLP;
10 members each), every genotype's mean reward is predicted by an ensemble fitted on the other
four folds (5-fold over genotypes, 3 fold assignments); prints Spearman and Kendall against the
genotypes' seed-adjusted means, CPU seconds per fit, and the replicate ceiling (Spearman between
two single-seed replicates of the genotypes measured twice), with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from auxnas.evaluator.surrogate_data import read_rewards, replicate_pairs, summarise
from auxnas.evaluator.surrogate_model import MODEL_KINDS, feature_matrix, held_out, rank_agreement


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="fold assignments (seeds 0..n-1)")
    args = ap.parse_args(argv)
    print(f"load average at start {os.getloadavg()}")
    table = read_rewards(args.source)
    s = summarise(table)
    keys = [k for k in s.means if k != "joint"]
    x = feature_matrix(table.space, [s.tokens[k] for k in keys])
    y = np.array([s.means[k] for k in keys])
    w = np.array([s.counts[k] for k in keys], dtype=float)
    print(
        f"{len(keys)} genotypes, {len(table.rows)} evaluations, noise {s.noise:.4f}, spread {np.std(y, ddof=1):.4f}"
    )
    for kind in MODEL_KINDS:
        rhos, taus = [], []
        t0 = time.process_time()
        for rep in range(args.repeats):
            agree = rank_agreement(held_out(x, y, w, kind=kind, members=args.members, seed=rep), y)
            rhos.append(agree["spearman"])
            taus.append(agree["kendall"])
        cpu = (time.process_time() - t0) / (args.repeats * 5)
        print(
            f"{kind:6s} held-out Spearman {statistics.fmean(rhos):+.3f} (per repeat {', '.join(f'{r:+.3f}' for r in rhos)}), "
            f"Kendall {statistics.fmean(taus):+.3f}; {cpu:.2f} CPU-s per ensemble fit"
        )
    pairs = replicate_pairs(table, s.offsets)
    if len(pairs) >= 3:
        c = rank_agreement([a for a, _ in pairs], [b for _, b in pairs])
        print(
            f"replicate ceiling: Spearman {c['spearman']:+.3f}, Kendall {c['kendall']:+.3f} over {c['n']} genotypes"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
