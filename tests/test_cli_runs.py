"""`auxnas search` starts a new search every time, in its own run directory keyed by its id, and
holds a lease: a CLI search killed mid-run shows its lease expired, and `--resume ID` (or any
worker) continues it."""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.db.leases import claim_next
from auxnas.db.models import utcnow
from auxnas.db.storage import SqlStorage
from tests import service_support as support

db_url = support.db_url
storage = support.storage


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if not any(getattr(c.callback, "__name__", "") == "search" for c in cli_app.registered_commands):
        _register_commands()
    return CliRunner()


def write_config(tmp_path: Path, budget: int, strategy: str = "random") -> Path:
    path = tmp_path / "tiny.yaml"
    doc = {
        "name": "../not-a-path",  # a label only: it must never reach the file system
        "tasks": ["segmentation", "depth"],
        "model": {"num_aux_inputs": 2},
        "search": {
            "strategy": strategy,
            "budget": budget,
            "parallel_trials": 2,
            "early_stop": False,
            "racing": {"rungs": [1]},  # the search phase alone (test_answer_service.py races)
            "confirm": {"seeds": 0},
        },
        "controller": {"episodes_per_update": 2},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_two_runs_of_one_config_are_two_searches_in_their_own_run_dirs(
    ray_session, runner, db_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("AUXNAS_DATABASE_URL", db_url)
    config = write_config(tmp_path, budget=3)
    runs = tmp_path / "runs"
    args = ["search", str(config), "--runs-dir", str(runs), "--evaluator", "fake-target-share"]
    first = runner.invoke(cli_app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli_app, [*args, "--strategy", "random"])
    assert second.exit_code == 0, second.output

    st = SqlStorage(db_url)
    try:
        items, total = st.list_searches()
        assert total == 2
        ids = sorted(s.id for s in items)
        for sid in ids:
            row = st.search_row(sid)
            assert (row.status, row.launched_by, row.name) == ("succeeded", "cli", "../not-a-path")
            assert row.checkpoint_dir == str((runs / f"search-{sid}").resolve())
            assert (runs / f"search-{sid}" / "best.json").is_file()
            assert row.heartbeat_at is not None  # it ran under a lease
        assert sorted(p.name for p in runs.iterdir()) == [f"search-{sid}" for sid in ids]
        assert not (tmp_path / "not-a-path").exists()

        # --resume without an id continues the latest of this config's name; nothing is added
        trials = [t.to_dict() for t in st.trials(ids[-1])]
        again = runner.invoke(cli_app, [*args, "--resume"])
        assert again.exit_code == 0, again.output
        assert st.list_searches()[1] == 2
        assert st.search_row(ids[-1]).attempts == 2 and st.search_row(ids[0]).attempts == 1
        assert [t.to_dict() for t in st.trials(ids[-1])] == trials
    finally:
        st.dispose()


def test_resume_of_a_search_that_does_not_exist_is_one_line(runner, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("AUXNAS_DATABASE_URL", db_url)
    config = write_config(tmp_path, budget=3)
    for extra, message in (
        (["--resume", "7"], "error: --resume: search 7 does not exist"),
        (["--resume"], "error: --resume: no previous search of '../not-a-path' launched by `auxnas search`"),
        (["--resume=x"], "error: --resume: expected a search id, got 'x'"),
    ):
        res = runner.invoke(cli_app, ["search", str(config), *extra, "--runs-dir", str(tmp_path / "r")])
        assert res.exit_code == 2 and res.output.strip() == message, res.output
    assert not (tmp_path / "r").exists()


def test_an_expired_cli_search_is_claimable_by_a_worker_a_live_one_is_not(storage):
    config = support.tiny_search_config()
    live = storage.create_search(config, launched_by="cli", owner="cli:host:1", lease_seconds=60)
    assert claim_next(storage, "w1", 5) is None
    dead = storage.create_search(config, launched_by="cli", owner="cli:host:2", lease_seconds=-1)
    claim = claim_next(storage, "w1", 5)
    assert claim is not None and claim.search_id == dead and claim.resume and claim.attempts == 2
    assert storage.search_row(live).worker_id == "cli:host:1"


@pytest.mark.slow
def test_a_killed_cli_search_shows_its_lease_expired_and_resume_completes_it(
    ray_session, runner, storage, db_url, tmp_path, monkeypatch
):
    budget, lease = 8, 3.0
    config = write_config(tmp_path, budget=budget)
    runs = tmp_path / "runs"
    args = ["search", str(config), "--runs-dir", str(runs), "--evaluator", "fake-sleep-briefly"]
    env = support.auxnas_env(db_url, RAY_ADDRESS=ray_session.get_runtime_context().gcs_address)
    proc = support.start_auxnas([*args, "--lease", str(lease)], env, tmp_path / "cli.log")
    st = storage  # migrated before the CLI starts
    try:
        support.wait_until(
            lambda: st.list_searches()[1] == 1 and len(st.trials(st.list_searches()[0][0].id)) >= 4,
            60,
            what="the CLI search to record 4 trials",
        )
        sid = st.list_searches()[0][0].id
        renewed = st.search_row(sid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        before = st.trials(sid)
        assert len(before) < budget + 2
        # the heartbeat renewed the lease while it ran; once the process is dead it runs out
        assert renewed.heartbeat_at > renewed.created_at or renewed.lease_expires_at > utcnow()
        support.wait_until(
            lambda: st.search_row(sid).lease_expires_at < utcnow() - timedelta(seconds=0.5),
            lease + 10,
            what="the dead CLI's lease to expire",
        )
        assert st.search_row(sid).status == "running"  # interrupted: nobody recorded an end

        monkeypatch.setenv("AUXNAS_DATABASE_URL", db_url)
        res = runner.invoke(cli_app, [*args, "--resume", str(sid)])
        assert res.exit_code == 0, res.output
        row = st.search_row(sid)
        assert (row.status, row.attempts) == ("succeeded", 2)
        after = st.trials(sid)
        finished = {t.index: t.to_dict() for t in before if t.final}
        assert finished and {t.index: t.to_dict() for t in after if t.index in finished} == finished
        assert [t.index for t in after] == list(range(len(after))) and all(t.final for t in after)
        kinds = Counter(t.kind for t in after)
        assert kinds["joint"] == 1 and kinds["basic"] == 1
        assert sum(1 for t in after if t.kind == "candidate" and not t.cached) == budget
        assert st.list_searches()[1] == 1
    finally:
        support.stop(proc)
