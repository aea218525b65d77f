"""`auxnas search`: one-line errors for bad input (runs, kill -9 and --resume: tests/test_cli_runs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if not any(
        c.name == "search" or getattr(c.callback, "__name__", "") == "search"
        for c in cli_app.registered_commands
    ):
        _register_commands()
    return CliRunner()


def _write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("doc", "args", "message"),
    [
        ({"search": {"budget": 0}}, [], "search.budget: Input should be greater than or equal to 1"),
        (
            {"search": {"strategy": "grid"}},
            [],
            "search.strategy: Input should be 'ppo', 'random' or 'evolution'",
        ),
        ({"controller": {"lr": -1}}, [], "controller.lr: Input should be greater than 0"),
        ({"tasks": ["a:b"]}, [], "tasks.0: 'a:b' is not a task of dataset 'synthetic'"),
        ({"tasks": ["depth", "banana"]}, [], "tasks.1: 'banana' is not a task of dataset 'synthetic'"),
        ({"train": {"steps": "100"}}, [], "train.steps: Input should be a valid integer"),
        ({}, ["--strategy", "grid"], "--strategy: must be one of ['ppo', 'random', 'evolution'], got 'grid'"),
        ({}, ["--resume"], "--resume: no previous search of 'search'"),
        (
            {},
            ["--output", "/nonexistent/dir/best.json"],
            "--output: directory /nonexistent/dir does not exist",
        ),
    ],
)
def test_bad_input_is_one_clear_line(runner, tmp_path, monkeypatch, doc, args, message):
    monkeypatch.setenv("AUXNAS_DATABASE_URL", f"sqlite:///{tmp_path / 'auxnas.db'}")
    config = _write(tmp_path / "c.yaml", doc)
    res = runner.invoke(cli_app, ["search", str(config), "--runs-dir", str(tmp_path / "runs"), *args])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    from auxnas.db.storage import SqlStorage

    if (tmp_path / "auxnas.db").exists():  # nothing stored for a mistake
        st = SqlStorage(f"sqlite:///{tmp_path / 'auxnas.db'}")
        try:
            assert st.list_searches()[1] == 0
        finally:
            st.dispose()


def test_missing_config_file_is_one_line(runner, tmp_path):
    res = runner.invoke(cli_app, ["search", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "cannot read config" in res.output and "Traceback" not in res.output
