"""Bringing the compose stack up in its healthcheck-gated order, and down again.

Docker Compose starts a service once the services it depends on (`condition: service_healthy`)
are healthy. podman 4.3 without systemd never runs healthchecks by itself and podman-compose then
ignores that condition, so this does what Docker does: it starts the services level by level
(each level's dependencies are in the levels before) and runs each container's healthcheck
itself (`podman healthcheck run`) until it passes."""

from __future__ import annotations

import re
import time

from tests.container.engine import Compose, SmokeFailure, podman, tail

POLL_SECONDS = 2.0


def start_levels(services: dict) -> list[list[str]]:
    """Services in start order: each level depends only on services of the levels before it."""
    done: set[str] = set()
    levels = []
    while len(done) < len(services):
        level = sorted(
            name
            for name, service in services.items()
            if name not in done and set(service.get("depends_on") or {}) <= done
        )
        if not level:
            raise SmokeFailure(f"dependency cycle among {sorted(set(services) - done)}")
        levels.append(level)
        done.update(level)
    return levels


def seconds(duration: str | int | float | None, default: float) -> float:
    """A compose duration (10s, 1m30s, 500ms) in seconds."""
    if duration is None:
        return default
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    return sum(float(n) * units[u] for n, u in parts)


def health_deadline(check: dict) -> float:
    """How long Docker gives a container to become healthy: its start period, then `retries`
    failed checks `interval` apart."""
    start = seconds(check.get("start_period"), 0)
    return start + seconds(check.get("interval"), 30) * int(check.get("retries", 3)) + 30


def state(container: str) -> str:
    return podman("inspect", "--format", "{{.State.Status}}", container, check=False).stdout.strip()


def wait_healthy(compose: Compose, service: str, check: dict) -> float:
    """Run the container's healthcheck until it passes; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + health_deadline(check)
    container = compose.container(service)
    while True:
        result = podman("healthcheck", "run", container, check=False)
        if result.returncode == 0:
            return time.monotonic() - started
        if state(container) in ("exited", "dead") or time.monotonic() > deadline:
            logs = podman("logs", "--tail", "30", container, check=False)
            raise SmokeFailure(
                f"{service} not healthy (state {state(container)}): {result.stdout.strip()}"
                f"{result.stderr.strip()}\n{tail(logs.stdout + logs.stderr)}"
            )
        time.sleep(POLL_SECONDS)


def up_in_order(compose: Compose, services: dict, report) -> None:
    """`up -d` level by level, each service gated on its healthcheck before the next level."""
    for level in start_levels(services):
        compose("up", "-d", "--no-build", *level)
        for service in level:
            took = wait_healthy(compose, service, services[service].get("healthcheck") or {})
            report(f"{service} healthy after {took:.0f} s")


def print_logs(compose: Compose, services: dict) -> None:
    """The last lines of every container's output, for a failure's report."""
    for service in services:
        container = compose.container(service)
        if container:
            logs = podman("logs", "--tail", "25", container, check=False)
            print(f"----- {service} ({state(container)}) -----\n{tail(logs.stdout + logs.stderr, 25)}")


def down(compose: Compose) -> None:
    """Containers, pod, network and volumes of the project, whatever state they are in."""
    compose("down", "--volumes", "--timeout", "20", check=False, timeout=300)
