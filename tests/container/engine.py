"""The container engine the smoke test drives: podman and podman-compose, with the engine settings
beside this file (containers.conf, registries.conf) and the Docker image format, which keeps the
image's HEALTHCHECK (podman's default OCI format drops it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LOG_TAIL = 40


class SmokeFailure(Exception):
    """A check failed: the message says which, and what was seen."""


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(HERE / "containers.conf")
    env["CONTAINERS_REGISTRIES_CONF"] = str(HERE / "registries.conf")
    env["BUILDAH_FORMAT"] = "docker"
    return env


def tail(text: str, lines: int = LOG_TAIL) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(
    cmd: list[str],
    *,
    check: bool = True,
    log: Path | None = None,
    timeout: float = 900,
    stdin: str | None = None,
) -> subprocess.CompletedProcess:
    """Run a command with the engine's settings; its output is returned (stdout) or appended to
    `log`. With check, a non-zero exit raises SmokeFailure with the output's last lines."""
    if log is None:
        result = group_run(cmd, stdin, timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        output = result.stdout + result.stderr
    else:
        with open(log, "a") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            result = group_run(cmd, stdin, timeout, stdout=out, stderr=subprocess.STDOUT)
        output = log.read_text()
    if check and result.returncode != 0:
        raise SmokeFailure(f"{' '.join(cmd[:4])} ... exited {result.returncode}:\n{tail(output)}")
    return result


def group_run(cmd: list[str], stdin: str | None, timeout: float, **streams) -> subprocess.CompletedProcess:
    """subprocess.run in a process group of its own: on a timeout or the test's own interruption,
    the command and whatever it started (podman-compose's `podman build`) are stopped together."""
    with subprocess.Popen(
        cmd,
        env=engine_env(),
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        start_new_session=True,
        **streams,
    ) as proc:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except BaseException:
            stop_group(proc)
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out or "", err or "")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the command's process group (podman cleans up after it), SIGKILL after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def podman(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return run(["podman", *args], **kwargs)


def podman_compose_program() -> str:
    """podman-compose from the project's venv (make test-compose installs it), else from PATH."""
    beside = Path(sys.executable).parent / "podman-compose"
    found = str(beside) if beside.exists() else shutil.which("podman-compose")
    if not found:
        raise SmokeFailure("podman-compose not found: `make test-compose` installs it into .venv")
    return found


def require_tools() -> str:
    """The engine's versions, one line; fails naming what is missing."""
    if not shutil.which("podman"):
        raise SmokeFailure("podman not found: apt-get install podman (see docs/deploy.md)")
    version = podman("version", "--format", "{{.Client.Version}}").stdout.strip()
    compose = run([podman_compose_program(), "version"]).stdout.split("\n")[0].strip()
    return f"podman {version}, {compose}"


class Compose:
    """podman-compose on one project, with its compose files and its env file."""

    def __init__(self, project: str, files: list[str], env_file: Path, log: Path) -> None:
        self.project, self.files, self.env_file, self.log = project, files, env_file, log

    def command(self, *args: str) -> list[str]:
        files = [arg for f in self.files for arg in ("-f", f)]
        return [podman_compose_program(), "--env-file", str(self.env_file), "-p", self.project, *files, *args]

    def __call__(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("log", self.log)
        return run(self.command(*args), **kwargs)

    def config(self) -> dict:
        import yaml

        return yaml.safe_load(run(self.command("config")).stdout)

    def container(self, service: str) -> str:
        """The name of the service's container ("" when there is none)."""
        names = podman(
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        return names[0] if names else ""
