"""`auxnas search CONFIG`: run a search here, with a live progress bar and a final table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand

from auxnas.cli.evaluators import EVALUATOR_HELP, check_surrogate, load_evaluator
from auxnas.cli.main import fail
from auxnas.cli.search_run import RESUME_LATEST, RUNS_DIR_OPTION
from auxnas.controller.status import SearchStatus

if TYPE_CHECKING:
    from auxnas.controller.config import SearchConfig
    from auxnas.controller.driver import SearchOutcome
    from auxnas.controller.storage import TrialRecord


class _ResumeTakesAnOptionalId(TyperCommand):
    """`--resume` alone means the latest search of the config (Typer has no optional values)."""

    def parse_args(self, ctx, args):  # noqa: ANN001, ANN201
        out = []
        for i, arg in enumerate(args):
            out.append(arg)
            if arg == "--resume" and (i + 1 == len(args) or not args[i + 1].isdigit()):
                out.append(RESUME_LATEST)
        return super().parse_args(ctx, out)


def register(app: typer.Typer) -> None:
    app.command(cls=_ResumeTakesAnOptionalId)(search)


def search(
    config_file: Path = typer.Argument(..., metavar="CONFIG", help="Search config (YAML preset)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the answer's genotype JSON (version 2) here."
    ),
    resume: str | None = typer.Option(
        None,
        "--resume",
        metavar="[ID]",
        help="Continue search ID (default: the latest `auxnas search` of this config's name).",
    ),
    strategy: str | None = typer.Option(
        None, "--strategy", help="ppo, random or evolution (overrides search.strategy)."
    ),
    runs_dir: Path | None = RUNS_DIR_OPTION,
    lease: float = typer.Option(
        30.0, "--lease", min=2.0, help="Seconds the search stays claimed after this process dies."
    ),
    evaluator: str = typer.Option("train", "--evaluator", help=EVALUATOR_HELP, metavar="NAME"),
) -> None:
    """Search auxiliary modules: Joint and basic first, then the controller with racing over
    training seeds until the budget is spent, then confirmation on fresh seeds; ends with the answer."""
    from auxnas.cli.database import open_storage
    from auxnas.cli.search_run import resume_target, run_search

    config = _load_config(config_file, strategy)
    fn = load_evaluator(evaluator)
    if evaluator == "surrogate":
        check_surrogate()
    if output is not None and not output.parent.is_dir():
        fail(f"--output: directory {output.parent} does not exist")

    storage = open_storage()
    resume_id = resume_target(storage, config, resume) if resume is not None else None
    outcome, run_dir = run_search(config, storage, resume_id, runs_dir, lease, fn)
    _print_summary(config, outcome)
    _write_genotypes(config, outcome, run_dir, output)
    if outcome.status != SearchStatus.SUCCEEDED:
        typer.echo(f"error: search {outcome.status}: {outcome.error or 'cancelled'}", err=True)
        raise typer.Exit(1)


def _load_config(config_file: Path, strategy: str | None) -> SearchConfig:
    """The config, with `--strategy` applied; exit 2 with one line when it cannot be searched."""
    from auxnas.controller.config import load_search_config
    from auxnas.evaluator.config import ConfigError
    from auxnas.search_space import SpaceError

    try:
        config = load_search_config(config_file)
    except ConfigError as e:
        fail(str(e))
    if strategy is not None:
        from auxnas.controller.strategies import STRATEGIES

        if strategy not in STRATEGIES:
            fail(f"--strategy: must be one of {list(STRATEGIES)}, got {strategy!r}")
        config = config.model_copy(update={"search": config.search.model_copy(update={"strategy": strategy})})
    try:
        config.search_space()
    except SpaceError as e:
        fail(f"{config_file}: {e}")
    return config


def _write_genotypes(
    config: SearchConfig, outcome: SearchOutcome, run_dir: Path, output: Path | None
) -> None:
    """best.json in the run directory (and `--output`), and the policy's greedy.json for ppo."""
    doc = _answer_document(config, outcome)
    if doc is not None:
        text = json.dumps(doc, indent=2) + "\n"
        (run_dir / "best.json").write_text(text)
        if output is not None:
            output.write_text(text)
            what = "recommended" if doc["recommended"] else "not recommended"
            typer.echo(f"answer's genotype ({what}) written to {output}")
    if config.search.strategy == "ppo" and outcome.iterations:
        _export_greedy(config, run_dir, run_dir / "greedy.json")


def _answer_document(config: SearchConfig, outcome: SearchOutcome) -> dict[str, Any] | None:
    """The genotype document `auxnas export` gives for this search (controller.export)."""
    from auxnas.controller.export import answer_document, answer_trial

    index = answer_trial(outcome.answer)
    trial = next((t for t in outcome.trials if t.index == index), None) if index is not None else None
    if trial is None and not outcome.answer:
        trial = outcome.best
    if trial is None:
        return None
    return answer_document(trial, outcome.search_id, config.name, outcome.answer)


def _export_greedy(config: SearchConfig, checkpoint_dir: Path, path: Path) -> None:
    """The trained policy's argmax genotype (not evaluated: a hint of where the search went)."""
    from auxnas.controller.export import greedy_genotype

    try:
        genotype = greedy_genotype(config, checkpoint_dir)
    except Exception as e:  # the search itself succeeded; say why this extra is missing
        typer.echo(f"note: no greedy genotype ({type(e).__name__}: {e})", err=True)
        return
    path.write_text(json.dumps(genotype.to_json(), indent=2) + "\n")
    typer.echo(f"policy's greedy genotype ({genotype.canonical_hash()}) written to {path}")


def _score_name(values: dict[str, float]) -> str | None:
    """The metric a task is scored by (the built-in tasks' `score_metric`), else its first one."""
    from auxnas.evaluator.tasks import Task

    scores = {cls.score_metric for cls in Task.__subclasses__()}
    return next((n for n in values if n in scores), next(iter(values), None))


def _print_summary(config: SearchConfig, outcome: SearchOutcome) -> None:
    from rich.console import Console

    from auxnas.controller.export import answer_trial

    console = Console()
    index = answer_trial(outcome.answer)
    chosen = next((t for t in outcome.trials if t.index == index), None) if index is not None else None
    label = ("answer" if outcome.answer.get("recommended") else "quoted") if chosen else "best found"
    chosen = chosen or outcome.best
    # the answer's module, or the best single-seed reward when the search has no answer
    console.print(
        _summary_table(config, outcome, (("Joint", outcome.joint), ("basic", outcome.basic), (label, chosen)))
    )
    console.print(
        f"candidates evaluated {outcome.evaluated}/{config.search.budget}, cached {outcome.cached}, "
        f"failed {outcome.failed}, controller iterations {outcome.iterations}; evaluations "
        f"(candidate x seed) {outcome.evaluations}, {outcome.cpu_seconds:.0f} CPU-s, {outcome.elapsed:.0f} s"
        + (f" ({outcome.stop_reason})" if outcome.stop_reason else "")
    )
    if chosen is not None and chosen.genotype is not None:
        _print_genotype(console, label, chosen)
    if outcome.answer:
        console.print(f"answer: {outcome.answer['verdict']}", soft_wrap=True)


def _summary_table(config: SearchConfig, outcome: SearchOutcome, rows: tuple) -> Any:
    """Transposed (one column per trial) so that any number of tasks fits a narrow terminal."""
    from rich.table import Table

    # one line per task: the metric it is scored by (the reward is their geometric mean)
    scored = [t for _, t in rows if t is not None and t.reward is not None]
    task_metrics = {
        task: name
        for task in config.tasks
        for t in scored[:1]
        if (name := _score_name(t.metrics.get(task, {})))
    }
    joint_reward = outcome.joint.reward if outcome.joint else None
    table = Table(title=f"search {config.name!r}: {outcome.status}")
    table.add_column("")
    for label, _ in rows:
        table.add_column(label, justify="right")
    lines = ["trial", "reward", "vs Joint", *(f"{t} {m}" for t, m in task_metrics.items()), "aux params"]
    for what in [*lines, "seconds"]:
        table.add_row(what, *(_cell(trial, what, joint_reward) for _, trial in rows))
    return table


def _cell(trial: TrialRecord | None, what: str, joint_reward: float | None) -> str:
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


def _print_genotype(console: Any, label: str, trial: TrialRecord) -> None:
    from auxnas.search_space import parse_genotype

    genotype = parse_genotype(trial.genotype)
    console.print(f"{label} genotype ({genotype.canonical_hash()}, trial {trial.index}):")
    for cell in genotype.cells:
        console.print(
            f"  {cell.task}:{cell.index} = {cell.aggregator}("
            f"{cell.adaptors[0]}({cell.inputs[0]}), {cell.adaptors[1]}({cell.inputs[1]}))"
        )
