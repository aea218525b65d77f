"""Plugins by operator, not by request: one loader, datasets a REST caller may name, paths confined
to AUXNAS_DATA_DIR, and the `--evaluator` registry."""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint, entry_points

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from auxnas.api.app import create_app
from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.controller.config import SearchConfig
from auxnas.evaluator import plugins
from auxnas.evaluator.data import load_dataset
from auxnas.evaluator.policy import PolicyError, check_caller_config, confine_paths
from tests import service_support as support
from tests.test_api_validation import stored_rows

db_url = support.db_url
storage = support.storage

REPO = support.REPO
TINY = {
    "name": "plugins",
    "tasks": ["segmentation", "depth"],
    "model": {"num_aux_inputs": 2},
    "search": {"strategy": "random", "budget": 3, "parallel_trials": 1},
}
OWN_DATA = "python:tests.test_plugins:two_task_dataset"


def two_task_dataset(data_config) -> dict:
    """A dataset callable with the tasks of TINY (4 images of 8x8)."""
    import numpy as np

    def split(n: int) -> dict:
        rng = np.random.default_rng(n)
        return {
            "image": rng.random((n, 3, 8, 8), dtype=np.float32),
            "segmentation": rng.integers(0, 2, (n, 8, 8)),
            "depth": rng.random((n, 8, 8), dtype=np.float32) + 0.1,
        }

    tasks = {"segmentation": {"kind": "segmentation", "num_classes": 2}, "depth": {"kind": "depth"}}
    return {"tasks": tasks, "train": split(8), "test": split(4)}


def body(**data) -> dict:
    return {**TINY, "data": data}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "runs"
    path.mkdir()
    monkeypatch.setenv("AUXNAS_DATA_DIR", str(path))
    monkeypatch.delenv("AUXNAS_DATASETS", raising=False)
    return path


@pytest.fixture
def app_and_client(db_url, data_dir):
    app = create_app(db_url, api_token="")
    with TestClient(app) as c:
        yield app, c


@pytest.fixture
def registered_dataset(monkeypatch):
    """`blobs` registered in `auxnas.datasets` as an installed package would declare it."""
    entry = EntryPoint("blobs", "tests.test_plugins:two_task_dataset", plugins.DATASETS)
    real = plugins.registered

    def fake(group: str) -> dict[str, EntryPoint]:
        return {"blobs": entry} if group == plugins.DATASETS else real(group)

    monkeypatch.setattr(plugins, "registered", fake)
    return "blobs"


def assert_refused(app, client, doc: dict, field: str) -> dict:
    before = stored_rows(app)
    r = client.post("/searches", json=doc)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["detail"][0]["field"] == field and problem["message"].startswith(f"{field}: "), problem
    assert stored_rows(app) == before
    return problem


# --- datasets over REST ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["python:os:system", OWN_DATA])
def test_a_python_spec_over_rest_is_refused_and_nothing_is_stored(app_and_client, name):
    app, client = app_and_client
    problem = assert_refused(app, client, body(name=name), "data.name")
    assert "AUXNAS_DATASETS" in problem["message"] and "allowed: synthetic, nyuv2" in problem["message"]
    assert client.get("/searches").json()["total"] == 0


def test_a_spec_the_operator_lists_in_auxnas_datasets_is_accepted(app_and_client, monkeypatch):
    app, client = app_and_client
    monkeypatch.setenv("AUXNAS_DATASETS", f" python:other:thing , {OWN_DATA}")
    r = client.post("/searches", json=body(name=OWN_DATA))
    assert r.status_code == 201, r.text
    assert r.json()["config"]["data"]["name"] == OWN_DATA
    # only that exact spec: another callable of the same module stays refused
    assert_refused(app, client, body(name="python:tests.test_plugins:body"), "data.name")
    assert stored_rows(app) == (1, 0)


def test_a_dataset_plugin_registered_as_an_entry_point_is_accepted(app_and_client, registered_dataset):
    app, client = app_and_client
    r = client.post("/searches", json=body(name=registered_dataset))
    assert r.status_code == 201, r.text
    # the message lists it among the allowed ones
    problem = assert_refused(app, client, body(name="python:os:system"), "data.name")
    assert problem["message"].endswith("allowed: synthetic, nyuv2, blobs")


def test_an_unregistered_name_is_refused_by_the_schema_everywhere():
    with pytest.raises(ValueError, match="data.name"):
        SearchConfig.model_validate(body(name="blobs"))


def test_a_registered_dataset_plugin_loads_through_the_one_loader(registered_dataset):
    config = SearchConfig.model_validate(body(name=registered_dataset))
    dataset = load_dataset(config.data, config.tasks)
    assert list(dataset.tasks) == ["segmentation", "depth"] and dataset.train.images.shape == (8, 3, 8, 8)


# --- confined paths --------------------------------------------------------------------------


def test_path_escapes_over_rest_are_refused(app_and_client, data_dir, tmp_path):
    app, client = app_and_client
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_dir / "link").symlink_to(outside)
    for root in ["/tmp/x", "../x", "cache/../../x", "~/x", "link", "link/cache"]:
        problem = assert_refused(app, client, body(name="synthetic", root=root), "data.root")
        assert str(data_dir) not in problem["message"]  # the caller learns no server directory
    assert_refused(
        app, client, {**TINY, "model": {"num_aux_inputs": 2, "pretrained": "/etc/passwd"}}, "model.pretrained"
    )
    assert not (data_dir / "x").exists() and not (tmp_path / "x").exists()


def test_relative_paths_inside_the_data_dir_are_accepted(app_and_client, data_dir):
    app, client = app_and_client
    (data_dir / "shared").mkdir()
    (data_dir / "inner").symlink_to(data_dir / "shared")  # a symlink that stays inside is fine
    for root in ["cache", "inner/cache", "./a/b"]:
        r = client.post("/searches", json=body(name="synthetic", root=root))
        assert r.status_code == 201, r.text
    pretrained = client.post("/searches", json={**TINY, "model": {"num_aux_inputs": 2, "pretrained": "w.pt"}})
    assert pretrained.status_code == 201, pretrained.text
    assert stored_rows(app) == (4, 0)


def test_the_worker_runs_relative_paths_inside_its_data_dir(tmp_path):
    config = SearchConfig.model_validate(body(name="synthetic", root="cache"))
    confined = confine_paths(config, tmp_path)
    assert confined.data.root == str(tmp_path.resolve() / "cache")
    assert config.data.root == "cache"  # the stored config is left as submitted
    with pytest.raises(PolicyError, match="data.root"):
        check_caller_config(SearchConfig.model_validate(body(root="/abs")), tmp_path)


# --- the worker ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"name": OWN_DATA}, "data.name: 'python:tests.test_plugins:two_task_dataset' is not allowed"),
        ({"root": "/tmp/elsewhere"}, "data.root: must be a path relative to AUXNAS_DATA_DIR"),
    ],
)
def test_the_worker_fails_a_queued_search_it_no_longer_allows(storage, data_dir, monkeypatch, data, reason):
    from auxnas.worker.loop import Worker

    # allowed when it was submitted; the operator has since removed it from the list
    monkeypatch.setenv("AUXNAS_DATASETS", OWN_DATA)
    sid = storage.create_search(SearchConfig.model_validate(body(**data)), launched_by="api")
    monkeypatch.delenv("AUXNAS_DATASETS")
    worker = Worker(storage, data_dir=data_dir, poll_seconds=0.05, evaluate_fn=support.fast_evaluate)
    assert worker.run_forever(once=True) == 1
    row = storage.search_row(sid)
    assert row.status == "failed" and reason in row.error, row.error
    assert storage.trials(sid) == []  # nothing was evaluated, nothing imported


# --- the loader ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "python:no_such_module_x:fn",
            "'python:no_such_module_x:fn': cannot import module 'no_such_module_x'",
        ),
        ("python:os:no_such_fn", "'python:os:no_such_fn': module 'os' has no attribute 'no_such_fn'"),
        ("python:os:sep", "'python:os:sep': str is not callable"),
        ("python:os", "'python:os' is not of the form python:package.module:callable"),
        ("unknown", "'unknown' is not a registered evaluator (known: fake-failing-candidates,"),
    ],
)
def test_load_errors_are_one_line_naming_the_spec(spec, message):
    with pytest.raises(plugins.PluginError) as err:
        plugins.load_callable(spec, plugins.EVALUATORS)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_evaluator_names_resolve_to_the_built_in_and_the_fakes():
    from auxnas.evaluator import testing
    from auxnas.evaluator.evaluate import evaluate

    assert plugins.load_callable("train", plugins.EVALUATORS) is evaluate
    assert plugins.load_callable("fake-target-share", plugins.EVALUATORS) is testing.target_share
    assert plugins.load_callable("fake-sleep", plugins.EVALUATORS) is testing.sleeping


def test_the_product_never_imports_the_testing_module():
    product = ["api", "cli", "controller", "db", "evaluator", "search_space", "worker"]
    for package in product:
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            assert "import evaluator.testing" not in text and "import testing" not in text, path
            assert "from auxnas.evaluator.testing import" not in text, path


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner():
    _register_commands()
    return CliRunner()


@pytest.mark.parametrize("command", ["search", "worker"])
def test_an_unknown_evaluator_is_one_line_listing_the_known_ones(runner, command):
    args = ["search", str(REPO / "configs" / "synthetic-tiny.yaml")] if command == "search" else ["worker"]
    result = runner.invoke(cli_app, [*args, "--evaluator", "no-such"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    known = ", ".join(sorted(ep.name for ep in entry_points(group="auxnas.evaluators")))
    assert "train" in known and "fake-hashed" in known
    assert lines == [f"error: --evaluator: 'no-such' is not a registered evaluator (known: {known})"]


def test_the_cli_still_accepts_a_python_dataset(runner, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    monkeypatch.delenv("AUXNAS_DATASETS", raising=False)
    preset = tmp_path / "own.yaml"
    preset.write_text(
        yaml.safe_dump(
            {
                "name": "own-data",
                "tasks": ["parts", "count"],
                "data": {
                    "name": "python:custom_dataset:make_dataset",
                    "num_images": 16,
                    "num_test_images": 8,
                    "resolution": 16,
                    "root": str(tmp_path / "anywhere"),
                },
                "model": {"num_aux_inputs": 2, "aux_channels": 8},
                "train": {"steps": 2, "batch_size": 4},
            }
        )
    )
    result = runner.invoke(cli_app, ["evaluate", str(preset), "--genotype", "none", "--json"])
    assert result.exit_code == 0, result.output
    assert '"ok": true' in result.stdout and '"parts"' in result.stdout
    assert os.environ.get("AUXNAS_DATASETS") is None  # accepted without the operator's list
