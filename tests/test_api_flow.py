"""The whole REST flow in-process: POST a search, a worker runs it with a fast fake evaluator,
watch it, page through its trials, get and export its best genotype, cancel a running one."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from auxnas.api.app import create_app
from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.db.storage import SqlStorage
from auxnas.search_space import parse_genotype
from auxnas.worker.loop import Worker
from tests import service_support as support

db_url = support.db_url

TINY = {
    "name": "flow",
    "tasks": ["segmentation", "depth"],
    "model": {"num_aux_inputs": 2},
    # the search phase alone, no confirmation (test_answer_service.py serves a confirmed answer)
    "search": {
        "strategy": "random",
        "budget": 6,
        "parallel_trials": 2,
        "early_stop": False,
        "racing": {"rungs": [1]},
        "confirm": {"seeds": 0},
    },
    "controller": {"episodes_per_update": 3},
}


@pytest.fixture
def client(db_url):
    with TestClient(create_app(db_url, api_token="")) as c:
        yield c


def make_worker(db_url, tmp_path, evaluate_fn) -> Worker:
    return Worker(
        SqlStorage(db_url),
        data_dir=tmp_path / "runs",
        lease_seconds=10,
        poll_seconds=0.1,
        evaluate_fn=evaluate_fn,
    )


def test_rest_flow_from_post_to_best_genotype(ray_session, client, db_url, tmp_path):
    r = client.post("/searches", json=TINY)
    assert r.status_code == 201, r.text
    created = r.json()
    sid = created["id"]
    assert r.headers["location"] == f"/searches/{sid}"
    assert created["status"] == "queued" and created["progress"]["budget"] == 6
    assert created["config"]["search"]["budget"] == 6 and created["config"]["train"]["steps"] == 300
    assert client.get(f"/searches/{sid}/best").status_code == 404  # nothing scored yet

    worker = make_worker(db_url, tmp_path, support.fast_evaluate)
    assert worker.run_forever(once=True) == 1

    s = client.get(f"/searches/{sid}").json()
    assert s["status"] == "succeeded", s
    assert s["progress"]["evaluated"] == 6 and s["progress"]["fraction"] == 1.0
    assert s["progress"]["trials"] == 2 + 6 + s["progress"]["cached"]
    assert s["baselines"]["joint"] == 0.25 and s["baselines"]["basic"] is not None
    assert s["started_at"] and s["finished_at"] and s["worker"]["attempts"] == 1
    assert s["checkpoint_dir"].startswith(str(tmp_path / "runs"))

    listed = client.get("/searches").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == sid
    assert "config" not in listed["items"][0]

    everything = client.get(f"/searches/{sid}/trials", params={"limit": 1000}).json()
    trials = everything["items"]
    assert everything["total"] == len(trials) == s["progress"]["trials"]
    assert [t["index"] for t in trials] == list(range(len(trials)))
    assert trials[0]["kind"] == "joint" and trials[0]["genotype"] is None
    assert trials[1]["kind"] == "basic" and trials[1]["tokens"]
    paged = []
    for offset in range(0, len(trials), 3):
        page = client.get(f"/searches/{sid}/trials", params={"offset": offset, "limit": 3}).json()
        assert page["offset"] == offset and page["limit"] == 3 and page["total"] == len(trials)
        paged += page["items"]
    assert paged == trials

    best = client.get(f"/searches/{sid}/best").json()
    genotype = parse_genotype(best)  # a valid genotype JSON v2: the unconfirmed answer's candidate
    best_trial = max(
        (t for t in trials if t["kind"] == "candidate" and t["status"] == "succeeded"),
        key=lambda t: t["reward"],
    )
    assert best["version"] == 2 and best["recommended"] is False
    assert best["reward"] == best_trial["reward"] and s["best_reward"] >= best_trial["reward"]
    gain = best_trial["reward"] - s["baselines"]["joint"]
    assert best_trial["gain"] == pytest.approx(gain) and best_trial["seeds"] == [0]
    assert s["verdict"] == s["answer"]["verdict"] == best["answer"]["verdict"]
    assert s["verdict"].startswith("unconfirmed (confirm_seeds: 0): best candidate ")
    assert f"{gain:+.3f} over Joint on its 1 search seed; not a recommendation" in s["verdict"]
    assert list(genotype.tokens) == best_trial["tokens"]
    assert best["search"]["id"] == sid and best["search"]["name"] == "flow"

    # the controller's learning curve, one row per iteration
    iterations = client.get(f"/searches/{sid}/iterations").json()
    assert [it["index"] for it in iterations] == list(range(len(iterations))) and iterations
    assert sum(it["num_episodes"] for it in iterations) == sum(1 for t in trials if t["kind"] == "candidate")
    assert client.get("/searches/999999/iterations").status_code == 404

    # the CLI reads the same database
    _register_commands()
    out = tmp_path / "best.json"
    res = CliRunner().invoke(cli_app, ["export", str(sid), "-o", str(out), "--database-url", db_url])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text()) == best
    res = CliRunner().invoke(cli_app, ["status", str(sid), "--database-url", db_url, "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["status"] == "succeeded"

    r = client.post(f"/searches/{sid}/cancel")
    assert r.status_code == 409 and "already succeeded" in r.json()["detail"]


def test_cancel_stops_a_running_search_and_its_evaluations(ray_session, client, db_url, tmp_path):
    body = {**TINY, "name": "to-cancel", "search": {**TINY["search"], "parallel_trials": 1}}
    sid = client.post("/searches", json=body).json()["id"]
    worker = make_worker(db_url, tmp_path, support.very_slow_evaluate)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (worker.run_forever(once=True), done.set()), daemon=True)
    thread.start()
    cpus = ray_session.cluster_resources()["CPU"]
    # running, with its first (hour-long) evaluation holding a CPU
    support.wait_until(
        lambda: (
            client.get(f"/searches/{sid}").json()["status"] == "running"
            and ray_session.available_resources().get("CPU", 0) <= cpus - 1
        ),
        30,
        what="the search to be running an evaluation",
    )
    # what runs now is visible while it runs (the driver marks it at its next poll)
    support.wait_until(
        lambda: client.get(f"/searches/{sid}/trials", params={"status": "running"}).json()["total"] == 1,
        10,
        what="the running trial to show",
    )
    running = client.get(f"/searches/{sid}/trials", params={"status": "running"}).json()
    assert running["total"] == 1 and running["items"][0]["kind"] == "joint"
    assert running["items"][0]["attempts"] == 1 and running["items"][0]["started_at"]
    assert client.get(f"/searches/{sid}").json()["progress"]["running"] == 1
    r = client.post(f"/searches/{sid}/cancel")
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    # events, not stopwatches: each wait is far shorter than the evaluation it must not wait for
    support.wait_until(
        lambda: client.get(f"/searches/{sid}").json()["status"] == "cancelled", 60, what="cancel"
    )
    assert done.wait(60), "the worker did not return after the cancel"
    # the running evaluation was cancelled too: its CPU is free again long before its hour
    support.wait_until(
        lambda: ray_session.available_resources().get("CPU", 0) >= cpus, 60, what="CPU release"
    )
    s = client.get(f"/searches/{sid}").json()
    # the baselines were decided but never finished: back to waiting, none running
    assert s["progress"]["trials"] == 2 and s["progress"]["running"] == 0 and s["finished_at"]
    assert client.get(f"/searches/{sid}/trials", params={"status": "running"}).json()["total"] == 0
    # cancelling again is harmless
    assert client.post(f"/searches/{sid}/cancel").json()["status"] == "cancelled"


def test_cancel_of_a_queued_search_needs_no_worker(client):
    sid = client.post("/searches", json=TINY).json()["id"]
    r = client.post(f"/searches/{sid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.get("/searches", params={"status": "cancelled"}).json()["total"] == 1
