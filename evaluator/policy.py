"""What a REST caller may ask a worker to run: it is not the operator.

- Datasets: `synthetic`, `nyuv2`, the dataset plugins the operator installed (entry points of
  `auxnas.datasets`) and the exact `python:` specs listed in `AUXNAS_DATASETS` (comma separated).
  Any other `python:` spec would make every worker import and call code of the caller's choice.
- Paths (`data.root`, `model.pretrained`): relative, and inside `AUXNAS_DATA_DIR` (default
  `./runs`) once resolved, symlinks included.

The local CLI does not apply this policy: its user runs their own code on their own files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auxnas.evaluator import plugins
from auxnas.evaluator.defaults import DATA_DIR_ENV, data_dir

BUILTIN_DATASETS = ("synthetic", "nyuv2")
ALLOWED_DATASETS_ENV = "AUXNAS_DATASETS"
NOT_A_PATH = ("auto",)  # `model.pretrained: auto` names a built-in warm start, not a file


class PolicyError(ValueError):
    """A config a REST caller may not submit: `loc` is the field (e.g. `("data", "root")`)."""

    def __init__(self, loc: tuple[str, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(loc)}: {msg}")
        self.loc, self.msg = loc, msg


def operator_datasets() -> list[str]:
    """The `python:` specs the operator allows in `AUXNAS_DATASETS`."""
    return [s.strip() for s in os.environ.get(ALLOWED_DATASETS_ENV, "").split(",") if s.strip()]


def allowed_datasets() -> list[str]:
    return [*BUILTIN_DATASETS, *plugins.names(plugins.DATASETS), *operator_datasets()]


def dataset_refusal(name: str) -> str | None:
    """Why a REST caller may not use dataset `name` (None when it may)."""
    allowed = allowed_datasets()
    if name in allowed:
        return None
    if name.startswith(plugins.PYTHON_PREFIX):
        return (
            f"{name!r} is not allowed on this service (python: specs only when the operator lists them "
            f"in {ALLOWED_DATASETS_ENV}); allowed: {', '.join(allowed)}"
        )
    return f"{name!r} is not a dataset of this service; allowed: {', '.join(allowed)}"


def path_fields(config: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """(field, value) of every path an evaluation config names."""
    if config.data.root is not None:
        yield ("data", "root"), config.data.root
    pretrained = config.model.pretrained
    if pretrained is not None and pretrained not in NOT_A_PATH:
        yield ("model", "pretrained"), pretrained


def confined(value: str, base: Path) -> Path:
    """`value` resolved inside `base`; ValueError saying why it is not (without naming `base`:
    the caller need not learn the server's directories)."""
    where = f"must be a path relative to {DATA_DIR_ENV}"
    if not value:
        raise ValueError(f"{where}, got an empty string")
    if value.startswith("~") or Path(value).is_absolute():
        raise ValueError(f"{where}, got {value!r}")
    if ".." in Path(value).parts:
        raise ValueError(f"{where} without '..', got {value!r}")
    try:
        resolved = (base / value).resolve()
    except (OSError, ValueError, RuntimeError) as e:  # NUL bytes, symlink loops
        raise ValueError(f"{where}: cannot resolve {value!r} ({type(e).__name__})") from None
    if not resolved.is_relative_to(base.resolve()):
        raise ValueError(f"{where}: {value!r} leads outside it through a symlink")
    return resolved


def check_caller_config(config: Any, base: Path | None = None) -> None:
    """PolicyError for the first thing in `config` a REST caller may not ask for."""
    refusal = dataset_refusal(config.data.name)
    if refusal:
        raise PolicyError(("data", "name"), refusal)
    base = base or data_dir()
    for loc, value in path_fields(config):
        try:
            confined(value, base)
        except ValueError as e:
            raise PolicyError(loc, str(e)) from None


def confine_paths(config: Any, base: Path) -> Any:
    """A copy of a checked `config` whose paths are absolute, inside `base` (what a worker runs:
    Ray workers do not share its working directory)."""
    check_caller_config(config, base)
    data, model = config.data, config.model
    if data.root is not None:
        data = data.model_copy(update={"root": str(confined(data.root, base))})
    if model.pretrained is not None and model.pretrained not in NOT_A_PATH:
        model = model.model_copy(update={"pretrained": str(confined(model.pretrained, base))})
    return config.model_copy(update={"data": data, "model": model})
