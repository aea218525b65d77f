"""The evidence study: does PPO beat random search at equal budget, and does the
searched auxiliary module beat Joint and `basic` after the final retrain on the test split?

    .venv/bin/python bench/study.py                                   # the figures in docs/results.md
    .venv/bin/python bench/study.py --presets synthetic-tiny --seeds 5 --budget 40 --retrain-steps 600

For every preset and seed s (the config's `seed`: main-network init, data order, controller):
1. two searches with `controller.driver.SearchDriver` (real Ray tasks, real training, RLlib PPO
   for `ppo`), strategy `ppo` and `random`, the same budget and parallelism;
2. the final retrain (`evaluator.retrain.retrain`, seed s): Joint, `basic` and the best genotype
   the PPO search found, trained on the whole training split and scored on the test split.
Means and standard deviations are over the seeds. Every number printed and written to
docs/results.md comes from these runs; `--state` keeps finished runs so an interrupted study
resumes where it stopped.

Joint and `basic` are evaluated at the start of every search; within one preset and seed they are
the same deterministic CPU evaluation for both strategies, so the second search reads them from a
small disk cache instead of training them again (`cached baselines` in the log).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

STRATEGIES = ("ppo", "random")
RETRAIN_ROWS = ("joint", "basic", "searched")


def log(msg: str) -> None:
    print(f"[{datetime.datetime.now(datetime.UTC):%H:%M:%S}] {msg}", flush=True)


# --- baseline cache shared by the two searches of one preset and seed ------------------------------
def _cached_evaluate(config, genotype, early_stop_below=None):
    """`evaluator.evaluate.evaluate`, with Joint/basic (no early stop) memoised on disk.

    Runs inside Ray workers: defined in `__main__`, so Ray ships it by value."""
    import json as _json
    import os as _os

    from auxnas.evaluator.evaluate import evaluate
    from auxnas.evaluator.result import EvalResult

    cache_dir = _os.environ.get("AUXNAS_STUDY_CACHE")
    if early_stop_below is not None or not cache_dir:
        return evaluate(config, genotype, early_stop_below=early_stop_below)
    key = hashlib.sha256(
        (config.model_dump_json() + (genotype.canonical_hash() if genotype is not None else "joint")).encode()
    ).hexdigest()[:24]
    path = Path(cache_dir) / f"{key}.json"
    if path.exists():
        return EvalResult(**_json.loads(path.read_text()))
    result = evaluate(config, genotype)
    if result.ok:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(_json.dumps(result.to_dict()))
        tmp.replace(path)
    return result


# --- configs ----------------------------------------------------------------------------------------
def preset_path(preset: str) -> Path:
    """A preset name in configs/ (`synthetic-tiny`) or a path to a YAML file."""
    return Path(preset) if preset.endswith((".yaml", ".yml")) else ROOT / "configs" / f"{preset}.yaml"


_PRESETS: dict = {}  # read once at the start: a preset edited while the study runs changes nothing


def check_presets(presets: list[str]) -> None:
    """One line naming the field for a preset that is missing or does not validate."""
    from auxnas.evaluator.config import ConfigError

    for p in presets:
        if not preset_path(p).exists():
            raise SystemExit(f"error: --presets: {preset_path(p)} does not exist")
        try:
            load_preset(p)
        except ConfigError as e:
            raise SystemExit(f"error: --presets: {e}") from None


def load_preset(preset: str):
    from auxnas.controller.config import load_search_config

    if preset not in _PRESETS:
        _PRESETS[preset] = load_search_config(preset_path(preset))
    return _PRESETS[preset]


def preset_config(
    preset: str,
    seed: int,
    strategy: str,
    budget: int,
    parallel: int,
    per_update: int,
    early_stop: str,
    protocol: str = "one-seed",
):
    """`protocol`: "one-seed" scores every candidate at one training seed and retrains the best
    reward (no racing, no confirmation); "answer" keeps the preset's racing and confirmation and
    retrains the answer's module."""
    base = load_preset(preset)
    update = {"strategy": strategy, "budget": budget, "parallel_trials": parallel}
    if protocol == "one-seed":
        update["racing"] = base.search.racing.model_copy(update={"rungs": [1]})
        update["confirm"] = base.search.confirm.model_copy(update={"seeds": 0})
    if early_stop != "preset":
        update["early_stop"] = early_stop == "on"
    search = base.search.model_copy(update=update)
    controller = base.controller.model_copy(update={"episodes_per_update": per_update})
    return base.model_copy(
        update={
            "seed": seed,
            "search": search,
            "controller": controller,
            "name": f"{preset}-{strategy}-s{seed}",
        }
    )


# --- one search -------------------------------------------------------------------------------------
def run_search(config, search_id: int, img_dir: Path | None):
    from auxnas.controller.driver import SearchDriver
    from auxnas.controller.storage import InMemoryStorage

    storage = InMemoryStorage()
    with tempfile.TemporaryDirectory() as ck:
        driver = SearchDriver(config, storage, search_id, ck, evaluate_fn=_cached_evaluate)
        started = time.monotonic()
        outcome = driver.run()
        wall = time.monotonic() - started
    if outcome.status != "succeeded":
        raise SystemExit(f"search {config.name} {outcome.status}: {outcome.error}")
    trials = outcome.trials
    cands = sorted(
        (t for t in trials if t.kind == "candidate" and t.phase == "search"), key=lambda t: t.index
    )
    best = outcome.best
    finished = [t for t in cands if t.reward is not None and not t.pruned]
    best_candidate = max(finished, key=lambda t: t.reward, default=None)
    # Joint has no genotype: when it is the best, the retrain's `searched` row is the best candidate
    searched = best if best and best.genotype else best_candidate
    answer = outcome.answer if config.search.confirm.seeds > 0 else None
    if answer is not None:  # the answer's module (the quoted one when no module is recommended)
        from auxnas.controller.export import answer_trial

        index = answer_trial(answer)
        searched = next((t for t in trials if t.index == index), searched)
    if img_dir is not None:
        from auxnas.controller.plots import render

        img_dir.mkdir(parents=True, exist_ok=True)
        for name in ("reward", "ops", "genotype"):
            (img_dir / f"{name}.png").write_bytes(render(name, trials, title=f"{config.name}: {name}"))
        log(f"  plots of {config.name} written to {img_dir}")
    return {
        "name": config.name,
        "wall_seconds": wall,
        "evaluated": outcome.evaluated,
        "cached": outcome.cached,
        "failed": outcome.failed,
        "early_stopped": sum(1 for t in cands if t.pruned),
        "joint": outcome.joint.reward if outcome.joint else None,
        "basic": outcome.basic.reward if outcome.basic else None,
        "best_reward": best.reward if best else None,
        "best_kind": best.kind if best else None,
        "best_genotype": searched.genotype if searched else None,
        "best_candidate_reward": best_candidate.reward if best_candidate else None,
        "candidate_rewards": [t.reward for t in cands],
        "candidate_early_stopped": [bool(t.pruned) for t in cands],
        "stop_reason": outcome.stop_reason,
        "evaluations": outcome.evaluations,
        "cpu_seconds": outcome.cpu_seconds,
        "answer": answer,
    }


# --- retrain ----------------------------------------------------------------------------------------
def run_retrains(jobs: list[tuple[str, int, object, dict]]) -> dict[tuple[str, int], dict]:
    """Retrain (Joint, basic, searched, Single per task) for each (preset, seed) as parallel Ray tasks."""
    import ray

    from auxnas.evaluator.retrain import retrain
    from auxnas.search_space import Genotype

    remote = ray.remote(num_cpus=1)(retrain)
    refs = {
        (preset, seed): remote.remote(cfg, {"searched": Genotype.from_json(geno)}, [seed], single_task=True)
        for preset, seed, cfg, geno in jobs
    }
    out = {}
    for key, ref in refs.items():
        report = ray.get(ref)
        out[key] = {
            row.name: {
                "reward": row.results[0].reward if row.results[0].ok else None,
                "metrics": row.results[0].metrics,
                "error": row.results[0].error,
                "train_params": row.results[0].main_params + row.results[0].aux_params,
                "inference_params": row.results[0].main_params,
                "seconds": row.results[0].train_seconds,
            }
            for row in report.rows
        }
        log(
            f"  retrain {key[0]} seed {key[1]}: "
            + ", ".join(f"{k} {v['reward']}" for k, v in out[key].items())
        )
    return out


# --- best-so-far curves -----------------------------------------------------------------------------
def best_so_far(run: dict) -> list[float]:
    """Best meta-val reward among the first k candidates, k = 1..budget, in decision order.

    Early-stopped candidates never count (their reward is a partial one); before the first
    candidate that finished, the curve holds the search's Joint reward (what the user has without
    an auxiliary module)."""
    rewards = run["candidate_rewards"]
    stopped = run.get("candidate_early_stopped") or [False] * len(rewards)
    best, curve = None, []
    for r, es in zip(rewards, stopped, strict=True):
        if r is not None and not es:
            best = r if best is None else max(best, r)
        curve.append(best if best is not None else run["joint"])
    return curve


def curve_area(run: dict) -> float:
    """Area under the best-so-far curve, divided by the budget (a mean reward: higher is better,
    and it rewards finding good candidates early)."""
    curve = best_so_far(run)
    return statistics.fmean(curve) if curve else float("nan")


def plot_best_so_far(preset: str, runs: dict, seeds: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for strategy, colour in zip(STRATEGIES, ("tab:blue", "tab:orange"), strict=True):
        curves = [best_so_far(runs[f"{strategy}-{s}"]) for s in seeds if f"{strategy}-{s}" in runs]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        arr = np.array([c[:n] for c in curves])
        k = np.arange(1, n + 1)
        mean, std = arr.mean(axis=0), arr.std(axis=0, ddof=1) if len(arr) > 1 else np.zeros(n)
        ax.plot(k, mean, color=colour, label=f"{strategy} (mean of {len(arr)} seeds)")
        ax.fill_between(k, mean - std, mean + std, color=colour, alpha=0.2)
    joints = [runs[f"ppo-{s}"]["joint"] for s in seeds if f"ppo-{s}" in runs]
    if joints:
        ax.axhline(statistics.fmean(joints), color="grey", ls="--", lw=1, label="Joint (mean)")
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel("best meta-val reward so far")
    ax.set_title(f"{preset}: PPO vs random (band: ±1 std over seeds)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- report -----------------------------------------------------------------------------------------
def ms(values: list[float | None], digits: int = 4) -> str:
    """mean ± sample std (n/a when nothing is there)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):.{digits}f} ± {std:.{digits}f}"


BEGIN, END = "<!-- study:begin (written by bench/study.py) -->", "<!-- study:end -->"


def write_results(path: Path, text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the generated section of `path` between `begin` and `end` (or append it, or create
    the file); hand-written text around it stays."""
    block = f"{begin}\n{text}\n{end}\n"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        head, _, rest = old.partition(begin)
        _, _, tail = rest.partition(end)
        new = head + block + tail.lstrip("\n")
    else:
        new = (old + "\n" if old else "# Results\n\n") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores visible (shared with other jobs), {platform.system()}, "
        f"Python {platform.python_version()}, torch {torch.__version__} on the CPU"
    )


def header_lines(state: dict) -> list[str]:
    a = state["args"]
    lines = [
        f"Command: `{state.get('command', '')}`",
        "",
        f"Ran {state.get('started_utc')} to {state.get('finished_utc')} "
        f"({state.get('wall_seconds', 0) / 60:.1f} min of study time) on {machine_line()}; "
        f"1-minute load average {state['load_at_start'][0]:.1f} at the start and "
        f"{state['load_at_end'][0]:.1f} at the end.",
        "",
        f"Study settings: seeds {a['seeds']}; per search a budget of {a['budget']} candidates, "
        f"{a['parallel']} evaluated in parallel, PPO update every {a['per_update']} episodes, "
        f"early stop {a['early_stop']}; retrain steps: {a['retrain_steps'] or 'as the preset'}.",
        "",
        "Presets as used (search-phase proxy training; data, model and train sections):",
        "",
    ]
    for preset in a["presets"]:
        c = load_preset(preset)
        lines.append(
            f"- `{preset}`: tasks {c.tasks}; data {c.data.model_dump(exclude={'root'})}; "
            f"model {c.model.model_dump(exclude={'pretrained'})}; train {c.train.model_dump()}"
        )
    lines.append("")
    return lines


def summary_lines(state: dict) -> list[str]:
    args = state["args"]
    lines = []
    for preset in args["presets"]:
        runs = state["searches"].get(preset, {})
        lines.append(f"## {preset}")
        lines.append("")
        lines.append(
            f"Search: budget {args['budget']} candidates per search, {args['parallel']} in parallel, "
            f"PPO update every {args['per_update']} episodes; seeds {args['seeds']}."
        )
        lines.append("")
        lines.append(
            "| strategy | best reward (meta-val) | best candidate | area under best-so-far | joint | basic "
            "| candidates early-stopped | wall s |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for strategy in STRATEGIES:
            rs = [runs.get(f"{strategy}-{s}") for s in args["seeds"]]
            rs = [r for r in rs if r]
            if not rs:
                continue
            lines.append(
                f"| {strategy} (n={len(rs)}) | {ms([r['best_reward'] for r in rs])} "
                f"| {ms([r['best_candidate_reward'] for r in rs])} | {ms([curve_area(r) for r in rs])} "
                f"| {ms([r['joint'] for r in rs])} "
                f"| {ms([r['basic'] for r in rs])} | {ms([float(r['early_stopped']) for r in rs], 1)} "
                f"| {ms([r['wall_seconds'] for r in rs], 0)} |"
            )
        lines.append("")
        lines += separation_lines(runs, args["seeds"])
        paired = [
            curve_area(runs[f"ppo-{s}"]) - curve_area(runs[f"random-{s}"])
            for s in args["seeds"]
            if f"ppo-{s}" in runs and f"random-{s}" in runs
        ]
        if paired:
            lines.append(
                f"Area under the best-so-far curve, PPO minus random, paired by seed: {ms(paired)} "
                f"(n={len(paired)})."
            )
            lines.append("")
        if plot := state.get("plots", {}).get(preset):
            lines += [f"![{preset}: best reward so far, PPO vs random]({plot})", ""]
        lines.append("Per seed (best reward found, PPO / random):")
        lines.append("")
        for s in args["seeds"]:
            p, r = runs.get(f"ppo-{s}"), runs.get(f"random-{s}")
            if p and r:
                lines.append(
                    f"- seed {s}: ppo {p['best_reward']:.4f} ({p['best_kind']}), "
                    f"random {r['best_reward']:.4f} ({r['best_kind']}); joint {p['joint']:.4f}, basic {p['basic']:.4f}"
                )
        lines.append("")
        rt = state["retrains"].get(preset, {})
        if rt:
            seeds = sorted(int(s) for s in rt)
            lines.append(
                f"Retrain ({args['retrain_steps'] or 'preset'} steps on the whole training split, "
                f"scored on the test split; `searched` = the best genotype of the PPO search with the "
                f"same seed; seeds {seeds}):"
            )
            lines.append("")
            any_row = next(iter(rt.values()))
            tasks = list(next(v for v in any_row.values() if v["metrics"])["metrics"])
            head = ["model", "reward"] + [f"{t} {m}" for t in tasks for m in _score_metric_names(any_row, t)]
            head += ["params train", "params inference"]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            singles = sorted({name for v in rt.values() for name in v if name.startswith("single:")})
            for row in (*RETRAIN_ROWS, *singles):
                per_seed = [rt[str(s)][row] for s in seeds if row in rt[str(s)]]
                if not per_seed:
                    continue
                cells = [row, ms([x["reward"] for x in per_seed])]
                for t in tasks:
                    for m in _score_metric_names(any_row, t):
                        cells.append(ms([x["metrics"].get(t, {}).get(m) for x in per_seed]))
                cells.append(", ".join(sorted({f"{x['train_params']:,}" for x in per_seed})))
                cells.append(", ".join(sorted({f"{x['inference_params']:,}" for x in per_seed})))
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            for s in seeds:
                lines.append(
                    f"- seed {s}: "
                    + ", ".join(
                        f"{row} {rt[str(s)][row]['reward']:.4f}" for row in RETRAIN_ROWS if row in rt[str(s)]
                    )
                )
            lines.append("")
    return lines


def separation_lines(runs: dict, seeds: list[int]) -> list[str]:
    """Does the reward tell architectures apart? Spread of the candidates' rewards within one
    search (same seed: only the architecture differs) against the spread of `basic` over seeds."""
    arch = [
        statistics.stdev(rw)
        for r in runs.values()
        if len(rw := [x for x in r["candidate_rewards"] if x is not None]) > 1
    ]
    basic = [runs[f"ppo-{s}"]["basic"] for s in seeds if f"ppo-{s}" in runs]
    if not arch or len(basic) < 2:
        return []
    a, b = statistics.fmean(arch), statistics.stdev(basic)
    ratio = f"{a / b:.2f}" if b > 0 else "inf"
    return [
        f"Separation: std of candidate rewards within a search (architecture only, mean over "
        f"{len(arch)} searches) {a:.4f}; std of `basic` over seeds {b:.4f}; ratio {ratio}.",
        "",
    ]


def _score_metric_names(row_by_name: dict, task: str) -> list[str]:
    """The task's score metric (the one in the reward) and, for segmentation, pixel accuracy."""
    from auxnas.evaluator.tasks import _KINDS

    names = [_KINDS[task].score_metric] if task in _KINDS else []
    recorded = next((v["metrics"][task] for v in row_by_name.values() if v["metrics"].get(task)), {})
    names = [m for m in names if m in recorded] or list(recorded)[:1]
    return names


# --- main -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["synthetic-tiny", "synthetic-hard"])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    ap.add_argument("--budget", type=int, default=8, help="candidates per search (both strategies)")
    ap.add_argument("--parallel", type=int, default=2, help="parallel_trials of every search")
    ap.add_argument("--per-update", type=int, default=4, help="PPO episodes per update")
    ap.add_argument(
        "--retrain-steps", type=int, default=None, help="train.steps of the retrain (default: preset)"
    )
    ap.add_argument(
        "--state",
        type=Path,
        default=Path(tempfile.gettempdir()) / "auxnas-study-state.json",
        help="finished runs, so an interrupted study resumes",
    )
    ap.add_argument(
        "--img-dir",
        type=Path,
        default=ROOT / "docs" / "img",
        help="plots of the first PPO search this run starts",
    )
    ap.add_argument(
        "--protocol",
        choices=("one-seed", "answer"),
        default="one-seed",
        help="one-seed: every candidate at one training seed, the best reward retrained; answer: the "
        "preset's racing and confirmation, the answer's module retrained",
    )
    ap.add_argument(
        "--early-stop",
        choices=("preset", "on", "off"),
        default="off",
        help="early stop of candidates (off: every candidate trains its full proxy schedule)",
    )
    ap.add_argument(
        "--results",
        type=Path,
        default=ROOT / "docs" / "results.md",
        help="Markdown file whose generated section (between the study markers) is rewritten",
    )
    args = ap.parse_args()
    check_presets(args.presets)

    seeds = list(range(args.seeds))
    settings = {
        "presets": args.presets,
        "seeds": seeds,
        "budget": args.budget,
        "parallel": args.parallel,
        "per_update": args.per_update,
        "retrain_steps": args.retrain_steps,
        "early_stop": args.early_stop,
        "protocol": args.protocol,
    }
    state = {"args": settings, "searches": {}, "retrains": {}}
    if args.state.exists():
        old = json.loads(args.state.read_text())
        same = {k: v for k, v in old.get("args", {}).items() if k != "presets"}
        if same == {k: v for k, v in settings.items() if k != "presets"}:
            state = {**old, "args": settings}  # finished presets are kept; new ones are added
            log(f"resuming from {args.state}")

    def save() -> None:
        args.state.write_text(json.dumps(state, indent=1))

    import ray

    cache = Path(tempfile.mkdtemp(prefix="auxnas-study-cache-"))
    atexit.register(shutil.rmtree, cache, True)
    os.environ["AUXNAS_STUDY_CACHE"] = str(cache)
    ray.init(include_dashboard=False, log_to_driver=False)  # local workers inherit the cache variable
    log(
        f"study: {settings}; machine {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}; "
        f"load average {os.getloadavg()}"
    )
    started = time.monotonic()
    state.setdefault("started_utc", f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    state.setdefault("load_at_start", list(os.getloadavg()))
    state["command"] = "RAY_AUTH_MODE=disabled .venv/bin/python " + " ".join(
        [
            str(Path(sys.argv[0]).resolve().relative_to(ROOT))
            if Path(sys.argv[0]).is_absolute()
            else sys.argv[0]
        ]
        + sys.argv[1:]
    )
    search_id = 0
    plotted = False  # the first PPO search this invocation runs draws the plots
    for preset in args.presets:
        runs = state["searches"].setdefault(preset, {})
        for seed in seeds:
            for strategy in STRATEGIES:
                search_id += 1
                key = f"{strategy}-{seed}"
                if key in runs:
                    continue
                cfg = preset_config(
                    preset,
                    seed,
                    strategy,
                    args.budget,
                    args.parallel,
                    args.per_update,
                    args.early_stop,
                    args.protocol,
                )
                img = args.img_dir if (not plotted and strategy == "ppo") else None
                log(f"search {cfg.name} ...")
                runs[key] = run_search(cfg, search_id, img)
                plotted = plotted or img is not None
                r = runs[key]
                log(
                    f"  {cfg.name}: best {r['best_reward']:.4f} ({r['best_kind']}), joint {r['joint']:.4f}, "
                    f"basic {r['basic']:.4f}, {r['evaluated']} evaluated, {r['cached']} cached, "
                    f"{r['failed']} failed, {r['early_stopped']} early-stopped, {r['wall_seconds']:.0f} s"
                )
                save()
            plotted = True
        plot = args.img_dir / f"study-{Path(preset).stem}-best-so-far.png"
        plot_best_so_far(preset, runs, seeds, plot)
        state.setdefault("plots", {})[preset] = os.path.relpath(plot, args.results.parent)
        todo = []
        done = state["retrains"].setdefault(preset, {})
        for seed in seeds:
            if str(seed) in done:
                continue
            cfg = preset_config(
                preset,
                seed,
                "ppo",
                args.budget,
                args.parallel,
                args.per_update,
                args.early_stop,
                args.protocol,
            ).eval_config()
            if args.retrain_steps:
                cfg.train.steps = args.retrain_steps
            best = runs[f"ppo-{seed}"]["best_genotype"]
            todo.append((preset, seed, cfg, best))
        if todo:
            log(f"retrain {preset} seeds {[t[1] for t in todo]} ...")
            for (_preset, s), rows in run_retrains(todo).items():
                done[str(s)] = rows
            save()
    state["wall_seconds"] = state.get("wall_seconds", 0.0) + time.monotonic() - started
    state["finished_utc"] = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    state["load_at_end"] = list(os.getloadavg())
    save()
    log(f"study finished in {time.monotonic() - started:.0f} s")
    text = "\n".join(header_lines(state) + summary_lines(state))
    print(text)
    write_results(args.results, text)
    log(f"wrote {args.results}")


if __name__ == "__main__":
    main()
