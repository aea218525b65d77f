"""Container smoke test (`make test-compose`): the image and the compose stack, run for real.

Builds the project image from docker/Dockerfile through docker-compose.yml, brings the stack up
with the CPU override (the README's CPU command: docker/compose.cpu.yml only drops the GPU
reservation) in its healthcheck-gated order, then over REST: /healthz, 401 without the token, a
tiny real search to `succeeded` whose worker container is killed in the middle (the restart
policy brings it back and the search resumes, nothing lost or run twice), and its genotype
exported and validated. The stack comes down at the end, on failure too.

Engine: podman with podman-compose (docs/deploy.md says how to install them). Base images are
pulled where a registry answers, else stand-ins are built (base_images.py). Each step prints its
time; the last line says PASSED or FAILED, and the exit code follows it.
    .venv/bin/python -m tests.container.smoke
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from tests.container import base_images, checks, stack
from tests.container.engine import REPO, Compose, SmokeFailure, podman, require_tools

PROJECT = "auxnas-smoke"
# the README's CPU command: docker compose -f docker-compose.yml -f docker/compose.cpu.yml up -d --build
COMPOSE_FILES = ["docker-compose.yml", "docker/compose.cpu.yml"]
SECRETS = ("AUXNAS_API_TOKEN", "POSTGRES_PASSWORD", "RAY_AUTH_TOKEN")
MIN_FREE_GB = 6.0
# a machine with 2 cores and 24 GiB: a small object store for the Ray head (.env.example)
SMALL_RAY = {"RAY_SHM_SIZE": "2gb", "RAY_OBJECT_STORE_MEMORY": "500000000"}


class Steps:
    """Prints each step with the time since the start and its own duration."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s]   {text}", flush=True)

    def __call__(self, title: str, fn, *args):
        began = time.monotonic()
        print(f"[{self.elapsed():6.1f} s] {title}", flush=True)
        result = fn(*args)
        detail = f": {result}" if isinstance(result, str) else ""
        self.say(f"done in {time.monotonic() - began:.1f} s{detail}")
        return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_env_file(path: Path, datasets: Path, port: int) -> dict[str, str]:
    """.env.example with its secrets filled in, as the README has users do, the API on a free
    loopback port, an empty datasets folder and a small Ray object store."""
    values = {name: secrets.token_hex(32) for name in SECRETS}
    values |= {"AUXNAS_API_PORT": f"127.0.0.1:{port}", "AUXNAS_DATASETS_DIR": str(datasets)} | SMALL_RAY
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        key = line.partition("=")[0]
        lines.append(f"{key}={values[key]}" if key in values and not line.startswith("#") else line)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return values


def check_disk() -> str:
    """Free space where the images go (podman's graph root) and where the repository is."""
    root = Path(podman("info", "--format", "{{.Store.GraphRoot}}").stdout.strip())
    while not root.exists():
        root = root.parent
    lines = []
    for path in (REPO, root):
        free = shutil.disk_usage(path).free / 2**30
        lines.append(f"{path}: {free:.1f} GB free")
        if free < MIN_FREE_GB:
            raise SmokeFailure(f"{path}: {free:.1f} GB free, the images need {MIN_FREE_GB:.0f} GB")
    return "; ".join(lines)


def base_images_step(services: dict, log: Path, say) -> str:
    for name, recipe in (
        (base_images.dockerfile_base(), "torch.Containerfile"),
        (services["postgres"]["image"], "postgres.Containerfile"),
    ):
        say(base_images.ensure(name, recipe, log))
    return "ready"


def search_with_worker_killed(api: checks.Api, compose: Compose, steps: Steps) -> int:
    sid = steps("submit a tiny real search", checks.submit, api, checks.tiny_search())
    before = steps("wait for its first finished candidate", checks.wait_for_candidate, api, sid)
    container, restarts = steps("kill the worker container (SIGKILL)", checks.kill_worker, compose)
    steps("wait for the restart policy to bring it back", checks.wait_restarted, container, restarts)
    services = compose.config()["services"]
    steps("worker healthy again", stack.wait_healthy, compose, "worker", services["worker"]["healthcheck"])
    search = steps("wait for the search to succeed", checks.wait_succeeded, api, sid)
    steps("compare its trials", checks.compare_trials, before, api.trials(sid), search)
    rows, distinct = checks.count_rows_in_database(compose, sid)
    if rows != distinct or rows != len(api.trials(sid)):
        raise SmokeFailure(f"PostgreSQL holds {rows} trial rows, {distinct} distinct indices")
    steps.say(f"PostgreSQL: {rows} trial rows, {distinct} distinct indices")
    return sid


def run_checks(compose: Compose, steps: Steps) -> None:
    steps("engine", require_tools)
    steps("disk", check_disk)
    steps("remove what an interrupted run left", stack.down, compose)
    services = compose.config()["services"]
    steps("base images", base_images_step, services, compose.log, steps.say)
    steps("build the project image (compose build)", compose, "build", "ray-head")
    steps("start the stack in healthcheck order", stack.up_in_order, compose, services, steps.say)
    env = dict(line.split("=", 1) for line in compose.env_file.read_text().splitlines() if "=" in line)
    api = checks.Api(f"http://{env['AUXNAS_API_PORT']}", env["AUXNAS_API_TOKEN"])
    steps("/healthz and the token", checks.check_open_healthz_and_token, api)
    sid = search_with_worker_killed(api, compose, steps)
    steps("export its genotype (GET /searches/{id}/best)", checks.export_genotype, api, compose, sid)


def tear_down(compose: Compose, steps: Steps) -> None:
    steps("bring the stack down (volumes too)", stack.down, compose)
    steps("remove dangling images", podman, "image", "prune", "--force")


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the stack comes down
    steps = Steps()
    work = REPO / "build" / "container" / "smoke"
    shutil.rmtree(work, ignore_errors=True)
    (work / "datasets").mkdir(parents=True)
    print(f"container smoke test; load average {os.getloadavg()[0]:.2f}, logs in {work}", flush=True)
    write_env_file(work / "env", work / "datasets", free_port())
    compose = Compose(PROJECT, COMPOSE_FILES, work / "env", work / "engine.log")
    passed = False
    try:
        run_checks(compose, steps)
        passed = True
    except Exception as e:  # noqa: BLE001 - reported, then the stack comes down
        detail = str(e) if isinstance(e, SmokeFailure) else traceback.format_exc()
        print(f"FAILED: {detail}", flush=True)
        stack.print_logs(compose, ("postgres", "ray-head", "api", "worker"))
    finally:
        tear_down(compose, steps)
    print(f"container smoke test {'PASSED' if passed else 'FAILED'} in {steps.elapsed():.0f} s")
    print(f"smoke: {int(passed)} passed, {int(not passed)} failed", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
