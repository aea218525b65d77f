"""`auxnas diagnose CONFIG [--seeds 3] [--json] [-o FILE]`: is there anything for auxiliary
modules to fix on this preset?

Trains, at the preset's own schedule and reward setting (meta-train, scored on meta-val), the
Joint baseline, `basic`, and every task alone (Single), each under `--seeds` replicates; prints
per task Single and Joint (mean +- std of the task's score metric) and the task competition
(Joint minus Single, its std and how many std it is), then `basic` against Joint
(`controller.diagnosis`). Replicates never share a training seed (`evaluator.seeds`). The
evaluations run as Ray tasks, `search.parallel_trials` at once.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import typer

from auxnas.cli.main import fail, start_ray


def register(app: typer.Typer) -> None:
    app.command()(diagnose)


def diagnose(
    config_file: Path = typer.Argument(..., metavar="CONFIG", help="Preset YAML (the search config schema)."),
    seeds: int = typer.Option(3, "--seeds", help="Replicates of every strategy (>= 2; 3 for the figure)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON instead of a table."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the JSON to this file."),
) -> None:
    """Single-task vs Joint per task (task competition) and basic vs Joint, over several seeds."""
    from auxnas.controller.config import load_search_config
    from auxnas.evaluator.config import ConfigError

    if seeds < 2:
        fail(f"--seeds: need at least 2 seeds for a std (3 for the task-competition figure), got {seeds}")
    if seeds > 100:
        fail(f"--seeds: at most 100, got {seeds}")
    try:
        search_config = load_search_config(config_file)
    except ConfigError as e:
        fail(str(e))
    cfg = search_config.eval_config()
    if len(cfg.tasks) < 2:
        fail(f"tasks: diagnose compares Joint with Single and needs at least 2 tasks, got {cfg.tasks}")
    if output is not None and output.is_dir():
        fail(f"--output: {output} is a directory")

    from auxnas.evaluator.data import load_dataset
    from auxnas.evaluator.seeds import replicate_seeds
    from auxnas.evaluator.tasks import make_task
    from auxnas.search_space import SpaceError

    try:
        space = cfg.search_space()
        dataset = load_dataset(cfg.data, cfg.tasks)
    except (SpaceError, ValueError) as e:
        fail(f"config: {e}")
    score_metric = {t: make_task(info).score_metric for t, info in dataset.tasks.items()}

    base_seeds = replicate_seeds(cfg, seeds)
    jobs = diagnosis_jobs(cfg, space, seeds)
    results = _run_all(jobs, search_config.search.parallel_trials, cfg.resources)

    failed = [(name, seed, r) for (name, seed, _, _), r in zip(jobs, results, strict=True) if not r.ok]
    if failed:
        name, seed, r = failed[0]
        fail(f"{name} (seed {seed}) failed: {r.error['type']}: {r.error['message']}", code=1)
    doc = _document(str(config_file), search_config.name, cfg, base_seeds, score_metric, jobs, results)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(doc, indent=2) + "\n")
    if as_json:  # stdout is the document alone (its verdict is in it); the line goes to stderr
        typer.echo(json.dumps(doc, indent=2))
        typer.echo(doc["diagnosis"]["verdict"], err=True)
    else:
        _print_table(doc)
        typer.echo(doc["diagnosis"]["verdict"])


def diagnosis_jobs(cfg: Any, space: Any, replicates: int) -> list[tuple[str, int, Any, Any]]:
    """(name, seed, config, genotype) of Joint, basic and each task alone, per replicate."""
    from auxnas.evaluator.seeds import replicate_config
    from auxnas.search_space import basic_genotype

    plan: list[tuple[str, Any, Any]] = [("joint", cfg, None), ("basic", cfg, basic_genotype(space))]
    plan += [(f"single:{t}", cfg.model_copy(update={"tasks": [t]}), None) for t in cfg.tasks]
    jobs = []
    for name, c, g in plan:
        for r in range(replicates):
            config = replicate_config(c, r)
            jobs.append((name, config.seed, config, g))
    return jobs


def _run_all(jobs: list, parallel: int, resources: Any) -> list:
    """Every (name, seed, config, genotype) job as a Ray task, at most `parallel` at once."""

    import ray

    from auxnas.evaluator.remote import check_resources, get_result, submit

    start_ray()
    try:
        check_resources(resources)
    except ValueError as e:
        fail(str(e))
    results: list = [None] * len(jobs)
    running: dict = {}
    queue = list(enumerate(jobs))
    done = 0
    while queue or running:
        while queue and len(running) < parallel:
            index, (_, _, config, genotype) = queue.pop(0)
            running[submit(config, genotype)] = index
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            index = running.pop(ref)
            results[index] = get_result(ref)
            done += 1
            name, seed = jobs[index][:2]
            r = results[index]
            outcome = f"reward {r.reward:.4f}" if r.ok else f"failed: {r.error['type']}"
            print(f"[{done}/{len(jobs)}] {name} seed {seed}: {outcome}", file=sys.stderr, flush=True)
    return results


def _document(path, name, cfg, base_seeds, score_metric, jobs, results) -> dict:
    from auxnas.controller.diagnosis import Runs, diagnose

    rows: dict[str, list] = {}
    for (row, seed, _, _), r in zip(jobs, results, strict=True):
        rows.setdefault(row, []).append((seed, r))

    def runs(row: str) -> Runs:
        ok = [r for _, r in rows[row]]
        return Runs(
            rewards=[r.reward for r in ok],
            scores={t: [r.metrics[t][m] for r in ok] for t, m in score_metric.items()},
        )

    single = {t: [r.metrics[t][score_metric[t]] for _, r in rows[f"single:{t}"]] for t in cfg.tasks}
    figures = diagnose(runs("joint"), runs("basic"), single)
    return {
        "config": name,
        "config_file": path,
        "seeds": base_seeds,
        "setting": {
            "split": "meta-train / meta-val (the search's reward)",
            "steps": cfg.train.steps,
            "reward_seeds": cfg.train.reward_seeds,
            "reward_evals": cfg.train.reward_evals,
            "pretrained": cfg.model.pretrained,
            "encoder": cfg.model.encoder,
            "width_mult": cfg.model.width_mult,
        },
        "score_metric": score_metric,
        "diagnosis": figures,
        "cpu_seconds_per_run": {
            row: statistics.median(r.cpu_seconds for _, r in items) for row, items in rows.items()
        },
        "runs": {
            row: [
                {"seed": seed, "reward": r.reward, "metrics": r.metrics, "cpu_seconds": r.cpu_seconds}
                for seed, r in items
            ]
            for row, items in rows.items()
        },
    }


def _print_table(doc: dict) -> None:
    from auxnas.cli.tables import console as terminal
    from auxnas.cli.tables import figure_column, new_table, text_column
    from auxnas.cli.tables import mean_std as ms

    def z(x: float | None) -> str:
        return "-" if x is None else f"{x:+.1f}"

    d = doc["diagnosis"]
    console = terminal()
    scores = new_table(
        f"diagnosis of {doc['config']!r}: {doc['setting']['steps']} steps, seeds {doc['seeds']}, meta-val"
    )
    text_column(scores, "task (metric)")
    for col in ("Single", "Joint", "basic"):
        figure_column(scores, col)
    competition = new_table("task competition: Joint - Single")
    text_column(competition, "task")
    for col in ("Joint - Single", "std", "in std"):
        figure_column(competition, col)
    for t, e in d["tasks"].items():
        c = e["competition"]
        scores.add_row(f"{t} ({doc['score_metric'][t]})", ms(e["single"]), ms(e["joint"]), ms(e["basic"]))
        competition.add_row(t, f"{c['diff']:+.4f}", f"{c['std']:.4f}", z(c["in_std"]))
    console.print(scores)
    console.print(competition)
    reward = d["reward"]
    gain = reward["basic_gain"]
    console.print(
        f"reward: Joint {ms(reward['joint'])}, basic {ms(reward['basic'])}; basic - Joint "
        f"{gain['diff']:+.4f} (std {gain['std']:.4f}, {z(gain['in_std'])} std; t {z(gain['t'])})"
    )
    cpu = doc["cpu_seconds_per_run"]
    console.print("CPU seconds per run (median): " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
