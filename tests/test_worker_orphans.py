"""No orphaned processes: the embedded worker dies with a SIGKILLed `auxnas serve`, and a SIGKILLed
worker's local Ray (raylet, gcs_server and the agents the raylet starts) goes with it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests import service_support as support


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'auxnas.db'}"  # the database plays no part in what is tested


storage = support.storage

pytestmark = pytest.mark.slow


def _psutil():
    from auxnas.worker.ray_reaper import import_psutil

    return import_psutil()


def _alive(proc) -> bool:  # noqa: ANN001
    psutil = _psutil()
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _log_says(path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


def test_sigkill_of_serve_ends_its_embedded_worker(ray_session, db_url, tmp_path):
    psutil = _psutil()
    workers = []
    env = support.auxnas_env(db_url, RAY_ADDRESS=ray_session.get_runtime_context().gcs_address)
    log = tmp_path / "serve.log"
    serve = support.start_auxnas(["serve", "--port", str(support.free_port())], env, log)
    try:
        support.wait_until(lambda: _log_says(log, "polling for searches"), 60, what="the embedded worker")
        workers = [p for p in psutil.Process(serve.pid).children() if "worker" in p.cmdline()]
        assert len(workers) == 1, [p.cmdline() for p in psutil.Process(serve.pid).children()]
        os.kill(serve.pid, signal.SIGKILL)
        serve.wait(10)
        support.wait_until(lambda: not _alive(workers[0]), 10, what="the embedded worker to exit")
    finally:
        support.stop(serve)
        for p in workers:
            if _alive(p):
                p.kill()  # only if the test failed: nothing it started outlives it


def test_sigkill_of_a_worker_leaves_no_ray_process_of_its_own(storage, db_url, tmp_path):
    ray_procs = []
    config = support.tiny_search_config(search={"strategy": "random", "budget": 6, "parallel_trials": 2})
    sid = storage.create_search(config)
    env = support.auxnas_env(db_url)
    env.pop("RAY_ADDRESS", None)  # a private local Ray, started by the worker
    log = tmp_path / "worker.log"
    args = ["worker", "--poll", "0.2", "--data-dir", str(tmp_path / "runs"), "--evaluator", "fake-sleep"]
    worker = support.start_auxnas(args, env, log)
    try:
        support.wait_until(lambda: storage.search_row(sid).status == "running", 60, what="a claim")
        support.wait_until(
            lambda: any("ray::" in " ".join(p.cmdline()) for p in _descendants(worker.pid)),
            30,
            what="Ray to run a trial",
        )
        time.sleep(1)  # the agents register after the raylet
        ray_procs = _descendants(worker.pid)
        names = {p.name() for p in ray_procs} | {" ".join(p.cmdline())[:40] for p in ray_procs}
        assert {"raylet", "gcs_server"} <= names, names
        assert any("DashboardAgent" in n for n in names), names
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        support.wait_until(
            lambda: not any(_alive(p) for p in ray_procs),
            15,
            what="every process of the dead worker's Ray to exit",
        )
    finally:
        support.stop(worker)
        for p in ray_procs:
            if _alive(p):
                p.kill()


def _descendants(pid: int) -> list:
    psutil = _psutil()
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
