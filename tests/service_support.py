"""Shared by the db/api/worker tests: a fresh database per test (SQLite, and PostgreSQL when
reachable, in its own schema), fast fake evaluators, and subprocess helpers.

Fake evaluators live here (a module, not a test file) because Ray workers import them by name.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from auxnas.evaluator.result import EvalResult

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "AUXNAS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
_pg_problem: list[str | None] = []


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); asked once per test session."""
    if not _pg_problem:
        from sqlalchemy import create_engine, text

        try:
            engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_problem.append(None)
        except Exception as e:  # noqa: BLE001
            first = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            _pg_problem.append(f"PostgreSQL at {POSTGRES_URL} unreachable: {first}")
    return _pg_problem[0]


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'auxnas.db'}"
        return
    problem = postgres_unreachable()
    if problem:
        pytest.skip(problem)
    from sqlalchemy import create_engine, text

    schema = f"auxnas_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with admin.connect() as conn:
        conn.execute(text("SET lock_timeout = '20s'"))  # never hang a test run on a stray lock
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def storage(db_url):
    from auxnas.db.migrate import migrate
    from auxnas.db.storage import SqlStorage

    st = SqlStorage(db_url)
    migrate(engine=st.engine)
    yield st
    st.dispose()


def tiny_search_config(**overrides):
    """A search config for fast fakes: 2 tasks, P=2 (20 tokens), tiny budget; the search phase
    alone (no racing, no confirmation) unless `search` overrides `racing` / `confirm`."""
    from auxnas.controller.config import SearchConfig

    doc = {
        "name": "tiny",
        "tasks": ["segmentation", "depth"],
        "model": {"num_aux_inputs": 2},
        "search": {
            "strategy": "random",
            "budget": 6,
            "parallel_trials": 2,
            "racing": {"rungs": [1]},
            "confirm": {"seeds": 0},
        },
        "controller": {"episodes_per_update": 2},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            doc.setdefault(key, {}).update(value)
        else:
            doc[key] = value
    return SearchConfig.model_validate(doc)


# --- fake evaluators (module level: Ray pickles them by reference) ---------------------------


def _fake_result(config, genotype, delay: float) -> EvalResult:
    if delay:
        time.sleep(delay)
    if genotype is None:
        reward = 0.25
    else:
        # deterministic and architecture-dependent: share of adaptor tokens that are conv_1x1
        toks = genotype.tokens
        adaptors = [toks[i] for i in range(len(toks)) if i % 5 in (2, 3)]
        reward = 0.3 + 0.6 * sum(1 for a in adaptors if a == 1) / len(adaptors)
    metrics = {task: {"score": reward} for task in config.tasks}
    _log_call(config, genotype, reward)
    return EvalResult(ok=True, reward=reward, metrics=metrics, train_seconds=delay, steps=1)


def _log_call(config, genotype, reward) -> None:
    """When `data.root` names a directory, append one line per finished evaluation there
    (lets tests check that nothing finished is evaluated twice across workers)."""
    root = config.data.root
    if not root or not Path(root).is_dir():
        return
    line = {
        "tokens": list(genotype.tokens) if genotype is not None else None,
        "pid": os.getpid(),
        "reward": reward,
    }
    with open(Path(root) / "evaluations.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def fast_evaluate(config, genotype, *, early_stop_below=None) -> EvalResult:
    return _fake_result(config, genotype, 0.0)


def slow_evaluate(config, genotype, *, early_stop_below=None) -> EvalResult:
    """Takes 0.6 s per candidate: long enough to kill or cancel a search in the middle."""
    return _fake_result(config, genotype, 0.6)


def very_slow_evaluate(config, genotype, *, early_stop_below=None) -> EvalResult:
    """Takes an hour: a running evaluation that only a cancel can end within a test's waits."""
    return _fake_result(config, genotype, 3600.0)


def exploding_dataset(data_config):
    """A `python:` dataset plugin whose images are all NaN: every training step's loss is NaN."""
    import numpy as np

    from examples.custom_dataset import make_dataset

    dataset = make_dataset(data_config)
    for split in ("train", "test"):
        dataset[split]["image"] = np.full_like(dataset[split]["image"], np.nan)
    return dataset


def logged_evaluations(root: Path) -> list[dict]:
    path = Path(root) / "evaluations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- subprocesses ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auxnas_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "AUXNAS_DATABASE_URL": db_url, "RAY_AUTH_MODE": "disabled", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    if "AUXNAS_API_TOKEN" not in extra:
        env.pop("AUXNAS_API_TOKEN", None)
    return env


def start_auxnas(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - handed to the child, closed with it
    return subprocess.Popen(
        [sys.executable, "-m", "auxnas.cli", *args], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if not predicate():
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
