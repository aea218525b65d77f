"""One home per rule: where a rule is applied in two places (Python and SQL, the storage and the
API schema), these tests fail as soon as the two drift apart."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from auxnas.controller.progress import COUNTS, count
from auxnas.controller.status import TRANSITIONS, SearchStatus, TrialStatus
from auxnas.controller.storage import TRIAL_KINDS, TRIAL_PHASES, InMemoryStorage, TrialRecord
from auxnas.db.models import Search, lease_expired, utcnow
from tests.service_support import db_url, storage, tiny_search_config  # noqa: F401

# --- statuses ----------------------------------------------------------------------------------


def _enum_of(doc: dict, ref_or_schema: dict) -> list[str]:
    schema = ref_or_schema
    while "$ref" in schema or "anyOf" in schema:
        if "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema["enum"]


def test_the_api_schema_lists_the_statuses_of_the_enums(tmp_path):
    from auxnas.api.app import create_app

    doc = create_app(f"sqlite:///{tmp_path / 'a.db'}").openapi()
    schemas = doc["components"]["schemas"]
    assert _enum_of(doc, schemas["SearchOut"]["properties"]["status"]) == [s.value for s in SearchStatus]
    assert _enum_of(doc, schemas["TrialOut"]["properties"]["status"]) == [s.value for s in TrialStatus]
    params = {
        (path, p["name"]): p["schema"]
        for path, item in doc["paths"].items()
        for op in item.values()
        for p in op.get("parameters", [])
    }
    assert _enum_of(doc, params[("/searches", "status")]) == [s.value for s in SearchStatus]
    assert _enum_of(doc, params[("/searches/{search_id}/trials", "status")]) == [s.value for s in TrialStatus]


def test_every_trial_status_is_in_the_lifecycle_and_every_search_status_is_stored(storage):  # noqa: F811
    assert set(TRANSITIONS) == set(TrialStatus)
    assert all(nexts <= set(TrialStatus) for nexts in TRANSITIONS.values())
    assert {s for s in TrialStatus if s.final} == {s for s, nexts in TRANSITIONS.items() if not nexts}
    sid = storage.create_search(tiny_search_config(), launched_by="cli", owner=None)
    for status in SearchStatus:
        storage.set_status(sid, status)
        assert storage.search_row(sid).status == status.value
    with pytest.raises(ValueError, match="unknown search status 'done'"):
        storage.set_status(sid, "done")
    with pytest.raises(ValueError, match="unknown search status 'done'"):
        InMemoryStorage().set_status(sid, "done")


# --- progress: the driver's counts and the SQL view's, over the same rows ------------------------


def _every_kind_of_row() -> list[TrialRecord]:
    combos = itertools.product(TrialStatus, TRIAL_KINDS, TRIAL_PHASES)
    return [
        TrialRecord(index=i, kind=kind, status=status, phase=phase, tokens=None if kind == "joint" else [0])
        for i, (status, kind, phase) in enumerate(combos)
    ]


def test_progress_counts_the_same_rows_in_python_and_in_sql(storage, tmp_path):  # noqa: F811
    from auxnas.controller.driver import SearchDriver

    rows = _every_kind_of_row()
    sid = storage.create_search(tiny_search_config())
    storage.add_trials(sid, rows)
    sql = storage.summary(sid).progress
    driver = SearchDriver(tiny_search_config(), InMemoryStorage(), 1, tmp_path)
    driver.trials = {t.index: t for t in rows}
    python = {name: getattr(driver, name) for name in ("evaluated", "cached", "failed", "evaluations")}
    assert python == {name: getattr(sql, name) for name in python}
    assert {name: count(name, rows) for name in COUNTS} == {name: getattr(sql, name) for name in COUNTS}
    # a failed calibration trial is not a failure of the search phase (the failure limit's count)
    assert sql.failed == len(TRIAL_KINDS) and count("failed", rows) == len(TRIAL_KINDS)


# --- lease expiry: the Python rule and its SQL form, over the same rows --------------------------


def test_lease_expiry_is_one_rule_in_python_and_in_sql(storage):  # noqa: F811
    now = utcnow()
    leases = [None, now - timedelta(seconds=5), now + timedelta(seconds=5)]
    expected = {}
    for status, lease in itertools.product(SearchStatus, leases):
        sid = storage.create_search(tiny_search_config())
        with storage.engine.begin() as conn:
            conn.execute(update(Search).where(Search.id == sid).values(status=status, lease_expires_at=lease))
        expected[sid] = lease_expired(status, lease, now)
    with storage.engine.connect() as conn:
        in_sql = set(conn.execute(select(Search.id).where(Search.lease_expired(now))).scalars())
    assert in_sql == {sid for sid, dead in expected.items() if dead}
    assert len(in_sql) == 1  # running with a lease in the past, and nothing else
    with storage.sessions() as s:
        assert {row.id for row in s.scalars(select(Search)) if row.lease_expired(now)} == in_sql


# --- replicate seeds: calibrate, diagnose and retrain --------------------------------------------


@pytest.mark.parametrize("reward_seeds", [1, 3])
def test_calibrate_diagnose_and_retrain_replicate_at_the_same_disjoint_seeds(
    tmp_path, monkeypatch, reward_seeds
):
    import json

    import yaml
    from typer.testing import CliRunner

    import auxnas.evaluator.retrain as retrain_module
    from auxnas.cli.diagnose import diagnosis_jobs
    from auxnas.cli.main import _register_commands
    from auxnas.cli.main import app as cli_app
    from auxnas.controller import calibration
    from auxnas.evaluator import testing as fakes
    from auxnas.evaluator.seeds import trained_seeds
    from auxnas.search_space import basic_genotype

    doc = {
        "name": "seeds",
        "seed": 5,
        "tasks": ["segmentation", "depth"],
        "model": {"num_aux_inputs": 2},
        "train": {"reward_seeds": reward_seeds},
        "search": {"calibrate": {"genotypes": 3, "replicates": 3}},
    }
    config = tiny_search_config(**doc)
    space = config.search_space()
    expected = [5 + r * reward_seeds for r in range(3)]

    rows = calibration.calibration_trials(config, space, config.search.calibrate, 0)
    calibrated = sorted({calibration.replicate_config(config.eval_config(), t.replicate).seed for t in rows})
    diagnosed = sorted({seed for _, seed, _, _ in diagnosis_jobs(config.eval_config(), space, 3)})

    retrained = []

    def fake_training(cfg, genotype, **kw):
        retrained.append(cfg.seed)
        return fakes.hashed_reward(cfg, genotype)

    monkeypatch.setattr(retrain_module, "train_and_score", fake_training)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "g.json").write_text(json.dumps(basic_genotype(space).to_json()))
    _register_commands()
    args = [
        "retrain",
        str(tmp_path / "g.json"),
        str(tmp_path / "c.yaml"),
        "--seeds",
        "3",
        "-o",
        str(tmp_path),
    ]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output

    assert calibrated == diagnosed == sorted(set(retrained)) == expected  # retrain honours `seed`
    trained = [seed for s in expected for seed in trained_seeds(s, reward_seeds)]
    assert len(trained) == len(set(trained)) == 3 * reward_seeds  # no replicate shares a seed


# --- defaults: tasks, data and cache directories, run directories --------------------------------


def test_the_default_tasks_are_those_of_configs_the_space_command_and_the_api(tmp_path):
    from typer.testing import CliRunner

    from auxnas.api.app import create_app
    from auxnas.cli.main import _register_commands
    from auxnas.cli.main import app as cli_app
    from auxnas.evaluator.config import EvalConfig
    from auxnas.evaluator.defaults import DEFAULT_TASKS

    assert tuple(EvalConfig().tasks) == DEFAULT_TASKS
    doc = create_app(f"sqlite:///{tmp_path / 'a.db'}").openapi()
    params = {p["name"]: p for p in doc["paths"]["/search-space"]["get"]["parameters"]}
    assert tuple(params["tasks"]["schema"]["default"]) == DEFAULT_TASKS
    _register_commands()
    out = CliRunner().invoke(cli_app, ["space"]).output
    assert tuple(json.loads(out)["space"]["tasks"]) == DEFAULT_TASKS


def test_every_part_finds_the_data_and_cache_directories_where_the_environment_says(monkeypatch, tmp_path):
    from auxnas.evaluator import warmstart
    from auxnas.evaluator.config import EvalConfig
    from auxnas.evaluator.data import synthetic
    from auxnas.evaluator.defaults import run_dir
    from auxnas.evaluator.policy import PolicyError, check_caller_config
    from auxnas.worker.loop import Worker

    monkeypatch.setenv("AUXNAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUXNAS_CACHE_DIR", str(tmp_path / "cache"))
    assert synthetic.cache_dir() == tmp_path / "cache" / "synthetic"
    assert warmstart.cache_dir(EvalConfig()) == tmp_path / "cache" / "warmstart"
    assert Worker(None).data_dir == tmp_path / "data"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "out").symlink_to(tmp_path)
    check_caller_config(tiny_search_config(data={"root": "x"}))  # inside the data directory
    with pytest.raises(PolicyError, match="leads outside it"):
        check_caller_config(tiny_search_config(data={"root": "out/cache"}))
    assert run_dir(tmp_path / "data", 7) == tmp_path / "data" / "search-7"


# --- imports: no circles (imports inside functions included), bench and product off tests/ -------

PRODUCT = ("api", "cli", "controller", "db", "evaluator", "search_space", "worker")


def _imports(path) -> set[str]:
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def _product_modules() -> dict[str, object]:
    from tests.service_support import REPO

    mods = {}
    for pkg in PRODUCT:
        for f in (REPO / pkg).rglob("*.py"):
            if "migrations" not in f.parts:
                name = ".".join(("auxnas", *f.relative_to(REPO).with_suffix("").parts))
                mods[name.removesuffix(".__init__")] = f
    return mods


def test_no_module_imports_itself_back_through_others():
    mods = _product_modules()
    graph = {m: {t for t in _imports(f) if t in mods and t != m} for m, f in mods.items()}

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    # a package (auxnas.x) re-exports its own modules: those edges are not circles
    circles = sorted(m for m in graph if m in reaches(m) and m.count(".") != 1)
    assert circles == []


def test_bench_examples_and_the_product_never_import_the_tests():
    from tests.service_support import REPO

    files = [f for d in ("bench", "examples", *PRODUCT) for f in (REPO / d).rglob("*.py")]
    assert files
    offenders = [
        str(f.relative_to(REPO)) for f in files if any(m.split(".")[0] == "tests" for m in _imports(f))
    ]
    assert offenders == []


def test_product_functions_are_short():
    import importlib.util

    from tests.service_support import REPO

    spec = importlib.util.spec_from_file_location("function_lengths", REPO / "tools" / "function_lengths.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rows = tool.function_lengths(REPO)
    assert len(rows) > 500
    assert [r for r in rows if r[0] > 60] == []
