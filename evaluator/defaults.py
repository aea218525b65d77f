"""Defaults that more than one part of auxnas applies (light: no heavy imports).

- The tasks of a config that names none (also of `auxnas space` and `GET /search-space`).
- The data directory, `$AUXNAS_DATA_DIR` or `./runs`: each search's run directory
  `search-<id>/` (its controller checkpoint), and the only place a REST caller's paths may
  point into (`evaluator.policy`).
- The cache directory, `$AUXNAS_CACHE_DIR` or `~/.cache/auxnas`: generated synthetic datasets
  (`synthetic/`) and warm starts (`warmstart/`).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TASKS: tuple[str, ...] = ("segmentation", "depth", "normal")
DATA_DIR_ENV = "AUXNAS_DATA_DIR"
CACHE_DIR_ENV = "AUXNAS_CACHE_DIR"


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or "runs").resolve()


def run_dir(data_dir: Path, search_id: int) -> Path:
    """Where a search keeps its files when its row names no checkpoint directory yet."""
    return Path(data_dir) / f"search-{search_id}"


def cache_dir(name: str) -> Path:
    """The cache's sub-directory `name` (e.g. "synthetic", "warmstart")."""
    base = os.environ.get(CACHE_DIR_ENV)
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "auxnas") / name
