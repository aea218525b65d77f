"""`auxnas calibrate CONFIG`: does the reward rank architectures? Measure it before searching.

Runs the config's calibration phase alone (`search.calibrate`, from the flags): Joint, `basic`
and N random genotypes under K replicates, as a search of its own in the database (so
`--resume ID`, `auxnas status ID` and the API see it), then prints the figures, writes
`calibration.json` and `calibration.png` and ends with the verdict line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from auxnas.cli.main import fail
from auxnas.cli.search_run import RUNS_DIR_OPTION
from auxnas.controller.status import SearchStatus


def register(app: typer.Typer) -> None:
    app.command()(calibrate)


def calibrate(
    config_file: Path = typer.Argument(..., metavar="CONFIG", help="Search config (YAML preset)."),
    genotypes: int = typer.Option(12, "--genotypes", help="Random genotypes besides Joint and basic (>= 3)."),
    replicates: int = typer.Option(
        2, "--replicates", help="Independent replicates, each its own seeds (>= 2)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON instead of a table."),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", "-o", help="Where calibration.json and .png go [default: the run directory]."
    ),
    resume: int | None = typer.Option(None, "--resume", metavar="ID", help="Continue calibration search ID."),
    runs_dir: Path | None = RUNS_DIR_OPTION,
    evaluator: str = typer.Option(
        "train", "--evaluator", metavar="NAME", help="Evaluator (see `auxnas search`)."
    ),
) -> None:
    """Score Joint, basic and random genotypes under independent replicates: is the reward signal or noise?"""
    from auxnas.cli.database import open_storage
    from auxnas.cli.evaluators import load_evaluator
    from auxnas.cli.search_run import run_search

    config = _calibration_config(config_file, genotypes, replicates)
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        fail(f"--output-dir: {output_dir} is not a directory")
    fn = load_evaluator(evaluator)

    storage = open_storage()
    if resume is not None:
        row = storage.search_row(resume) if 0 < resume < 2**63 else None
        if row is None:
            fail(f"--resume: search {resume} does not exist")
    outcome, run_dir = run_search(config, storage, resume, runs_dir, 30.0, fn, calibrate_only=True)
    if outcome.fidelity is None:
        fail(f"calibration {outcome.status}: {outcome.error or 'no figures'}", code=1)
    out = output_dir or run_dir
    out.mkdir(parents=True, exist_ok=True)
    doc = {"search_id": outcome.search_id, "config": config.name, **outcome.fidelity}
    (out / "calibration.json").write_text(json.dumps(doc, indent=2) + "\n")
    _write_scatter(outcome, out / "calibration.png", config.name)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_table(doc)
        typer.echo(f"figures written to {out / 'calibration.json'} and {out / 'calibration.png'}")
    # stdout stays pure JSON under --json: the verdict (also inside the JSON) goes to stderr
    typer.echo(outcome.fidelity["verdict"], err=as_json)
    if outcome.status != SearchStatus.SUCCEEDED:
        raise typer.Exit(1)


def _calibration_config(config_file: Path, genotypes: int, replicates: int) -> Any:
    """The search config with the calibration section of the options (its min_spearman kept)."""
    from pydantic import ValidationError

    from auxnas.controller.config import CalibrateSection, load_search_config
    from auxnas.evaluator.config import ConfigError, describe_validation_error

    try:
        section = CalibrateSection(genotypes=genotypes, replicates=replicates)
    except ValidationError as e:
        fail("--" + describe_validation_error(e))
    try:
        config = load_search_config(config_file)
    except ConfigError as e:
        fail(str(e))
    min_spearman = config.search.calibrate.min_spearman if config.search.calibrate else None
    section = section.model_copy(update={"min_spearman": min_spearman})
    return config.model_copy(update={"search": config.search.model_copy(update={"calibrate": section})})


def _write_scatter(outcome: Any, path: Path, name: str) -> None:
    from auxnas.controller.plots import PlotError, render

    try:
        path.write_bytes(render("calibration", outcome.trials, title=f"calibration of {name!r}"))
    except PlotError as e:
        typer.echo(f"note: no scatter ({e})", err=True)


def _print_table(doc: dict[str, Any]) -> None:
    from auxnas.cli.tables import console as terminal
    from auxnas.cli.tables import figure_column, new_table, text_column

    def f(x: Any, spec: str = ".4f") -> str:
        return "-" if x is None else format(x, spec)

    console = terminal()
    table = new_table(f"calibration of {doc['config']!r} (search {doc['search_id']})")
    text_column(table, "genotype")
    figure_column(table, "mean")
    figure_column(table, "std")
    # one cell for every replicate's gain: it wraps between figures, whatever the replicates
    text_column(table, f"gain over Joint, replicates 1-{doc['replicates']}")
    joint = doc.get("joint") or {}
    table.add_row("Joint", f(joint.get("mean")), f(joint.get("std")), "")
    for g in doc["per_genotype"]:
        gains = g.get("gain_over_joint") or [None] * doc["replicates"]
        table.add_row(g["name"], f(g["mean"]), f(g["std"]), " ".join(f(x, "+.4f") for x in gains))
    console.print(table)
    seconds = doc.get("seconds_per_candidate") or {}
    lines = [
        f"architecture spread {f(doc['spread'])}, replicate noise {f(doc['noise'])} "
        f"(spread/noise {f(doc.get('spread_to_noise'), '.2f')}); centred noise {f(doc.get('centred_noise'))} "
        "(without each replicate's common shift, which cannot reorder candidates)",
        *(
            f"replicates {p['replicates'][0] + 1}-{p['replicates'][1] + 1}: spearman {f(p['spearman'], '.2f')} "
            f"[{f(p['spearman_ci'][0], '.2f')}, {f(p['spearman_ci'][1], '.2f')}], kendall {f(p['kendall'], '.2f')} "
            f"[{f(p['kendall_ci'][0], '.2f')}, {f(p['kendall_ci'][1], '.2f')}]"
            for p in doc["pairs"]
        ),
        f"beat Joint in every replicate: {f(doc.get('beat_joint_share'), '.0%')} of genotypes",
        f"reward seeds per candidate for spearman {doc['target']:g} (Spearman-Brown): "
        f"{doc['reward_seeds_needed'] if doc.get('reward_seeds_needed') is not None else 'none would do'}",
        f"seconds per candidate (median): {f(seconds.get('wall'), '.1f')} wall, {f(seconds.get('cpu'), '.1f')} CPU",
    ]
    if doc.get("excluded"):
        lines.append(f"left out (failed in a replicate): {', '.join(doc['excluded'])}")
    for line in lines:
        console.print(line)
