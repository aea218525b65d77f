#!/usr/bin/env python
"""Container healthcheck: exit 0 when the service this container runs answers, 1 otherwise.

docker/entrypoint.sh records the container's command (one argument a line); the check follows it:
  auxnas serve [--port N] ...       GET http://127.0.0.1:N/healthz answers {"status": "ok"}
  ray start --head [--port N] ...   `ray status` reaches the cluster at 127.0.0.1:N (default 6379),
                                    or at --node-ip-address:N when that is given
  ray start --address=A ...         `ray status` reaches the cluster at A
  auxnas worker                     `ray status` reaches RAY_ADDRESS (or this container's own Ray)
Anything else counts as healthy while it runs. Standard library only: it runs every few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

COMMAND_FILE = os.environ.get("AUXNAS_COMMAND_FILE", "/tmp/auxnas-command")
DEFAULT_API_PORT = 8000
DEFAULT_RAY_PORT = 6379


def option(argv: list[str], name: str) -> str | None:
    """Value of `--name value` or `--name=value` in argv, the last one winning."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def check_api(argv: list[str], timeout: float) -> str | None:
    port = option(argv, "--port") or str(DEFAULT_API_PORT)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read() or b"null")
    except (OSError, ValueError) as e:
        return f"{url}: {e}"
    if not isinstance(body, dict) or body.get("status") != "ok":
        return f"{url}: unexpected answer {body!r}"
    return None


def check_ray(address: str, timeout: float) -> str | None:
    try:
        result = subprocess.run(
            ["ray", "status", "--address", address], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"ray status --address {address}: {e}"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"ray status --address {address}: exit {result.returncode}: {lines[-1] if lines else ''}"
    return None


def ray_address_of(argv: list[str]) -> str | None:
    """The cluster address a command talks to, or None when it is no Ray node or worker."""
    if argv[:2] == ["ray", "start"]:
        if "--head" in argv:
            host = option(argv, "--node-ip-address") or "127.0.0.1"
            return f"{host}:{option(argv, '--port') or DEFAULT_RAY_PORT}"
        return option(argv, "--address")
    if argv[:2] == ["auxnas", "worker"]:
        address = os.environ.get("RAY_ADDRESS", "")
        # "auto": the Ray that the worker started inside this container
        return "auto" if not address or address.startswith("ray://") else address
    return None


def problem(argv: list[str], timeout: float = 20.0) -> str | None:
    """Why the service is unhealthy, or None when it is healthy."""
    if argv[:2] == ["auxnas", "serve"]:
        return check_api(argv, timeout)
    address = ray_address_of(argv)
    if address is not None:
        return check_ray(address, timeout)
    return None


def main() -> int:
    try:
        with open(COMMAND_FILE) as f:
            argv = f.read().splitlines()
    except OSError:
        argv = ["auxnas", "serve"]  # started without the entrypoint: the image's default command
    why = problem(argv)
    if why:
        print(f"unhealthy: {why}", file=sys.stderr)
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
