"""`auxnas evaluate CONFIG [--genotype FILE|basic|none] [--json]`: train and score one candidate."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from auxnas.cli.main import fail


def register(app: typer.Typer) -> None:
    app.command()(evaluate)


def evaluate(
    config: Path = typer.Argument(
        ..., help="Preset YAML (the search config schema; its search sections are ignored)."
    ),
    genotype: str = typer.Option(
        "basic",
        "--genotype",
        "-g",
        help="Genotype JSON file, `basic` (the paper's structure) or `none` (Joint).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of a table."),
    seed: int | None = typer.Option(
        None,
        "--seed",
        help="Base seed of this replicate (overrides the config's seed); with train.reward_seeds k "
        "the candidate trains under seeds N..N+k-1.",
    ),
) -> None:
    """Train one candidate on meta-train and score its main network on meta-val."""
    from auxnas.controller.config import load_search_config
    from auxnas.evaluator.config import ConfigError

    try:
        cfg = load_search_config(config).eval_config()
    except ConfigError as e:
        fail(str(e))
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": seed})
    geno, label = _genotype(genotype, cfg)

    from auxnas.evaluator.evaluate import (
        evaluate as run_evaluation,  # torch: only once the arguments are known
    )

    if not as_json:
        k = cfg.train.reward_seeds
        seeds = f"seed {cfg.seed}" if k == 1 else f"seeds {cfg.seed}..{cfg.seed + k - 1}"
        typer.echo(f"evaluating {label} on {cfg.data.name} ({cfg.train.steps} steps, {seeds}) ...", err=True)
    try:
        result = run_evaluation(cfg, geno)
    except ValueError as e:  # config / genotype / dataset mistakes name their field
        fail(str(e))
    if as_json:
        doc = {"config": str(config), "genotype": label, **result.to_dict()}
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_table(result, cfg, label)
    if not result.ok:
        raise typer.Exit(1)


def _genotype(choice: str, cfg):
    from auxnas.search_space import GenotypeError, SpaceError, basic_genotype, load_genotype_file

    if choice == "none":
        return None, "Joint baseline (no auxiliary modules)"
    if choice == "basic":
        try:
            space = cfg.search_space()
        except SpaceError as e:
            fail(f"config: {e}")
        return basic_genotype(space), "basic"
    path = Path(choice)
    if not path.exists():
        fail(f"--genotype: {choice!r} is neither a file nor 'basic' or 'none'")
    try:
        geno, _ = load_genotype_file(path)
    except GenotypeError as e:
        fail(f"--genotype: {e}" if not str(e).startswith(str(path)) else str(e))
    return geno, f"{path} ({geno.canonical_hash()})"


def _print_table(result, cfg, label: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from auxnas.evaluator.data import load_dataset
    from auxnas.evaluator.tasks import make_task

    console = Console()
    if not result.ok:
        console.print(f"[bold red]failed[/]: {result.error['type']}: {result.error['message']}")
        return
    dataset = load_dataset(cfg.data, cfg.tasks)  # cached: only for the tasks' score metrics
    score_metric = {name: make_task(info).score_metric for name, info in dataset.tasks.items()}
    table = Table(title=f"{label}: main network on meta-val")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for task, metrics in result.metrics.items():
        for i, (name, value) in enumerate(metrics.items()):
            star = " *" if name == score_metric.get(task) else ""
            table.add_row(task if i == 0 else "", name + star, f"{value:.4f}")
        table.add_section()
    console.print(table)
    stopped = " (stopped early)" if result.early_stopped else ""
    if len(result.per_seed) > 1 or cfg.train.reward_seeds > 1:
        per_seed = ", ".join(f"seed {s['seed']} {s['reward']:.4f}" for s in result.per_seed)
        console.print(f"per-seed rewards: {per_seed} (metrics above: seed means)")
    warm = [s["warm_start"] for s in result.per_seed if "warm_start" in s]
    if warm:
        built = sum(w == "built" for w in warm)
        console.print(
            f"warm start (model.pretrained: auto): {built} built, {len(warm) - built} loaded from cache"
        )
    console.print(f"reward (geometric mean of the * metrics): [bold]{result.reward:.4f}[/]{stopped}")
    console.print(
        f"parameters: main {result.main_params:,}, auxiliary {result.aux_params:,} (training only); "
        f"{result.steps} steps, train {result.train_seconds:.1f} s, eval {result.eval_seconds:.1f} s on {result.device}"
    )
