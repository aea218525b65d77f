"""Does the answer hold on the test split? The answer protocol (racing over seeds, confirmation on
fresh seeds) against the one-seed protocol (every candidate at one seed, the best reward wins),
at equal evaluations, PPO and random, with a 3-seed retrain on the test split.

    .venv/bin/python bench/answer_study.py                      # the figures in docs/results.md
    .venv/bin/python bench/answer_study.py --presets synthetic-hard --seeds 1000 --budget 4

For every preset and search seed s:
1. `answer` searches (the product's protocol with its default racing and confirmation: rungs
   [1, 3], top quarter, 3 finalists, 5 fresh seeds), strategy `random` and `ppo`, `--budget`
   candidates each;
2. `one-seed` searches (no racing, no confirmation: the best meta-val reward is the claim), the
   same strategies, with as many candidates as the answer search of the same strategy ran
   evaluations (minus the two baselines), so both spend about the same CPU-seconds (both
   measured and printed);
3. the retrain (`evaluate.train_and_score`, phase "final": the whole training split, scored on the
   test split) of Joint, `basic` and every module the four searches name, at the retrain seeds
   s + 20000, s + 20001, s + 20002, which no search and no confirmation trained with.

The module a search names: the answer's (the recommended one, or the one its verdict quotes when
none is recommended); for one-seed, the best reward. Gains are paired by retrain seed. Targets,
per search, on the test split: (a) a recommended module gains > 0 over Joint; with no module
recommended, the quoted module gains no more than one std of its paired gains; (b) what the user
ends up training (the recommended module, else Joint) is at least `basic` minus one std of the
paired difference; (c) the predicted gain lies within 2 combined standard errors of the realised
gain (prediction SE: the confirmation's; one-seed has none, so only the retrain's counts).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import study  # noqa: E402  (bench/study.py: presets, one search, the baseline cache)

STRATEGIES = ("random", "ppo")
PROTOCOLS = ("answer", "one-seed")
RETRAIN_OFFSET = 20_000
RETRAIN_SEEDS = 3
log = study.log


def search_config(preset: str, seed: int, strategy: str, protocol: str, budget: int, parallel: int):
    """The preset as a user runs it, with the product's default racing and confirmation for
    `answer` (the demo preset trims confirmation to fit its time) and none for `one-seed`."""
    from auxnas.controller.config import ConfirmSection, RacingSection

    cfg = study.preset_config(preset, seed, strategy, budget, parallel, 4, "preset", protocol)
    if protocol == "answer":
        search = cfg.search.model_copy(update={"racing": RacingSection(), "confirm": ConfirmSection()})
        cfg = cfg.model_copy(update={"search": search})
    return cfg.model_copy(update={"name": f"{preset}-{protocol}-{strategy}-s{seed}"})


def one_search(preset, seed, strategy, protocol, budget, parallel, search_id) -> dict:
    cfg = search_config(preset, seed, strategy, protocol, budget, parallel)
    log(f"search {cfg.name} (budget {budget}) ...")
    run = study.run_search(cfg, search_id, None)
    run["budget"] = budget
    run["claim"] = claim(run)
    log(
        f"  {cfg.name}: {run['evaluations']} evaluations, {run['cpu_seconds']:.0f} CPU-s, "
        f"{run['wall_seconds']:.0f} s; {run['claim']['line']}"
    )
    return run


def claim(run: dict) -> dict:
    """What the search tells the user: the module it names, whether it recommends it, and the
    gain over Joint it predicts (with a standard error where it has one)."""
    from auxnas.search_space import Genotype

    answer = run["answer"]
    geno = run["best_genotype"]
    key = Genotype.from_json(geno).canonical_hash() if geno else None
    if answer is None:  # one-seed: the best meta-val reward, always presented as the pick
        pred = run["best_reward"] - run["joint"] if run["best_reward"] is not None else None
        return {
            "hash": key,
            "recommended": True,
            "predicted": pred,
            "predicted_se": None,
            "line": f"best {run['best_kind']} {pred:+.4f} over Joint at one seed",
        }
    over = answer.get("over_joint") or {}
    return {
        "hash": key,
        "recommended": bool(answer["recommended"]),
        "predicted": over.get("mean"),
        "predicted_se": over.get("se"),
        "line": answer["verdict"],
    }


def retrain_seed(preset: str, seed: int, runs: dict, done: dict) -> None:
    """Retrain Joint, basic and each named module of one (preset, seed) at the retrain seeds,
    one Ray task per (model, retrain seed); results go into `done` keyed by model then seed."""
    import ray

    from auxnas.evaluator.evaluate import train_and_score
    from auxnas.search_space import Genotype, basic_genotype

    cfg = search_config(preset, seed, "random", "one-seed", 1, 1).eval_config()
    space = cfg.search_space()
    models = {"joint": None, "basic": basic_genotype(space)}
    basic_hash = models["basic"].canonical_hash()
    for run in runs.values():
        if run["best_genotype"]:
            g = Genotype.from_json(run["best_genotype"])
            if g.canonical_hash() != basic_hash:
                models.setdefault(g.canonical_hash(), g)
    task = ray.remote(num_cpus=1)(train_and_score)
    refs = {
        (name, rs): task.remote(cfg.model_copy(update={"seed": rs}), g, phase="final")
        for name, g in models.items()
        if name not in done
        for rs in range(seed + RETRAIN_OFFSET, seed + RETRAIN_OFFSET + RETRAIN_SEEDS)
    }
    for (name, rs), ref in refs.items():
        result = ray.get(ref)
        if not result.ok:
            raise SystemExit(f"retrain {preset} seed {seed} {name} at {rs} failed: {result.error}")
        done.setdefault(name, {})[str(rs)] = result.reward
    done.setdefault(basic_hash, done["basic"])
    log(
        f"  retrain {preset} seed {seed}: "
        + ", ".join(f"{k[:8]} {statistics.fmean(v.values()):.4f}" for k, v in done.items())
    )


# --- targets ----------------------------------------------------------------------------------------
def paired(a: dict, b: dict) -> list[float]:
    return [a[s] - b[s] for s in sorted(a) if s in b]


def mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def targets(run: dict, rt: dict) -> dict:
    """The three targets of one search, from its claim and the retrain rows of its seed."""
    c = run["claim"]
    gain = paired(rt[c["hash"]], rt["joint"]) if c["hash"] else []
    realised, sd = mean_sd(gain) if gain else (float("nan"), float("nan"))
    se = sd / math.sqrt(len(gain)) if gain else float("nan")
    used = rt[c["hash"]] if c["recommended"] and c["hash"] else rt["joint"]
    vs_basic, vs_basic_sd = mean_sd(paired(used, rt["basic"]))
    a = realised > 0 if c["recommended"] else realised <= sd
    pred, pse = c["predicted"], c["predicted_se"] or 0.0
    total_se = math.sqrt(se**2 + pse**2)
    cc = abs(pred - realised) <= 2 * total_se if pred is not None else None
    return {
        "realised": realised,
        "realised_sd": sd,
        "realised_se": se,
        "vs_basic": vs_basic,
        "vs_basic_sd": vs_basic_sd,
        "a": a,
        "b": vs_basic >= -vs_basic_sd,
        "c": cc,
        "z": (pred - realised) / total_se if pred is not None and total_se > 0 else None,
    }


# --- report -----------------------------------------------------------------------------------------
BEGIN, END = "<!-- answer-study:begin (written by bench/answer_study.py) -->", "<!-- answer-study:end -->"


def fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def yes(v: bool | None) -> str:
    return "n/a" if v is None else ("yes" if v else "**no**")


def basic_hash(preset: str) -> str:
    from auxnas.search_space import basic_genotype

    space = search_config(preset, 0, "random", "one-seed", 1, 1).eval_config().search_space()
    return basic_genotype(space).canonical_hash()


def preset_lines(preset: str, state: dict) -> list[str]:
    runs, rts = state["searches"].get(preset, {}), state["retrains"].get(preset, {})
    lines = [
        f"### {preset}",
        "",
        "| protocol | strategy | seed | evaluations | CPU-s | claim | predicted "
        "| realised (test) | used − basic | (a) | (b) | (c) |",
        "|" + "---|" * 12,
    ]
    for protocol in PROTOCOLS:
        for strategy in STRATEGIES:
            for seed in state["args"]["seeds"]:
                run, rt = runs.get(f"{protocol}-{strategy}-{seed}"), rts.get(str(seed))
                if not run or not rt:
                    continue
                t, c = targets(run, rt), run["claim"]
                name = "basic" if c["hash"] == basic_hash(preset) else (c["hash"] or "")[:8]
                kind = ("recommends " if c["recommended"] else "quotes ") + name
                pred = fmt(c["predicted"]) + (f" ± {c['predicted_se']:.4f}" if c["predicted_se"] else "")
                lines.append(
                    f"| {protocol} | {strategy} | {seed} | {run['evaluations']} | {run['cpu_seconds']:.0f} "
                    f"| {kind} | {pred} | {fmt(t['realised'])} ± {t['realised_sd']:.4f} "
                    f"| {fmt(t['vs_basic'])} ± {t['vs_basic_sd']:.4f} | {yes(t['a'])} | {yes(t['b'])} "
                    f"| {yes(t['c'])} |"
                )
    lines.append("")
    for seed in state["args"]["seeds"]:
        rt = rts.get(str(seed))
        if rt:
            gains = mean_sd(paired(rt["basic"], rt["joint"]))
            lines.append(
                f"- seed {seed}: Joint {statistics.fmean(rt['joint'].values()):.4f} on the test "
                f"split; `basic` − Joint {fmt(gains[0])} ± {gains[1]:.4f}"
            )
    return lines + [""]


def summary_lines(state: dict) -> list[str]:
    """Per protocol over every preset, strategy and seed: how often each target held, and the mean
    realised test gain over Joint of what the user trains (the recommended module, else Joint)."""
    lines = [
        "| protocol | searches | recommends a module | (a) held | (b) held | (c) held "
        "| realised gain of what the user trains | CPU-s per search |",
        "|" + "---|" * 8,
    ]
    for protocol in PROTOCOLS:
        rows = []
        for preset in state["args"]["presets"]:
            for key, run in state["searches"].get(preset, {}).items():
                rt = state["retrains"].get(preset, {}).get(key.rsplit("-", 1)[1])
                if key.startswith(protocol + "-") and rt:
                    rows.append((run, targets(run, rt)))
        if not rows:
            continue
        n = len(rows)
        used = [t["realised"] if r["claim"]["recommended"] else 0.0 for r, t in rows]
        lines.append(
            f"| {protocol} | {n} | {sum(r['claim']['recommended'] for r, _ in rows)}/{n} | {held(rows, 'a')} "
            f"| {held(rows, 'b')} | {held(rows, 'c')} | {fmt(statistics.fmean(used))} "
            f"| {statistics.fmean(r['cpu_seconds'] for r, _ in rows):.0f} |"
        )
    return lines + [""]


def held(rows: list, target: str) -> str:
    return f"{sum(bool(t[target]) for _, t in rows)}/{len(rows)}"


def report(state: dict) -> str:
    a = state["args"]
    head = [
        f"Command: `{state['command']}`",
        "",
        f"Ran {state['started_utc']} to {state.get('finished_utc')} ({state.get('wall_seconds', 0) / 60:.0f} "
        f"min) on {study.machine_line()}; 1-minute load average {state['load_at_start'][0]:.1f} at the "
        f"start and {state.get('load_at_end', [float('nan')])[0]:.1f} at the end (the study itself "
        f"keeps both cores busy).",
        "",
        f"Search seeds {a['seeds']}; answer searches: {a['budget']} candidates, {a['parallel']} in "
        f"parallel; retrain seeds s + {RETRAIN_OFFSET} .. s + {RETRAIN_OFFSET + RETRAIN_SEEDS - 1}.",
        "",
    ]
    body = summary_lines(state)
    for preset in a["presets"]:
        body += preset_lines(preset, state)
    return "\n".join(head + body)


# --- main -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["synthetic-compete", "synthetic-hard"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1000, 1001, 1002], help="search seeds")
    ap.add_argument("--budget", type=int, default=12, help="candidates per answer search")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument(
        "--one-seed-strategies",
        nargs="*",
        choices=STRATEGIES,
        default=list(STRATEGIES),
        help="strategies of the one-seed searches (a first pass may leave some out; a rerun with "
        "the same state file adds them)",
    )
    ap.add_argument("--state", type=Path, default=Path(tempfile.gettempdir()) / "auxnas-answer-study.json")
    ap.add_argument("--results", type=Path, default=study.ROOT / "docs" / "results.md")
    args = ap.parse_args()
    study.check_presets(args.presets)
    settings = {
        "presets": args.presets,
        "seeds": args.seeds,
        "budget": args.budget,
        "parallel": args.parallel,
    }
    state = {"args": settings, "searches": {}, "retrains": {}}
    if args.state.exists() and json.loads(args.state.read_text())["args"] == settings:
        state = json.loads(args.state.read_text())
        log(f"resuming from {args.state}")
    state["command"] = "RAY_AUTH_MODE=disabled .venv/bin/python bench/answer_study.py " + " ".join(
        sys.argv[1:]
    )
    state.setdefault("started_utc", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    state.setdefault("load_at_start", list(os.getloadavg()))
    started = time.monotonic()
    start_ray()
    for preset in args.presets:
        for seed in args.seeds:
            run_seed(preset, seed, args, state)
            args.state.write_text(json.dumps(state, indent=1))
    state["wall_seconds"] = state.get("wall_seconds", 0.0) + time.monotonic() - started
    state["finished_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    state["load_at_end"] = list(os.getloadavg())
    args.state.write_text(json.dumps(state, indent=1))
    text = report(state)
    print(text)
    study.write_results(args.results, text, BEGIN, END)
    log(f"wrote {args.results}")


def start_ray() -> None:
    import ray

    cache = Path(tempfile.mkdtemp(prefix="auxnas-answer-study-cache-"))
    os.environ["AUXNAS_STUDY_CACHE"] = str(cache)  # Joint/basic at a seed: trained once per study
    ray.cloudpickle.register_pickle_by_value(study)  # workers cannot import bench/study.py
    ray.init(include_dashboard=False, log_to_driver=False)
    log(f"ray started; load average {os.getloadavg()}")


def run_seed(preset: str, seed: int, args, state: dict) -> None:
    """The four searches of one preset and seed (answer first: one-seed's budget follows from
    its evaluations), then their retrain; finished parts are kept in `state`."""
    runs = state["searches"].setdefault(preset, {})
    search_id = 1000 * args.presets.index(preset) + 10 * args.seeds.index(seed)
    for strategy in STRATEGIES:
        for protocol in PROTOCOLS:
            key = f"{protocol}-{strategy}-{seed}"
            if key in runs or (protocol == "one-seed" and strategy not in args.one_seed_strategies):
                continue
            budget = args.budget
            if protocol == "one-seed":  # the same evaluations: Joint, basic and candidates
                budget = runs[f"answer-{strategy}-{seed}"]["evaluations"] - 2
            search_id += 1
            runs[key] = one_search(preset, seed, strategy, protocol, budget, args.parallel, search_id)
            args.state.write_text(json.dumps(state, indent=1))
    done = state["retrains"].setdefault(preset, {}).setdefault(str(seed), {})
    mine = {k: v for k, v in runs.items() if k.endswith(f"-{seed}")}
    retrain_seed(preset, seed, mine, done)


if __name__ == "__main__":
    main()
