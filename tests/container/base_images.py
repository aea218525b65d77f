"""The two public images the stack starts from: the PyTorch base of docker/Dockerfile and the
PostgreSQL image of docker-compose.yml. Each is pulled where a registry answers; where none does,
a stand-in is built under the same name from Debian's packages (standin/*.Containerfile) and
labelled org.auxnas.stand-in, so that a later run with a registry pulls the real one."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from tests.container.engine import HERE, REPO, SmokeFailure, podman, run

STANDIN = HERE / "standin"
DEBIAN = "localhost/auxnas-standin/debian:bookworm"
LABEL = "org.auxnas.stand-in"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")


def qualified(name: str) -> str:
    """Docker's reading of a short image name: postgres:16 is docker.io/library/postgres:16."""
    first = name.split("/")[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def dockerfile_base() -> str:
    text = (REPO / "docker" / "Dockerfile").read_text()
    return re.search(r"^FROM\s+(\S+)", text, re.MULTILINE)[1]


def local_kind(name: str) -> str | None:
    """None: not in the image store; "real": present, not a stand-in; "stand-in": ours."""
    result = podman("image", "inspect", "--format", "{{json .Labels}}", name, check=False)
    if result.returncode != 0:
        return None
    return "stand-in" if f'"{LABEL}"' in result.stdout else "real"


def ensure(name: str, recipe: str, log: Path) -> str:
    """Make `name` available; returns one line saying how."""
    name = qualified(name)
    kind = local_kind(name)
    if kind == "real":
        return f"{name}: present"
    if podman("pull", "--quiet", name, check=False, log=log).returncode == 0:
        return f"{name}: pulled"
    if kind == "stand-in":
        return f"{name}: no registry reachable; using the stand-in built earlier (standin/{recipe})"
    build_standin(name, recipe, log)
    return f"{name}: no registry reachable; BUILT A STAND-IN from Debian's packages (standin/{recipe})"


def build_standin(name: str, recipe: str, log: Path) -> None:
    ensure_debian(log)
    with tempfile.TemporaryDirectory(dir=build_dir()) as tmp:
        context = Path(tmp)
        shutil.copytree(STANDIN, context, dirs_exist_ok=True)
        copy_host_ca_certificates(context / "ca")
        volumes = []
        if recipe.startswith("torch"):
            volumes = ["--volume", f"{torch_wheel_dir(log)}:/wheels:ro"]
        podman("build", *volumes, "-f", str(context / recipe), "-t", name, str(context), log=log)


def build_dir() -> Path:
    path = REPO / "build" / "container"
    path.mkdir(parents=True, exist_ok=True)
    return path


def copy_host_ca_certificates(target: Path) -> None:
    """The CA certificates this host added to its trust store, for pip inside the stand-in."""
    target.mkdir(exist_ok=True)
    for crt in HOST_CA_DIR.rglob("*.crt") if HOST_CA_DIR.is_dir() else []:
        shutil.copy(crt, target / crt.name)


def torch_wheel_dir(log: Path) -> Path:
    """The torch wheel the tests run with, as pip serves it to this host."""
    wanted = "torch==" + version("torch").split("+")[0]
    wheels = build_dir() / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", wanted, "-d", str(wheels)]
    run(cmd, log=log)
    return wheels


def debian_mirror() -> str:
    """The Debian mirror this host's apt uses for bookworm."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:(.*)$", stanza, re.MULTILINE)
            if uris and suites and "bookworm" in suites[1].split():
                return uris[1]
    listed = Path("/etc/apt/sources.list")
    text = listed.read_text() if listed.exists() else ""
    match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.MULTILINE)
    return match[1] if match else "http://deb.debian.org/debian"


def ensure_debian(log: Path) -> None:
    """A minimal Debian bookworm image, bootstrapped from the host's mirror (the root of both
    stand-ins)."""
    if local_kind(DEBIAN):
        return
    if not shutil.which("debootstrap"):
        raise SmokeFailure("debootstrap not found: apt-get install debootstrap (see docs/deploy.md)")
    with tempfile.TemporaryDirectory(dir=build_dir()) as tmp:
        root = Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", "bookworm", str(root), debian_mirror()]
        run(cmd, log=log)
        run(["sh", "-c", f'tar -C "{root}" -c . | podman import - {DEBIAN}'], log=log)
