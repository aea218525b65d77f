"""`auxnas search CONFIG`: run a search here, with a live progress bar and a final table."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli.main import fail

if TYPE_CHECKING:
    from controller.config import SearchConfig
    from controller.driver import SearchOutcome
    from controller.storage import SearchStorage, TrialRecord

RUNS_DIR = Path("runs")


def make_storage(config: SearchConfig, checkpoint_dir: Path, resume: bool) -> tuple[SearchStorage, int]:
    """Where this command records the search: (storage, search id) in the service's database."""
    from cli.service import storage_for_cli_search

    return storage_for_cli_search(config, checkpoint_dir, resume)


def run_dir_for(runs_dir: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "search"
    return runs_dir / safe


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        config_file: Path = typer.Argument(..., metavar="CONFIG", help="Search config (YAML preset)."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write the best genotype JSON here."),
        resume: bool = typer.Option(
            False, "--resume", help="Continue the search of runs/<name>/ after a kill."
        ),
        strategy: str | None = typer.Option(
            None, "--strategy", help="ppo or random (overrides search.strategy)."
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Discard a previous search in runs/<name>/."
        ),
        runs_dir: Path = typer.Option(RUNS_DIR, "--runs-dir", help="Where runs/<name>/ goes."),
        evaluate_fn: str | None = typer.Option(
            None, "--evaluate-fn", hidden=True, help="module:function replacing the evaluator (tests)."
        ),
    ) -> None:
        """Search auxiliary modules: Joint and basic first, then the controller until the budget is spent."""
        from controller.config import load_search_config
        from controller.driver import space_for
        from evaluator.config import ConfigError
        from search_space import SpaceError

        try:
            config = load_search_config(config_file)
        except ConfigError as e:
            fail(str(e))
        if strategy is not None:
            if strategy not in ("ppo", "random"):
                fail(f"--strategy: must be 'ppo' or 'random', got {strategy!r}")
            config = config.model_copy(
                update={"search": config.search.model_copy(update={"strategy": strategy})}
            )
        try:
            space_for(config)
        except SpaceError as e:
            fail(f"{config_file}: {e}")
        if resume and overwrite:
            fail("--resume and --overwrite exclude each other")
        fn = _load_evaluate_fn(evaluate_fn) if evaluate_fn else None

        run_dir = run_dir_for(runs_dir, config.name)
        checkpoint_dir = run_dir / "checkpoint"
        has_previous = (checkpoint_dir / "state.json").exists() or (checkpoint_dir / "journal.jsonl").exists()
        if resume and not has_previous:
            fail(f"--resume: no previous search of {config.name!r} in {run_dir}")
        if has_previous and not resume and not overwrite:
            fail(
                f"{run_dir} holds a previous search of {config.name!r}: pass --resume to continue it or --overwrite"
            )
        if output is not None and not output.parent.is_dir():
            fail(f"--output: directory {output.parent} does not exist")

        outcome = _run(config, checkpoint_dir, resume, fn)
        _print_summary(config, outcome)
        if outcome.best is not None:
            from controller.export import best_genotype_json

            doc = best_genotype_json(outcome.trials, {"id": 1, "name": config.name})
            text = json.dumps(doc, indent=2) + "\n"
            (run_dir / "best.json").write_text(text)
            if output is not None:
                output.write_text(text)
                typer.echo(f"best genotype written to {output}")
        if config.search.strategy == "ppo" and outcome.iterations:
            _export_greedy(config, checkpoint_dir, run_dir / "greedy.json")
        if outcome.status != "succeeded":
            typer.echo(f"error: search {outcome.status}: {outcome.error or 'cancelled'}", err=True)
            raise typer.Exit(1)


def _export_greedy(config: SearchConfig, checkpoint_dir: Path, path: Path) -> None:
    """The trained policy's argmax genotype (not evaluated: a hint of where the search went)."""
    from controller.export import greedy_genotype

    try:
        genotype = greedy_genotype(config, checkpoint_dir)
    except Exception as e:  # the search itself succeeded; say why this extra is missing
        typer.echo(f"note: no greedy genotype ({type(e).__name__}: {e})", err=True)
        return
    path.write_text(json.dumps(genotype.to_json(), indent=2) + "\n")
    typer.echo(f"policy's greedy genotype ({genotype.canonical_hash()}) written to {path}")


def _load_evaluate_fn(spec: str) -> Any:
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        fail(f"--evaluate-fn: cannot import {spec!r} (module:function)")


def _run(config: SearchConfig, checkpoint_dir: Path, resume: bool, evaluate_fn: Any) -> SearchOutcome:
    import logging

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from controller.driver import SearchDriver, SearchProgress
    from worker.ray_runtime import RayStartError, ensure_ray

    try:
        ensure_ray()
    except RayStartError as e:
        fail(str(e))
    for name in ("ray", "ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)

    storage, search_id = make_storage(config, checkpoint_dir, resume)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cached {task.fields[cached]}  failed {task.fields[failed]}  best {task.fields[best]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task("baselines", total=config.search.budget, cached=0, failed=0, best="-")

    def on_progress(p: SearchProgress) -> None:
        best = f"{p.best_reward:.4f}" if p.best_reward is not None else "-"
        label = {"baselines": "baselines", "search": f"search it {p.iteration}", "done": "done"}[p.phase]
        progress.update(
            task, completed=p.evaluated, description=label, cached=p.cached, failed=p.failed, best=best
        )

    driver = SearchDriver(
        config, storage, search_id, checkpoint_dir, evaluate_fn=evaluate_fn, on_progress=on_progress
    )
    what = "resuming" if resume else "starting"
    console.print(
        f"{what} search {config.name!r}: strategy {config.search.strategy}, budget {config.search.budget}, "
        f"{config.search.parallel_trials} parallel, checkpoint {checkpoint_dir}"
    )
    try:
        with progress:
            return driver.run(resume=resume)
    except KeyboardInterrupt:
        console.print(f"interrupted: continue with `auxnas search {_config_hint(config)} --resume`")
        raise typer.Exit(130) from None


def _config_hint(config: SearchConfig) -> str:
    import sys

    args = [a for a in sys.argv[1:] if a.endswith((".yaml", ".yml"))]
    return args[0] if args else "CONFIG"


def _score_name(values: dict[str, float]) -> str | None:
    """The metric a task is scored by (the built-in tasks' `score_metric`), else its first one."""
    from evaluator.tasks import Task

    scores = {cls.score_metric for cls in Task.__subclasses__()}
    return next((n for n in values if n in scores), next(iter(values), None))


def _print_summary(config: SearchConfig, outcome: SearchOutcome) -> None:
    from rich.console import Console
    from rich.table import Table

    from search_space import parse_genotype

    console = Console()
    rows = (("Joint", outcome.joint), ("basic", outcome.basic), ("best found", outcome.best))
    # one column per task: the metric it is scored by (the reward is their geometric mean)
    scored = [t for _, t in rows if t is not None and t.reward is not None]
    task_metrics = {
        task: name
        for task in config.tasks
        for t in scored[:1]
        if (name := _score_name(t.metrics.get(task, {})))
    }
    joint_reward = outcome.joint.reward if outcome.joint else None
    # transposed (one column per trial) so that any number of tasks fits a narrow terminal
    table = Table(title=f"search {config.name!r}: {outcome.status}")
    table.add_column("")
    for label, _ in rows:
        table.add_column(label, justify="right")

    def cell(trial: TrialRecord | None, what: str) -> str:
        if trial is None:
            return "not run" if what == "reward" else ""
        if what == "trial":
            return f"#{trial.index}"
        if trial.reward is None:
            return f"failed ({(trial.error or {}).get('type', 'error')})" if what == "reward" else ""
        if what == "reward":
            return f"{trial.reward:.4f}"
        if what == "vs Joint":
            return f"{trial.reward - joint_reward:+.4f}" if joint_reward is not None else "-"
        if what == "aux params":
            return f"{trial.aux_params:,}"
        if what == "seconds":
            return f"{trial.seconds:.1f}"
        task, metric = what.split(" ", 1)
        value = trial.metrics.get(task, {}).get(metric)
        return f"{value:.4f}" if value is not None else "-"

    lines = ["trial", "reward", "vs Joint", *(f"{t} {m}" for t, m in task_metrics.items()), "aux params"]
    for what in [*lines, "seconds"]:
        table.add_row(what, *(cell(trial, what) for _, trial in rows))
    console.print(table)
    console.print(
        f"candidates evaluated {outcome.evaluated}/{config.search.budget}, cached {outcome.cached}, "
        f"failed {outcome.failed}, controller iterations {outcome.iterations}, {outcome.elapsed:.0f} s"
        + (f" ({outcome.stop_reason})" if outcome.stop_reason else "")
    )
    if outcome.best is not None and outcome.best.genotype is not None:
        genotype = parse_genotype(outcome.best.genotype)
        console.print(f"best genotype ({genotype.canonical_hash()}, trial {outcome.best.index}):")
        for cell in genotype.cells:
            console.print(
                f"  {cell.task}:{cell.index} = {cell.aggregator}("
                f"{cell.adaptors[0]}({cell.inputs[0]}), {cell.adaptors[1]}({cell.inputs[1]}))"
            )
