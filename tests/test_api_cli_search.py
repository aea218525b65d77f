"""`auxnas search` records into the service's database: `status`, `export` and the API see it,
and `--resume` continues the same search row."""

from __future__ import annotations

import json

import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from auxnas.api.app import create_app
from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.db.storage import SqlStorage
from tests import service_support as support

db_url = support.db_url


def test_cli_search_is_visible_to_status_export_and_the_api(ray_session, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("AUXNAS_DATABASE_URL", db_url)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "from-the-cli",
                "tasks": ["segmentation", "depth"],
                "model": {"num_aux_inputs": 2},
                "search": {"strategy": "random", "budget": 4, "parallel_trials": 2},
                "controller": {"episodes_per_update": 2},
            }
        )
    )
    _register_commands()
    runner = CliRunner()
    args = [
        "search",
        str(config),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--output",
        str(tmp_path / "search-output.json"),
        "--evaluator",
        "python:tests.service_support:fast_evaluate",
    ]
    res = runner.invoke(cli_app, args)
    assert res.exit_code == 0, res.output

    res = runner.invoke(cli_app, ["status", "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert listed["total"] == 1
    row = listed["items"][0]
    assert (row["name"], row["status"], row["launched_by"]) == ("from-the-cli", "succeeded", "cli")
    assert row["progress"]["evaluated"] == 4
    sid = row["id"]

    out = tmp_path / "best.json"
    res = runner.invoke(cli_app, ["export", str(sid), "-o", str(out)])
    assert res.exit_code == 0, res.output
    exported = json.loads(out.read_text())
    assert exported["search"]["name"] == "from-the-cli"
    # one exporter: `search --output` and `export` write the same document, with the real id
    assert json.loads((tmp_path / "search-output.json").read_text()) == exported
    assert exported["search"]["id"] == sid

    with TestClient(create_app(db_url, api_token="")) as client:
        s = client.get(f"/searches/{sid}").json()
        assert s["launched_by"] == "cli" and s["best_reward"] == exported["reward"]
        assert client.get(f"/searches/{sid}/best").json() == exported

    # --resume continues the same row instead of adding one; nothing is evaluated again
    storage = SqlStorage(db_url)
    try:
        trials_before = [t.to_dict() for t in storage.trials(sid)]
        res = runner.invoke(cli_app, [*args, "--resume"])
        assert res.exit_code == 0, res.output
        _, total = storage.list_searches()
        assert total == 1
        assert [t.to_dict() for t in storage.trials(sid)] == trials_before
        assert storage.search_row(sid).attempts == 2
    finally:
        storage.dispose()


def test_status_and_export_of_unknown_searches_fail_in_one_line(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("AUXNAS_DATABASE_URL", db_url)
    _register_commands()
    runner = CliRunner()
    res = runner.invoke(cli_app, ["status", "7"])
    assert res.exit_code == 2 and res.output.strip() == "error: search 7 does not exist"
    res = runner.invoke(cli_app, ["export", "7", "-o", str(tmp_path / "x.json")])
    assert res.exit_code == 2 and res.output.strip() == "error: search 7 does not exist"
    res = runner.invoke(cli_app, ["status"])
    assert res.exit_code == 0 and "no searches yet" in res.output


def test_a_bad_database_url_is_one_line(monkeypatch):
    _register_commands()
    res = CliRunner().invoke(
        cli_app, ["status", "--database-url", "postgresql+psycopg2://x@127.0.0.1:1/none"]
    )
    assert res.exit_code == 2
    assert res.output.startswith("error: database postgresql") and res.output.count("\n") == 1
    res = CliRunner().invoke(cli_app, ["status", "--database-url", "nonsense://"])
    assert res.exit_code == 2 and res.output.startswith("error: ")
