"""`auxnas search`: one-line errors for bad input, and a real kill -9 followed by --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import _register_commands
from cli.main import app as cli_app

AUXNAS = str(Path(sys.executable).with_name("auxnas"))


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


def _tiny(tmp_path: Path, **search) -> Path:
    return _write(
        tmp_path / "tiny.yaml",
        {
            "name": "cli-tiny",
            "tasks": ["segmentation", "depth"],
            "model": {"num_aux_inputs": 2},
            "search": {"strategy": "ppo", "budget": 8, "parallel_trials": 2, **search},
            "controller": {"episodes_per_update": 2},
        },
    )


@pytest.mark.parametrize(
    ("doc", "args", "message"),
    [
        ({"search": {"budget": 0}}, [], "search.budget: Input should be greater than or equal to 1"),
        ({"search": {"strategy": "grid"}}, [], "search.strategy: Input should be 'ppo' or 'random'"),
        ({"controller": {"lr": -1}}, [], "controller.lr: Input should be greater than 0"),
        ({"tasks": ["a:b"]}, [], "tasks: invalid task name 'a:b'"),
        ({}, ["--strategy", "grid"], "--strategy: must be 'ppo' or 'random', got 'grid'"),
        ({}, ["--resume"], "--resume: no previous search of 'search'"),
        (
            {},
            ["--output", "/nonexistent/dir/best.json"],
            "--output: directory /nonexistent/dir does not exist",
        ),
    ],
)
def test_bad_input_is_one_clear_line(runner, tmp_path, doc, args, message):
    config = _write(tmp_path / "c.yaml", doc)
    res = runner.invoke(cli_app, ["search", str(config), "--runs-dir", str(tmp_path / "runs"), *args])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output


def test_missing_config_file_is_one_line(runner, tmp_path):
    res = runner.invoke(cli_app, ["search", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "cannot read config" in res.output and "Traceback" not in res.output


def test_previous_search_needs_resume_or_overwrite(runner, tmp_path):
    config = _tiny(tmp_path)
    journal = tmp_path / "runs" / "cli-tiny" / "checkpoint" / "journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text("")
    res = runner.invoke(cli_app, ["search", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 2 and "pass --resume to continue it or --overwrite" in res.output


def _journal_trials(journal: Path) -> list[dict]:
    out = []
    for line in journal.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry["type"] == "trial":
            out.append(entry["record"])
    return out


def test_kill_9_then_resume_finishes_with_every_trial_once(tmp_path):
    """The CLI keeps trials in memory: the journal in runs/<name>/ is all a kill leaves behind."""
    config = _tiny(tmp_path, budget=10, strategy="random")  # PPO's resume is tested in-process
    runs = tmp_path / "runs"
    journal = runs / "cli-tiny" / "checkpoint" / "journal.jsonl"
    cmd = [
        AUXNAS,
        "search",
        str(config),
        "--runs-dir",
        str(runs),
        "--evaluate-fn",
        "controller.fakes:sleeping_briefly",
    ]
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "AUXNAS_DATABASE_URL": f"sqlite:///{tmp_path / 'auxnas.db'}",
    }
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and sum(t["kind"] == "candidate" for t in _journal_trials(journal)) >= 4:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and the local Ray it started
        proc.wait()
    before = _journal_trials(journal)
    assert 4 <= sum(t["kind"] == "candidate" for t in before) < 10

    out = tmp_path / "best.json"
    res = subprocess.run(
        [*cmd, "--resume", "-o", str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    trials = _journal_trials(journal)
    assert [t["index"] for t in trials] == list(range(len(trials)))
    assert trials[: len(before)] == before
    evaluated = [t for t in trials if t["kind"] == "candidate" and t["status"] != "cached"]
    assert len(evaluated) == 10
    trained = [t["genotype_hash"] for t in trials if t["status"] != "cached" and t["genotype_hash"]]
    assert len(trained) == len(set(trained))
    assert [t["kind"] for t in trials].count("joint") == 1
    best = json.loads(out.read_text())
    assert best["reward"] == max(
        t["reward"] for t in trials if t["kind"] != "joint" and t["status"] == "succeeded"
    )
    assert "best found" in res.stdout and "Joint" in res.stdout
