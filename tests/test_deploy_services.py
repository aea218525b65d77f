"""The commands the image runs, started here as docker compose starts them: a Ray head with token
auth (`ray start --head ... --block`), the api (`auxnas serve --no-worker`, its command read from
docker-compose.yml) and `auxnas worker`, with RAY_ADDRESS set to that head and unset (a local
Ray). SQLite stands in for PostgreSQL. docker/healthcheck.py must call each of them healthy.

The head gets its own short temp dir, so that no other Ray on this machine finds it, and is
stopped by its own pid (never `ray stop`, which would stop every Ray of this user).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from tests import service_support as support

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
HEALTHCHECK = REPO / "docker" / "healthcheck.py"
API_TOKEN = "deploy-test-api-token"
RAY_TOKEN = "0123456789abcdef" * 4


def compose_command(service: str) -> list[str]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]["command"]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AUXNAS_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the venv's `ray`
    return {**env, **extra}


def healthy(command: list[str], command_file: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command_file.write_text("".join(a + "\n" for a in command))
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={**env, "AUXNAS_COMMAND_FILE": str(command_file)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_healthy(command, command_file, env, proc, log: Path, timeout: float, what: str) -> None:
    def ok() -> bool:
        assert proc.poll() is None, f"{what} exited: {log.read_text()[-3000:]}"
        return healthy(command, command_file, env).returncode == 0

    support.wait_until(ok, timeout, interval=1, what=what)


def terminate_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process we started (a new session: its group is ours alone), then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group outlived its leader


@pytest.fixture(scope="module")
def ray_head():
    """A token-protected Ray head as the compose `ray-head` runs it; yields (address, env)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="axh", dir="/tmp"))  # short: Ray's socket paths
    port = support.free_port()
    env = base_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=RAY_TOKEN)
    command = compose_command("ray-head")
    assert command[:3] == ["ray", "start", "--head"]
    command = [
        *[a for a in command if not a.startswith(("--port", "--object-store-memory"))],
        f"--port={port}",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--object-store-memory=200000000",
        f"--temp-dir={temp_dir}",
    ]
    log = temp_dir / "head.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_healthy(command, temp_dir / "command", env, proc, log, 120, "the Ray head to be healthy")
        yield f"127.0.0.1:{port}", env
    finally:
        terminate_group(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The compose `api` command on a free port against a SQLite file; yields (base url, db url)."""
    tmp = tmp_path_factory.mktemp("api")
    db_url = f"sqlite:///{tmp / 'auxnas.db'}"
    port = support.free_port()
    command = compose_command("api")
    assert command[:3] == ["auxnas", "serve", "--no-worker"]
    command = [*command[: command.index("--host")], "--host", "127.0.0.1", "--port", str(port)]
    env = base_env(AUXNAS_DATABASE_URL=db_url, AUXNAS_API_TOKEN=API_TOKEN, AUXNAS_DATA_DIR=str(tmp / "runs"))
    log = tmp / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "auxnas.cli", *command[1:]],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(command, tmp / "command", env, proc, log, 90, "the api to be healthy")
        yield f"http://127.0.0.1:{port}", db_url
    finally:
        terminate_group(proc)


def tiny_search(name: str) -> dict:
    return {
        "name": name,
        "tasks": ["segmentation", "depth"],
        "model": {"num_aux_inputs": 2},
        "search": {"strategy": "random", "budget": 3, "parallel_trials": 2, "early_stop": False},
        "controller": {"episodes_per_update": 2},
    }


def submit(base: str, name: str) -> int:
    r = httpx.post(
        f"{base}/searches",
        json=tiny_search(name),
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def run_worker_until_done(base: str, sid: int, env: dict[str, str], tmp: Path) -> str:
    """Run the compose `worker` command until search `sid` is finished; returns its log."""
    command = compose_command("worker")
    assert command == ["auxnas", "worker"]
    args = [
        *command[1:],
        "--poll",
        "0.3",
        "--data-dir",
        str(tmp / "runs"),
        "--evaluator",  # instant stand-in evaluations, run as Ray tasks like real ones
        "python:tests.service_support:fast_evaluate",
    ]
    log = tmp / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "auxnas.cli", *args],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    try:

        def finished() -> bool:
            assert proc.poll() is None, f"the worker exited: {log.read_text()[-3000:]}"
            status = httpx.get(f"{base}/searches/{sid}", headers=auth, timeout=10).json()["status"]
            return status not in ("queued", "running")

        support.wait_until(finished, 240, interval=1, what=f"the worker to finish search {sid}")
        if "RAY_ADDRESS" in env:
            # the worker container's healthcheck: its Ray cluster answers
            check = healthy(command, tmp / "command", env)
            assert check.returncode == 0, check.stderr
    finally:
        terminate_group(proc, timeout=60)
    search = httpx.get(f"{base}/searches/{sid}", headers=auth, timeout=10).json()
    text = log.read_text()
    assert search["status"] == "succeeded", (search.get("error"), text[-3000:])
    assert search["progress"]["evaluated"] == 3
    return text


def test_api_answers_healthz_openly_and_everything_else_with_the_token(api):
    base, _ = api
    assert httpx.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    assert httpx.get(f"{base}/searches", timeout=10).status_code == 401
    wrong = httpx.get(f"{base}/searches", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    right = httpx.get(f"{base}/searches", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
    assert right.status_code == 200


def test_worker_with_ray_address_runs_searches_on_that_cluster(api, ray_head, tmp_path):
    base, db_url = api
    address, head_env = ray_head
    sid = submit(base, "on-the-head")
    env = {**head_env, "RAY_ADDRESS": address, "AUXNAS_DATABASE_URL": db_url}
    log = run_worker_until_done(base, sid, env, tmp_path)
    assert f"on Ray {address}" in log


def test_the_cluster_refuses_a_wrong_token(ray_head, tmp_path):
    """What keeps strangers off the head: the worker's healthcheck (`ray status`) fails without
    the cluster's token, and passes with it."""
    address, head_env = ray_head
    env = {**head_env, "RAY_ADDRESS": address}
    assert healthy(["auxnas", "worker"], tmp_path / "command", env).returncode == 0
    wrong = healthy(["auxnas", "worker"], tmp_path / "command", {**env, "RAY_AUTH_TOKEN": "f" * 64})
    assert wrong.returncode == 1 and f"ray status --address {address}" in wrong.stderr


def test_worker_without_ray_address_starts_its_own_ray(api, tmp_path):
    base, db_url = api
    sid = submit(base, "local-ray")
    log = run_worker_until_done(base, sid, base_env(AUXNAS_DATABASE_URL=db_url), tmp_path)
    assert "on Ray local" in log
