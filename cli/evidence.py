"""`auxnas retrain` and `auxnas plots`: the evidence that a searched genotype helps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from auxnas.cli.database import DB_OPTION, open_storage
from auxnas.cli.main import fail


def register(app: typer.Typer) -> None:
    app.command()(plots)
    app.command()(retrain)


def retrain(
    genotype_file: Path = typer.Argument(..., metavar="GENOTYPE.json", help="Exported genotype JSON."),
    config_file: Path = typer.Argument(..., metavar="CONFIG.yaml", help="Preset (its data/model/train)."),
    seeds: int = typer.Option(
        3, "--seeds", min=1, max=20, help="Replicates of every model, from the config's seed on."
    ),
    single_task: bool = typer.Option(False, "--single-task", help="Also train single-task baselines."),
    output_dir: Path = typer.Option(
        Path("retrain"), "--output-dir", "-o", help="Where JSON and Markdown go."
    ),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Override train.steps (full schedule)."),
) -> None:
    """Train Joint, basic and GENOTYPE on the whole training split and score them on the test split."""
    from auxnas.evaluator.retrain import retrain as run_retrain
    from auxnas.evaluator.seeds import replicate_seeds

    name, eval_config, genotype = _retrain_inputs(genotype_file, config_file, steps)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"--output-dir: cannot create {output_dir} ({e.strerror})")
    replicates = replicate_seeds(eval_config, seeds)  # disjoint training seeds under reward_seeds
    typer.echo(f"retraining on {config_file} at seeds {replicates} ...", err=True)
    report = run_retrain(
        eval_config, {"searched": genotype}, replicates, single_task=single_task, on_result=_progress
    )
    report.config_name = name
    doc = report.to_dict()
    doc["genotype_file"] = str(genotype_file)
    (output_dir / "retrain.json").write_text(json.dumps(doc, indent=2))
    (output_dir / "retrain.md").write_text(report.to_markdown())
    _print_table(doc)
    typer.echo(f"wrote {output_dir / 'retrain.json'} and {output_dir / 'retrain.md'}")


def _retrain_inputs(genotype_file: Path, config_file: Path, steps: int | None) -> tuple[str, Any, Any]:
    """The config's name, its evaluation config (`--steps` applied) and the genotype; exit 2
    with one line when either file is unusable or they do not fit together."""
    from auxnas.controller.config import load_search_config
    from auxnas.evaluator.config import ConfigError
    from auxnas.evaluator.evaluate import check_genotype
    from auxnas.search_space import GenotypeError, load_genotype_file

    try:
        config = load_search_config(config_file)
    except ConfigError as e:
        fail(str(e))
    try:
        genotype, _ = load_genotype_file(genotype_file)
    except GenotypeError as e:
        fail(str(e) if str(e).startswith(str(genotype_file)) else f"{genotype_file}: {e}")
    eval_config = config.eval_config()
    if steps is not None:
        eval_config.train.steps = steps
    try:
        check_genotype(eval_config, genotype)
    except ValueError as e:
        fail(f"{genotype_file}: {e}")
    return config.name, eval_config, genotype


def _progress(name: str, seed: int, result: Any) -> None:
    status = f"reward {result.reward:.4f}" if result.ok else f"failed: {result.error['message']}"
    typer.echo(f"  {name:<20} seed {seed}: {status} ({result.seconds:.1f} s)", err=True)


def plots(
    search_id: int = typer.Argument(..., metavar="ID", help="The search to draw."),
    output_dir: Path = typer.Option(Path("."), "--output-dir", "-o", help="Where the PNG files go."),
    database_url: str | None = DB_OPTION,
) -> None:
    """Write reward.png, ops.png, genotype.png, calibration.png and finalists.png of a search (those
    it has something to draw for), from the database."""
    from auxnas.controller.plots import PLOT_NAMES, PlotError, render

    storage = open_storage(database_url)
    try:
        if not storage.search_exists(search_id):
            fail(f"search {search_id} does not exist")
        trials = storage.trials(search_id)
        summary = storage.summary(search_id)
    finally:
        storage.dispose()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"--output-dir: cannot create {output_dir} ({e.strerror})")
    written, skipped = [], []
    for name in PLOT_NAMES:
        try:
            png = render(
                name, trials, title=f"search {search_id} ({summary.name}): {name}", answer=summary.answer
            )
        except PlotError as e:
            skipped.append(f"{name}: {e}")
            continue
        path = output_dir / f"{name}.png"
        try:
            path.write_bytes(png)
        except OSError as e:
            fail(f"--output-dir: cannot write {path} ({e.strerror})")
        written.append(str(path))
    if not written:
        fail(f"search {search_id} has nothing to draw yet ({'; '.join(skipped)})")
    for line in skipped:
        typer.echo(f"skipped {line}", err=True)
    typer.echo(f"wrote {', '.join(written)}")


def _print_table(doc: dict) -> None:
    """One row per model and score (the reward, then each task's metrics): any number of tasks
    fits an 80-column terminal."""
    from auxnas.cli.tables import console, figure_column, mean_std, new_table, text_column

    table = new_table(f"retrain {doc['config']} (test split, seeds {doc['seeds']})")
    for header in ("model", "score"):
        text_column(table, header)
    figure_column(table, "mean ± std")
    params = new_table("parameters")
    text_column(params, "model")
    figure_column(params, "training")
    figure_column(params, "inference")
    for row in doc["rows"]:
        if "reward" not in row:
            table.add_row(row["name"], "failed", "")
            table.add_section()
            continue
        table.add_row(row["name"], "reward", mean_std(row["reward"]))
        for t in doc["tasks"]:
            for metric, value in (row["metrics"].get(t) or {}).items():
                table.add_row("", f"{t} {metric}", mean_std(value))
        table.add_section()
        params.add_row(row["name"], f"{row['train_params']:,}", f"{row['inference_params']:,}")
    out = console()
    out.print(table)
    if params.row_count:
        out.print(params)
