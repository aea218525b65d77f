"""The `auxnas` command line. Heavy imports (torch, Ray, the DB) happen inside the commands.

Each area registers its commands from its own module (`cli/<area>.py`, `register(app)`).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import NoReturn

import typer
from typer.core import TyperGroup

from auxnas.evaluator.defaults import DEFAULT_TASKS


class OneLineErrors(TyperGroup):
    """Every mistake on the command line ends as one `error: ...` line and exit 2, usage
    mistakes included (where click would print its usage block, a hint and the error)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as e:  # the click errors typer raises: usage, bad values
            typer.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="auxnas: search auxiliary modules for multi-task networks.",
)

# modules that add commands to `app`; each defines `register(app)`
COMMAND_MODULES = (
    "auxnas.cli.evaluate",
    "auxnas.cli.calibrate",
    "auxnas.cli.search",
    "auxnas.cli.service",
    "auxnas.cli.status",
    "auxnas.cli.evidence",
    "auxnas.cli.diagnose",
    "auxnas.cli.surrogate",
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:  # `auxnas` alone: the help
        typer.echo(ctx.get_help())


def start_ray() -> None:
    """Join `RAY_ADDRESS` or start a local Ray for a command that runs trials (exit 2 when it
    cannot), and keep Ray's own log lines out of the command's output."""
    import logging

    from auxnas.evaluator.priority import worker_nice
    from auxnas.worker.ray_runtime import RayStartError, ensure_ray

    try:
        worker_nice()  # what the trials will read: a bad value stops the command, not each trial
        ensure_ray()
    except (RayStartError, ValueError) as e:
        fail(str(e))
    for name in ("ray", "ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr and a non-zero exit: how every user mistake ends."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command(context_settings={"allow_extra_args": True})
def space(
    ctx: typer.Context,
    tasks: list[str] = typer.Option(
        list(DEFAULT_TASKS), "--tasks", help="Task names in order: `--tasks a b`, `--tasks a,b` or repeated."
    ),
    inputs: int = typer.Option(3, "--inputs", help="P: number of encoder feature maps the modules read."),
    basic: bool = typer.Option(False, "--basic", help="Print the `basic` genotype JSON instead."),
) -> None:
    """Print the search space (ops, aggregators, token layout, number of genotypes) as JSON."""
    from auxnas.search_space import SearchSpace, SpaceError, basic_genotype

    if ctx.args and ctx.get_parameter_source("tasks").name != "COMMANDLINE":
        fail(f"unexpected argument {ctx.args[0]!r}")
    tasks = _split_tasks([*tasks, *ctx.args])
    try:
        sp = SearchSpace(num_inputs=inputs, tasks=tuple(tasks))
    except SpaceError as e:
        fail(f"--{str(e).replace('num_inputs', 'inputs')}")
    doc = basic_genotype(sp).to_json() if basic else sp.describe()
    typer.echo(json.dumps(doc, indent=2))


def _split_tasks(tasks: list[str]) -> list[str]:
    """Accept `--tasks a b`, `--tasks a --tasks b` and `--tasks a,b`."""
    return [t for item in tasks for t in item.split(",") if t]


@app.command()
def validate(file: Path = typer.Argument(..., help="Genotype JSON file.")) -> None:
    """Check a genotype JSON file: a one-line summary, or one line naming the problem (exit 2)."""
    from auxnas.search_space import GenotypeError, load_genotype_file

    try:
        genotype, doc = load_genotype_file(file)
    except GenotypeError as e:
        fail(f"{file}: {e}" if not str(e).startswith(str(file)) else str(e))
    reward = f", reward {doc['reward']:.4f}" if isinstance(doc.get("reward"), (int, float)) else ""
    typer.echo(f"ok: {file}: {genotype.summary()}{reward}")


def _register_commands() -> None:
    """Every module of COMMAND_MODULES adds its commands; a missing one is a broken install and
    an error (never a command that silently vanishes)."""
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main() -> None:
    _register_commands()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
