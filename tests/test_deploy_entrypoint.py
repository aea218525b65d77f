"""docker/entrypoint.sh and docker/healthcheck.py, run here with stand-ins for `ray` and `auxnas`
on PATH (the real services are started in tests/test_deploy_services.py)."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
HEALTHCHECK = REPO / "docker" / "healthcheck.py"

# a stand-in command: logs its name, argv (one line, NUL-separated args) and exits with
# $FAKE_<NAME>_EXIT (default 0)
FAKE = """#!/bin/sh
name=$(basename "$0")
{{ printf '%s' "$name"; for a in "$@"; do printf '\\0%s' "$a"; done; printf '\\n'; }} >> "{log}"
eval "exit \\${{FAKE_$(echo "$name" | tr a-z A-Z)_EXIT:-0}}"
"""


@pytest.fixture
def fakes(tmp_path):
    """A PATH whose `ray` and `auxnas` only log their calls; returns (env, calls())."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("ray", "auxnas"):
        path = bin_dir / name
        path.write_text(FAKE.format(log=log))
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AUXNAS_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["AUXNAS_COMMAND_FILE"] = str(tmp_path / "command")

    def calls() -> list[list[str]]:
        if not log.exists():
            return []
        return [line.split("\0") for line in log.read_text().splitlines()]

    return env, calls


def run_entrypoint(env, *argv: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *argv], env={**env, **extra}, capture_output=True, text=True, timeout=30
    )


def test_worker_with_a_ray_address_joins_the_cluster_first_without_gpus_or_cpus(fakes):
    env, calls = fakes
    result = run_entrypoint(env, "auxnas", "worker", RAY_ADDRESS="ray-head:6379")
    assert result.returncode == 0, result.stderr
    join, run = calls()
    assert join[:2] == ["ray", "start"]
    assert "--address=ray-head:6379" in join
    assert "--num-gpus=0" in join and "--num-cpus=0" in join
    assert not any(a.startswith("--node-ip-address") for a in join)
    assert "--block" not in join  # it must return so that the worker starts
    assert run == ["auxnas", "worker"]
    assert Path(env["AUXNAS_COMMAND_FILE"]).read_text().splitlines() == ["auxnas", "worker"]


def test_node_ip_and_cpus_can_be_given_for_the_worker_node(fakes):
    env, calls = fakes
    result = run_entrypoint(
        env,
        "auxnas",
        "worker",
        RAY_ADDRESS="10.0.0.5:6379",
        AUXNAS_NODE_IP="10.0.0.5",
        AUXNAS_WORKER_NODE_CPUS="2",
    )
    assert result.returncode == 0, result.stderr
    join = calls()[0]
    assert "--node-ip-address=10.0.0.5" in join and "--num-cpus=2" in join


@pytest.mark.parametrize("address", [None, "", "ray://head:10001"])
def test_worker_without_a_cluster_to_join_starts_directly(fakes, address):
    env, calls = fakes
    extra = {} if address is None else {"RAY_ADDRESS": address}
    result = run_entrypoint(env, "auxnas", "worker", "--poll", "1", **extra)
    assert result.returncode == 0, result.stderr
    assert calls() == [["auxnas", "worker", "--poll", "1"]]


def test_other_commands_run_unchanged_and_their_exit_code_is_the_containers(fakes):
    env, calls = fakes
    argv = ["auxnas", "serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"]
    result = run_entrypoint(env, *argv, RAY_ADDRESS="ray-head:6379", FAKE_AUXNAS_EXIT="3")
    assert result.returncode == 3
    assert calls() == [argv]  # no Ray node for the api
    assert Path(env["AUXNAS_COMMAND_FILE"]).read_text().splitlines() == argv
    result = run_entrypoint(env, "ray", "start", "--head", "--port=6379", "--block")
    assert result.returncode == 0 and calls()[-1] == ["ray", "start", "--head", "--port=6379", "--block"]


def test_worker_does_not_start_when_joining_the_cluster_fails(fakes):
    env, calls = fakes
    result = run_entrypoint(env, "auxnas", "worker", RAY_ADDRESS="ray-head:6379", FAKE_RAY_EXIT="1")
    assert result.returncode != 0
    assert [c[0] for c in calls()] == ["ray"]


# ---------------------------------------------------------------- healthcheck.py


def run_healthcheck(env, command: list[str] | None, **extra: str) -> subprocess.CompletedProcess:
    if command is not None:
        Path(env["AUXNAS_COMMAND_FILE"]).write_text("".join(a + "\n" for a in command))
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env={**env, **extra}, capture_output=True, text=True, timeout=60
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b'{"status": "ok"}')

    def do_GET(self):  # noqa: N802
        code, body = self.answer if self.path == "/healthz" else (404, b"{}")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Handler.answer = (200, b'{"status": "ok"}')


def test_api_is_healthy_when_healthz_on_its_port_says_ok(fakes, http_server):
    env, _ = fakes
    port = str(http_server.server_address[1])
    result = run_healthcheck(env, ["auxnas", "serve", "--host", "0.0.0.0", "--port", port])
    assert result.returncode == 0, result.stderr
    assert run_healthcheck(env, ["auxnas", "serve", f"--port={port}"]).returncode == 0

    _Handler.answer = (200, json.dumps({"status": "starting"}).encode())
    result = run_healthcheck(env, None)
    assert result.returncode == 1 and "unexpected answer" in result.stderr
    _Handler.answer = (503, b'{"status": "ok"}')
    assert run_healthcheck(env, None).returncode == 1


def test_api_is_unhealthy_when_nothing_listens(fakes):
    env, _ = fakes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = run_healthcheck(env, ["auxnas", "serve", "--port", str(port)])
    assert result.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz" in result.stderr


@pytest.mark.parametrize(
    ("command", "env_extra", "address"),
    [
        (["ray", "start", "--head", "--port=6380", "--block"], {}, "127.0.0.1:6380"),
        (["ray", "start", "--head", "--block"], {}, "127.0.0.1:6379"),
        (["ray", "start", "--head", "--node-ip-address=10.0.0.9", "--block"], {}, "10.0.0.9:6379"),
        (["ray", "start", "--address=10.0.0.1:6379", "--block"], {}, "10.0.0.1:6379"),
        (["auxnas", "worker"], {"RAY_ADDRESS": "ray-head:6379"}, "ray-head:6379"),
        (["auxnas", "worker"], {}, "auto"),
    ],
)
def test_ray_nodes_and_the_worker_are_healthy_when_ray_status_reaches_their_cluster(
    fakes, command, env_extra, address
):
    env, calls = fakes
    result = run_healthcheck(env, command, **env_extra)
    assert result.returncode == 0, result.stderr
    assert calls() == [["ray", "status", "--address", address]]
    result = run_healthcheck(env, command, FAKE_RAY_EXIT="1", **env_extra)
    assert result.returncode == 1 and f"ray status --address {address}: exit 1" in result.stderr


def test_other_commands_are_healthy_while_they_run(fakes):
    env, calls = fakes
    assert run_healthcheck(env, ["auxnas", "search", "configs/x.yaml"]).returncode == 0
    assert calls() == []


def test_the_entrypoint_and_healthcheck_agree_on_the_command_file(fakes, http_server):
    """What the entrypoint records is what the healthcheck reads."""
    env, _ = fakes
    port = str(http_server.server_address[1])
    assert run_entrypoint(env, "auxnas", "serve", "--port", port).returncode == 0
    assert run_healthcheck(env, None).returncode == 0
