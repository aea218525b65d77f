"""Per-seed rewards already stored in docs/data, as the JSON lines of bench/collect_rewards.py.

    .venv/bin/python bench/stored_rewards.py --out runs/rewards/stored.jsonl

Only runs of `configs/synthetic-compete.yaml` exactly as shipped (training seeds 0, 1, 2) are
kept; the stored files hold rewards and genotype hashes, so the genotypes are drawn again from
the generators that chose them, and every hash is checked:

- `docs/data/compete/calibrate-r6-segdepth-s0.json`: `auxnas calibrate --genotypes 12
  --replicates 2` at seed 0: Joint, `basic` and 12 random genotypes
  (`controller.calibration.calibration_genotypes(space, 12, 0)`) at training seeds 0 and 1;
- `docs/data/study-state.json`, searches `synthetic-compete-random-s{0,1,2}` (budget 40, no
  candidate cached, failed or early-stopped): the `random` strategy's first 40 draws of
  `random.Random("auxnas-random-<seed>")`, trained at that seed, in proposal order. Their hashes
  are not stored: `--check` re-evaluates the first candidate of each search and compares.
  Joint and `basic` of each search (seeds 0, 1, 2) come from the same file.

Not kept: the PPO searches (their genotypes are not stored and depend on the controller's
sampling), the calibrations at seed 100 (other seeds than the collection's) and the runs of
other configurations.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from auxnas.controller.calibration import calibration_genotypes
from auxnas.search_space import Genotype, SearchSpace, basic_genotype, sample_genotype

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "docs" / "data" / "compete" / "calibrate-r6-segdepth-s0.json"
STUDY = ROOT / "docs" / "data" / "study-state.json"
SPACE = SearchSpace(num_inputs=3, tasks=("segmentation", "depth"))
PRESET = "synthetic-compete"


def record(kind: str, genotype: Genotype | None, seed: int, reward: float, source: str) -> dict:
    return {
        "key": "joint" if genotype is None else genotype.canonical_hash(),
        "kind": kind,
        "tokens": None if genotype is None else list(genotype.tokens),
        "seed": seed,
        "ok": True,
        "reward": reward,
        "config": PRESET,
        "source": source,
    }


def from_calibration(path: Path = CALIBRATION) -> list[dict]:
    doc = json.loads(path.read_text())
    chosen = calibration_genotypes(SPACE, len(doc["genotypes"]) - 1, 0)
    by_label = {
        ("basic" if kind == "basic" else (g.canonical_hash() if g else "joint")): (kind, g)
        for kind, g in chosen
    }
    if set(doc["genotypes"]) != set(by_label) - {"joint"}:
        raise SystemExit(f"{path.name}: stored genotypes differ from the ones drawn again")
    out = []
    for r, reward in enumerate(doc["joint"]["rewards"]):
        out.append(record("joint", None, r, reward, path.name))
    for row in doc["per_genotype"]:
        kind, g = by_label[row["name"]]
        for r, reward in enumerate(row["rewards"]):
            if reward is not None:
                out.append(record(kind, g, r, reward, path.name))
    return out


def random_search_genotypes(seed: int, n: int) -> list[Genotype]:
    rng = random.Random(f"auxnas-random-{seed}")
    return [sample_genotype(SPACE, rng) for _ in range(n)]


def from_study(path: Path = STUDY) -> list[dict]:
    doc = json.loads(path.read_text())
    out = []
    for name, run in doc["searches"][PRESET].items():
        strategy, seed = name.rsplit("-", 1)
        seed = int(seed)
        source = f"{path.name}:{run['name']}"
        out.append(record("joint", None, seed, run["joint"], source))
        out.append(record("basic", basic_genotype(SPACE), seed, run["basic"], source))
        if strategy != "random":
            continue
        if run["cached"] or run["failed"] or any(run["candidate_early_stopped"]):
            raise SystemExit(f"{source}: cached, failed or early-stopped candidates break the replay")
        genos = random_search_genotypes(seed, len(run["candidate_rewards"]))
        out += [
            record("candidate", g, seed, r, source)
            for g, r in zip(genos, run["candidate_rewards"], strict=True)
        ]
    return out


def deduplicated(records: list[dict]) -> list[dict]:
    """One record per (genotype, seed); a second copy must agree (rewards are deterministic)."""
    seen: dict[tuple[str, int], dict] = {}
    for rec in records:
        key = (rec["key"], rec["seed"])
        if key in seen:
            if abs(seen[key]["reward"] - rec["reward"]) > 1e-9:
                raise SystemExit(
                    f"{key}: two stored rewards disagree ({seen[key]['reward']} vs {rec['reward']})"
                )
            continue
        seen[key] = rec
    return list(seen.values())


def check(records: list[dict]) -> None:
    """Re-evaluate the first candidate of each replayed random search (one CPU thread)."""
    from auxnas.controller.config import load_search_config
    from auxnas.evaluator.evaluate import evaluate

    config = load_search_config(ROOT / "configs" / f"{PRESET}.yaml").eval_config()
    firsts = {}
    for rec in records:
        if rec["source"].startswith(STUDY.name) and rec["kind"] == "candidate":
            firsts.setdefault(rec["source"], rec)
    for source, rec in firsts.items():
        got = evaluate(config.model_copy(update={"seed": rec["seed"]}), Genotype(SPACE, tuple(rec["tokens"])))
        same = got.ok and abs(got.reward - rec["reward"]) < 1e-9
        print(
            f"{source}: stored {rec['reward']:.6f}, again {got.reward:.6f}: {'same' if same else 'DIFFERENT'}"
        )
        if not same:
            raise SystemExit(f"{source}: the replayed genotype does not reproduce the stored reward")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--check", action="store_true", help="re-evaluate one replayed candidate per search")
    args = ap.parse_args(argv)
    records = deduplicated(from_calibration() + from_study())
    if args.check:
        check(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in records))
    kinds = {k: sum(r["kind"] == k for r in records) for k in ("joint", "basic", "candidate")}
    print(f"{len(records)} stored rewards ({kinds}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
