"""One real end-to-end run: `auxnas serve` (uvicorn + its embedded worker) on a free port, a PPO
search with the real evaluator on a tiny synthetic dataset on the CPU, driven over HTTP with
auth on, and the best genotype fetched and checked."""

from __future__ import annotations

import signal

import httpx
import pytest

from auxnas.search_space import parse_genotype
from tests import service_support as support


@pytest.fixture
def db_url(tmp_path):
    """The default deployment: SQLite. (PostgreSQL runs the same worker and server code in
    test_worker_processes.py and in the in-process API tests.)"""
    return f"sqlite:///{tmp_path / 'auxnas.db'}"


pytestmark = pytest.mark.slow

TOKEN = "e2e-token"


def tiny_real_search(tmp_path) -> dict:
    return {
        "name": "e2e-synthetic-tiny",
        "seed": 0,
        "tasks": ["segmentation", "depth"],
        "data": {
            "name": "synthetic",
            "root": "data",  # inside AUXNAS_DATA_DIR, as a REST caller must
            "num_images": 16,
            "num_test_images": 4,
            "resolution": 32,
        },
        "model": {"encoder": "tiny", "num_aux_inputs": 2, "aux_channels": 8},
        "train": {"steps": 6, "batch_size": 4, "eval_batch_size": 8},
        "search": {"strategy": "ppo", "budget": 3, "parallel_trials": 2, "early_stop": False},
        "controller": {"episodes_per_update": 3},
    }


def test_serve_with_embedded_worker_runs_a_real_search(ray_session, db_url, tmp_path):
    port = support.free_port()
    env = support.auxnas_env(
        db_url,
        AUXNAS_API_TOKEN=TOKEN,
        AUXNAS_DATA_DIR=str(tmp_path / "runs"),
        RAY_ADDRESS=ray_session.get_runtime_context().gcs_address,
    )
    server = support.start_auxnas(
        ["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "serve.log"
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def up() -> bool:
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.TransportError:
                    assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
                    return False

            support.wait_until(up, 60, what="the API to answer")
            assert http.post("/searches", json=tiny_real_search(tmp_path)).status_code == 401
            r = http.post("/searches", json=tiny_real_search(tmp_path), headers=auth)
            assert r.status_code == 201, r.text
            sid = r.json()["id"]

            def finished() -> bool:
                return http.get(f"/searches/{sid}", headers=auth).json()["status"] not in (
                    "queued",
                    "running",
                )

            support.wait_until(finished, 300, interval=1, what="the search to finish")
            s = http.get(f"/searches/{sid}", headers=auth).json()
            assert s["status"] == "succeeded", (s["error"], (tmp_path / "serve.log").read_text()[-3000:])
            assert s["progress"]["evaluated"] == 3 and s["worker"]["attempts"] == 1
            assert s["baselines"]["joint"] is not None and s["baselines"]["basic"] is not None

            trials = http.get(f"/searches/{sid}/trials", params={"limit": 100}, headers=auth).json()["items"]
            assert [t["kind"] for t in trials[:2]] == ["joint", "basic"]
            for t in trials:
                assert t["status"] in ("succeeded", "cached"), t
                # real training: the evaluator's metrics, parameter counts and time
                assert "miou" in t["metrics"]["segmentation"] and "delta1" in t["metrics"]["depth"]
                assert t["main_params"] > 0 and 0.0 <= t["reward"] <= 1.0
                assert t["cached"] or t["seconds"] > 0
            assert all(t["aux_params"] > 0 for t in trials if t["kind"] != "joint")

            best = http.get(f"/searches/{sid}/best", headers=auth).json()
            parse_genotype(best)
            assert best["reward"] == s["best_reward"] and best["search"]["id"] == sid
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        finally:
            support.stop(server)
    assert server.returncode is not None
