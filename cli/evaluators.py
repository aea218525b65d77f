"""`--evaluator NAME` of `auxnas search`, `calibrate` and `worker`: what scores a genotype."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auxnas.cli.main import fail

EVALUATOR_HELP = (
    "What scores a genotype: 'train' (trains and scores it), a name registered in the "
    "auxnas.evaluators entry points (fake-* stand-ins for tests) or python:package.module:function."
)


def load_evaluator(name: str) -> Any:
    """`--evaluator NAME` -> the evaluate function (exit 2 naming the known ones)."""
    from auxnas.evaluator.plugins import EVALUATORS, PluginError, load_callable

    try:
        return load_callable(name, EVALUATORS)
    except PluginError as e:
        fail(f"--evaluator: {e}")


def check_surrogate() -> None:
    """`--evaluator surrogate`: its file loads (one line naming the problem, else exit 2), and
    the trials read it by absolute path whatever their working directory."""
    import os

    from auxnas.evaluator.surrogate import ENV, SurrogateError, load_surrogate, surrogate_path

    try:
        os.environ[ENV] = str(Path(surrogate_path()).resolve())
        load_surrogate(os.environ[ENV])
    except SurrogateError as e:
        fail(str(e))
