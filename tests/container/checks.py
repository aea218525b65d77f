"""What the smoke test asks of the running stack, over its REST API as a user would: the open
/healthz, the token, a tiny real search to `succeeded` with its genotype exported, and that
search surviving a worker container killed in the middle of it."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import httpx

from tests.container.engine import Compose, SmokeFailure, podman

FINAL = {"succeeded", "failed", "pruned", "cached"}
# the columns of a finished trial that must survive the worker's death unchanged
KEPT = ("kind", "status", "tokens", "genotype_hash", "reward", "seconds", "attempts", "finished_at")


def tiny_search() -> dict:
    """A real search (PPO controller, real training) on the built-in synthetic scenes, small
    enough for two CPU cores: about 2 s per candidate, 6 candidates after the 2 baselines, one
    at a time, so that the worker can be killed with trials done and trials to go."""
    return {
        "name": "compose-smoke",
        "seed": 0,
        "tasks": ["segmentation", "depth"],
        "data": {"name": "synthetic", "num_images": 16, "num_test_images": 4, "resolution": 32},
        "model": {"encoder": "tiny", "num_aux_inputs": 2, "aux_channels": 8},
        "train": {"steps": 200, "batch_size": 4, "eval_batch_size": 8},
        "resources": {"num_gpus": 0, "num_cpus": 1},
        "search": {"strategy": "ppo", "budget": 6, "parallel_trials": 1, "early_stop": False},
        "controller": {"episodes_per_update": 2},
    }


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SmokeFailure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.auth = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> dict:
        response = self.http.get(path, headers=self.auth)
        if response.status_code != 200:
            raise SmokeFailure(f"GET {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def search(self, sid: int) -> dict:
        return self.get(f"/searches/{sid}")

    def trials(self, sid: int) -> list[dict]:
        return self.get(f"/searches/{sid}/trials?limit=1000")["items"]


def check_open_healthz_and_token(api: Api) -> str:
    health = api.http.get("/healthz")
    if health.status_code != 200 or health.json() != {"status": "ok"}:
        raise SmokeFailure(f"/healthz: {health.status_code} {health.text[:200]}")
    anonymous = api.http.get("/searches").status_code
    if anonymous != 401:
        raise SmokeFailure(f"GET /searches without the token: {anonymous}, expected 401")
    api.get("/searches")  # 200 with it
    return "/healthz 200 without the token; /searches 401 without it, 200 with it"


def submit(api: Api, config: dict) -> int:
    response = api.http.post("/searches", json=config, headers=api.auth)
    if response.status_code != 201:
        raise SmokeFailure(f"POST /searches: {response.status_code} {response.text[:300]}")
    return response.json()["id"]


def wait_for_candidate(api: Api, sid: int, timeout: float = 300) -> dict[int, dict]:
    """Waits until a candidate trial has finished while the search runs on; returns the finished
    trials by index."""

    def one_done() -> bool:
        status = api.search(sid)["status"]
        if status != "running" and status != "queued":
            raise SmokeFailure(f"search {sid} ended ({status}) before the worker could be killed")
        return any(t["kind"] == "candidate" and t["status"] in FINAL for t in api.trials(sid))

    wait_for(one_done, timeout, f"a finished candidate of search {sid}", interval=0.5)
    return {t["index"]: t for t in api.trials(sid) if t["status"] in FINAL}


def restarts(container: str) -> int:
    return int(podman("inspect", "--format", "{{.RestartCount}}", container).stdout.strip() or 0)


def kill_worker(compose: Compose) -> tuple[str, int]:
    """SIGKILL to the worker container's first process, from the host: the container dies as in
    a crash or an out-of-memory kill, so its restart policy applies (`kill` through the engine
    counts as a user's stop, which `unless-stopped` respects)."""
    container = compose.container("worker")
    before = restarts(container)
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", container).stdout.strip())
    podman("exec", container, "true")  # still running at the moment of the kill
    os.kill(pid, signal.SIGKILL)
    return container, before


def wait_restarted(container: str, before: int, timeout: float = 120) -> None:
    def again() -> bool:
        running = podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        return restarts(container) > before and running == "true"

    wait_for(again, timeout, f"{container} to be restarted by its restart policy")


def wait_succeeded(api: Api, sid: int, timeout: float = 400) -> dict:
    def ended() -> bool:
        return api.search(sid)["status"] not in ("queued", "running")

    wait_for(ended, timeout, f"search {sid} to end", interval=2)
    search = api.search(sid)
    if search["status"] != "succeeded":
        raise SmokeFailure(f"search {sid} ended {search['status']}: {search.get('error')}")
    return search


def compare_trials(before: dict[int, dict], after: list[dict], search: dict) -> str:
    """Nothing lost, nothing twice: one row per index 0..n-1, all finished, the rows finished
    before the kill unchanged, the budget spent exactly, and a second worker claim."""
    indices = sorted(t["index"] for t in after)
    if indices != list(range(len(after))):
        raise SmokeFailure(f"trial indices not 0..{len(after) - 1} once each: {indices}")
    unfinished = [t["index"] for t in after if t["status"] not in FINAL]
    if unfinished:
        raise SmokeFailure(f"trials left unfinished: {unfinished}")
    by_index = {t["index"]: t for t in after}
    for index, old in before.items():
        changed = [k for k in KEPT if by_index[index][k] != old[k]]
        if changed:
            raise SmokeFailure(f"trial {index} finished before the kill but changed after: {changed}")
    progress, budget = search["progress"], search["config"]["search"]["budget"]
    if progress["evaluated"] != budget:
        raise SmokeFailure(f"{progress['evaluated']} candidates evaluated, budget {budget}")
    if search["worker"]["attempts"] < 2:
        raise SmokeFailure(f"the search was claimed {search['worker']['attempts']} time(s), expected 2")
    rerun = [t["index"] for t in after if t["attempts"] > 1]
    return (
        f"{len(after)} trials, indices 0..{len(after) - 1} once each; the {len(before)} finished before "
        f"the kill unchanged; {budget} candidates evaluated; claimed twice; run again: {rerun or 'none'}"
    )


def count_rows_in_database(compose: Compose, sid: int) -> tuple[int, int]:
    """(rows, distinct indices) of the search's trials, read in PostgreSQL itself."""
    query = f"SELECT count(*), count(DISTINCT index) FROM trials WHERE search_id = {int(sid)}"
    out = podman(
        "exec", compose.container("postgres"), "psql", "-U", "auxnas", "-d", "auxnas", "-tAc", query
    ).stdout
    rows, distinct = out.strip().split("|")
    return int(rows), int(distinct)


def export_genotype(api: Api, compose: Compose, sid: int) -> str:
    """GET /searches/{id}/best, checked by `auxnas validate` inside the api container."""
    best = api.get(f"/searches/{sid}/best")
    document = json.dumps(best)
    script = "cat > /tmp/best.json && auxnas validate /tmp/best.json"
    result = podman("exec", "-i", compose.container("api"), "sh", "-c", script, stdin=document, check=False)
    if result.returncode != 0:
        raise SmokeFailure(f"auxnas validate on /best: {result.stdout}{result.stderr}")
    return result.stdout.strip().splitlines()[-1]
