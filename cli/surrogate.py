"""`auxnas surrogate fit SOURCE -o FILE`: fit the surrogate evaluator on stored per-seed rewards.

SOURCE is a JSON lines file (`.jsonl`, `.jsonl.gz`, as `bench/collect_rewards.py` writes), a JSON
document or a database URL (`evaluator.surrogate_data`). The fit prints the held-out rank
agreement on genotypes the ensemble never saw next to the ceiling the replicate noise allows,
and writes the file `--evaluator surrogate` reads (`AUXNAS_SURROGATE=FILE`).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from auxnas.cli.main import fail

surrogate_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="The surrogate evaluator (a fitted reward model)."
)


def register(app: typer.Typer) -> None:
    app.add_typer(surrogate_app, name="surrogate")


@surrogate_app.command()
def fit(
    source: str = typer.Argument(..., help="Rewards: .jsonl[.gz] or .json file, or a database URL."),
    output: Path = typer.Option(..., "--output", "-o", help="The surrogate file to write."),
    model: str = typer.Option("gbt", "--model", help="gbt (bagged gradient-boosted trees), ridge or mlp."),
    members: int = typer.Option(10, "--members", min=2, max=100, help="Ensemble members (bagging)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples and the members."),
) -> None:
    """Fit the ensemble on SOURCE, print its held-out rank agreement, write FILE."""
    from auxnas.evaluator.surrogate import SurrogateError, fit_document
    from auxnas.evaluator.surrogate_data import RewardTableError, read_rewards
    from auxnas.evaluator.surrogate_model import MODEL_KINDS

    if model not in MODEL_KINDS:
        fail(f"--model: one of {list(MODEL_KINDS)}, got {model!r}")
    if not output.parent.is_dir():
        fail(f"--output: directory {output.parent} does not exist")
    try:
        table = read_rewards(source)
        doc = fit_document(table, kind=model, members=members, seed=seed)
    except (RewardTableError, SurrogateError) as e:
        fail(str(e))
    output.write_text(json.dumps(doc) + "\n")
    _print_report(doc)
    typer.echo(f"surrogate written to {output} (use: {_usage(output)})")


def _print_report(doc: dict) -> None:
    r = doc["report"]
    h, c = r["held_out"], r["replicate_ceiling"]
    typer.echo(
        f"{r['genotypes']} genotypes, {r['evaluations']} evaluations, {r['replicated_genotypes']} "
        f"genotypes at 2+ seeds; model {doc['model']['kind']} x {doc['model']['members']}"
    )
    typer.echo(
        f"architecture spread (std of genotype means) {r['spread']:.4f}; replicate noise {r['noise']:.4f}"
    )
    typer.echo(
        f"held out (5-fold over genotypes): Spearman {h['spearman']:+.3f}, Kendall {h['kendall']:+.3f} "
        f"(n {h['n']}), RMSE {r['held_out_rmse']:.4f}"
    )
    if c is None:
        typer.echo("replicate ceiling: fewer than 3 genotypes at 2 seeds, not measured")
    else:
        typer.echo(
            f"replicate ceiling (one seed against another): Spearman {c['spearman']:+.3f}, "
            f"Kendall {c['kendall']:+.3f} (n {c['n']})"
        )


def _usage(output: Path) -> str:
    return f"AUXNAS_SURROGATE={output} auxnas search CONFIG --evaluator surrogate"
