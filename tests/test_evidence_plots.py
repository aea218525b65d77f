"""Plots of a finished search, from the database: `auxnas plots ID` and `GET /searches/{id}/plots/{name}.png`."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from auxnas.api.app import create_app
from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.controller.storage import TrialRecord
from tests import service_support as support
from tests.service_support import db_url, storage  # noqa: F401 - fixtures

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runner():
    _register_commands()
    return CliRunner()


@pytest.fixture
def finished_search(storage, ray_session, tmp_path):  # noqa: F811
    """A search run to the end by the real driver with a fast fake evaluator."""
    from auxnas.controller.driver import SearchDriver

    config = support.tiny_search_config(name="plots-fake")
    sid = storage.create_search(config, launched_by="cli")
    outcome = SearchDriver(config, storage, sid, tmp_path / "ck", evaluate_fn=support.fast_evaluate).run()
    assert outcome.status == "succeeded", outcome.error
    return sid


def test_cli_writes_the_three_pngs(runner, db_url, storage, finished_search, tmp_path):  # noqa: F811
    out = tmp_path / "plots"
    result = runner.invoke(
        cli_app, ["plots", str(finished_search), "-o", str(out)], env={"AUXNAS_DATABASE_URL": db_url}
    )
    assert result.exit_code == 0, result.output
    for name in ("reward", "ops", "genotype"):
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    assert "wrote" in result.output


def test_cli_unknown_id_and_empty_search(runner, db_url, storage, tmp_path):  # noqa: F811
    env = {"AUXNAS_DATABASE_URL": db_url}
    result = runner.invoke(cli_app, ["plots", "999", "-o", str(tmp_path)], env=env)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: search 999 does not exist"]

    sid = storage.create_search(support.tiny_search_config(name="queued"))
    result = runner.invoke(cli_app, ["plots", str(sid), "-o", str(tmp_path / "empty")], env=env)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(f"error: search {sid} has nothing to draw yet")
    assert not list((tmp_path / "empty").glob("*.png"))


def test_endpoint_serves_pngs_and_clear_404s(db_url, storage, finished_search):  # noqa: F811
    with TestClient(create_app(db_url, api_token="")) as client:
        for name in ("reward", "ops", "genotype"):
            r = client.get(f"/searches/{finished_search}/plots/{name}.png")
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "image/png" and r.content.startswith(PNG)
        r = client.get("/searches/999/plots/reward.png")
        assert r.status_code == 404 and r.json()["detail"] == "search 999 does not exist"
        r = client.get(f"/searches/{finished_search}/plots/loss.png")
        assert r.status_code == 404 and "unknown plot 'loss'" in r.json()["detail"]


def test_endpoint_before_any_candidate_and_behind_the_token(db_url, storage):  # noqa: F811
    sid = storage.create_search(support.tiny_search_config(name="early"))
    storage.add_trials(sid, [TrialRecord(0, "joint", "succeeded", reward=0.3)])
    with TestClient(create_app(db_url, api_token="s3cret")) as client:
        assert client.get(f"/searches/{sid}/plots/reward.png").status_code == 401
        r = client.get(f"/searches/{sid}/plots/reward.png", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 404
        assert r.json()["detail"] == f"search {sid}: no candidate trials yet"
