"""One answer everywhere: a search with racing and confirmation, run by a worker on fake evaluators
with known truth, served by REST (`/searches/{id}`, `/trials`, `/best`) and the CLI (`status`,
`export`, `plots`); databases from before seeds were recorded still read."""

from __future__ import annotations

import json
import statistics

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from auxnas.api.app import create_app
from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.db.storage import SqlStorage
from auxnas.evaluator import testing as fakes
from auxnas.search_space import parse_genotype
from auxnas.worker.loop import Worker
from tests import service_support as support

db_url = support.db_url

BODY = {
    "name": "answered",
    "tasks": ["segmentation", "depth"],
    "model": {"num_aux_inputs": 2},
    "search": {
        "strategy": "random",
        "budget": 8,
        "parallel_trials": 2,
        "racing": {"rungs": [1, 3], "promote_fraction": 0.25},
        "confirm": {"finalists": 2, "seeds": 4},
    },
    "controller": {"episodes_per_update": 4},
}


def _run(client, db_url, tmp_path, evaluate_fn, body=BODY) -> int:
    sid = client.post("/searches", json=body).json()["id"]
    worker = Worker(SqlStorage(db_url), data_dir=tmp_path / "runs", poll_seconds=0.1, evaluate_fn=evaluate_fn)
    assert worker.run_forever(once=True) == 1
    return sid


def _cli(*args):
    _register_commands()
    return CliRunner().invoke(cli_app, [str(a) for a in args])


@pytest.fixture
def client(db_url):
    with TestClient(create_app(db_url, api_token="")) as c:
        yield c


def test_rest_and_cli_serve_the_confirmed_answer(ray_session, client, db_url, tmp_path):
    sid = _run(client, db_url, tmp_path, fakes.some_gain)
    s = client.get(f"/searches/{sid}").json()
    assert s["status"] == "succeeded", s
    answer = s["answer"]
    assert answer["recommended"] and answer["confirmed"] and s["verdict"] == answer["verdict"]
    assert (
        answer["verdict"].startswith(f"use {answer['module']}: +")
        and "over Joint on 4 fresh seeds" in answer["verdict"]
    )
    assert answer["over_joint"]["adj_lower"] > 0 and answer["seeds"]["search"] == [0, 1, 2]
    assert not set(answer["seeds"]["confirmation"]) & set(answer["seeds"]["search"])

    trials = client.get(f"/searches/{sid}/trials", params={"limit": 1000}).json()["items"]
    trained = [t for t in trials if t["status"] in ("succeeded", "failed", "pruned")]
    assert s["progress"]["evaluations"] == len(trained) and s["progress"]["evaluated"] == 8
    assert s["progress"]["cpu_seconds"] == pytest.approx(sum(t["cpu_seconds"] for t in trials))
    assert all(t["seed"] is not None for t in trials)
    joint = {(t["phase"] != "confirmation", t["seed"]): t["reward"] for t in trials if t["kind"] == "joint"}
    raced = [
        t for t in trials if t["kind"] == "candidate" and t["phase"] == "search" and t["seeds"] == [0, 1, 2]
    ]
    assert raced  # promoted candidates: three search seeds, with a mean paired gain and its SE
    for t in raced:
        rows = [
            r for r in trials if r["genotype_hash"] == t["genotype_hash"] and r["phase"] != "confirmation"
        ]
        gains = [r["reward"] - joint[True, r["seed"]] for r in sorted(rows, key=lambda r: r["seed"])]
        assert [r["gain"] for r in sorted(rows, key=lambda r: r["seed"])] == pytest.approx(gains)
        assert t["mean_gain"] == pytest.approx(statistics.fmean(gains))
        assert t["gain_se"] == pytest.approx(statistics.stdev(gains) / 3**0.5)

    best = client.get(f"/searches/{sid}/best").json()
    genotype = parse_genotype(best)
    chosen = answer["modules"][answer["module"]]
    assert best["version"] == 2 and best["recommended"] is True
    assert genotype.canonical_hash() == chosen["genotype_hash"] and best["search"]["trial"] == chosen["trial"]
    assert best["answer"]["verdict"] == answer["verdict"]
    assert best["answer"]["over_joint"] == answer["over_joint"]

    res = _cli("status", sid, "--database-url", db_url)
    assert res.exit_code == 0, res.output
    assert f"answer     {answer['verdict']}" in res.output
    assert f"cost       {len(trained)} evaluations (candidate x seed)" in res.output
    out = tmp_path / "answer.json"
    res = _cli("export", sid, "-o", out, "--database-url", db_url)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text()) == best and f"recommended: {answer['verdict']}" in res.output
    assert _cli("validate", out).exit_code == 0
    res = _cli("plots", sid, "-o", tmp_path / "plots", "--database-url", db_url)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plots" / "finalists.png").stat().st_size > 1000


def test_data_where_no_module_helps_is_answered_not_recommended(ray_session, client, db_url, tmp_path):
    body = {**BODY, "search": {**BODY["search"], "budget": 12, "confirm": {"finalists": 3, "seeds": 5}}}
    sid = _run(client, db_url, tmp_path, fakes.no_gain, body)
    s = client.get(f"/searches/{sid}").json()
    assert s["status"] == "succeeded", s
    assert not s["answer"]["recommended"] and s["answer"]["module"] is None
    assert s["verdict"].startswith("no module beats Joint on 5 fresh seeds (")
    assert s["verdict"].endswith(": auxiliary learning is not recommended here")

    # /best and export give the module the verdict quotes, marked not recommended, with its figures
    best = client.get(f"/searches/{sid}/best").json()
    assert best["version"] == 2 and best["recommended"] is False
    assert best["answer"]["verdict"] == s["verdict"]
    quoted = s["answer"]["modules"][s["answer"]["quoted"]]
    assert parse_genotype(best).canonical_hash() == quoted["genotype_hash"]
    out = tmp_path / "quoted.json"
    res = _cli("export", sid, "-o", out, "--database-url", db_url)
    assert res.exit_code == 0, res.output
    assert f"NOT recommended: {s['verdict']}" in res.output


def test_a_database_from_before_seeds_still_reads(db_url):
    """A database at the schema before seeds and answers: migrated on start, its rows read as
    trained at the search's seed, and its search has no answer yet."""
    from alembic import command

    from auxnas.db.engine import make_engine
    from auxnas.db.migrate import alembic_config

    engine = make_engine(db_url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        config = json.dumps(support.tiny_search_config(seed=7).model_dump(mode="json"))
        conn.execute(
            text(
                "INSERT INTO searches (id, name, config, status, budget, launched_by, created_at, attempts, "
                "cancel_requested) VALUES (1, 'old', :c, 'succeeded', 6, 'cli', CURRENT_TIMESTAMP, 1, false)"
            ),
            {"c": config},
        )
        for index, kind, reward in ((0, "joint", 0.5), (1, "basic", 0.55)):
            conn.execute(
                text(
                    'INSERT INTO trials (search_id, "index", kind, status, phase, reward, metrics, seconds, '
                    "cpu_seconds, main_params, aux_params, attempts, created_at, genotype_hash) "
                    "VALUES (1, :i, :kind, 'succeeded', 'search', :r, '{}', 0, 0, 0, 0, 1, CURRENT_TIMESTAMP, :h)"
                ),
                {"i": index, "kind": kind, "r": reward, "h": None if kind == "joint" else "b"},
            )
    engine.dispose()
    with TestClient(create_app(db_url, api_token="")) as client:
        trials = client.get("/searches/1/trials").json()["items"]
        assert [t["seed"] for t in trials] == [7, 7]
        assert trials[1]["gain"] == pytest.approx(0.05) and trials[1]["seeds"] == [7]
        s = client.get("/searches/1").json()
        assert s["answer"] is None and s["verdict"] is None and s["progress"]["evaluations"] == 2


def test_auxnas_search_ends_with_the_answer(ray_session, db_url, tmp_path, monkeypatch):
    """A user's data where no module helps: `auxnas search` ends "not recommended", and its
    --output document says so too."""
    import yaml

    monkeypatch.setenv("AUXNAS_DATABASE_URL", db_url)
    config = tmp_path / "mine.yaml"
    config.write_text(
        yaml.safe_dump({**BODY, "search": {**BODY["search"], "confirm": {"finalists": 2, "seeds": 3}}})
    )
    out = tmp_path / "answer.json"
    res = _cli(
        "search",
        config,
        "--runs-dir",
        tmp_path / "runs",
        "--evaluator",
        "python:auxnas.evaluator.testing:no_gain",
        "-o",
        out,
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["version"] == 2 and doc["recommended"] is False
    line = next(x for x in res.output.splitlines() if x.startswith("answer: "))
    assert line == f"answer: {doc['answer']['verdict']}"
    assert line.startswith("answer: no module beats Joint on 3 fresh seeds (")
    assert "answer's genotype (not recommended) written to" in res.output
