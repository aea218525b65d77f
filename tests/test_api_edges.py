"""The API's edges: bounded and strict configs, ids out of range, body size, the token before the
body, capped /search-space queries, and stored configs that no longer validate."""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from auxnas.api.app import create_app
from auxnas.api.limits import RequestGuard
from auxnas.controller.config import CONFIG_SCHEMA_VERSION, SearchConfig, load_search_config
from auxnas.db.engine import transaction
from auxnas.db.models import Search
from auxnas.evaluator.config import BUILTIN_DATASET_TASKS, ConfigError, DataConfig, load_config
from tests import service_support as support
from tests.test_api_validation import stored_rows

db_url = support.db_url

TOKEN = "edge-token"
HUGE = 99999999999999999999999
GOOD = {"name": "edge", "tasks": ["segmentation", "depth"], "model": {"num_aux_inputs": 2}}

# (body, the field the 422 names)
BAD_BODIES = [
    ({"train": {"lr": math.inf}}, "train.lr"),
    ({"train": {"lr": math.nan}}, "train.lr"),
    ({"search": {"failure_reward": math.nan}}, "search.failure_reward"),
    ({"train": {"steps": "100"}}, "train.steps"),
    ({"train": {"steps": 100.5}}, "train.steps"),
    ({"data": {"crop_size": [16, 16.5]}}, "data.crop_size.1"),
    ({"train": {"amp": "yes"}}, "train.amp"),
    ({"search": {"budget": True}}, "search.budget"),
    ({"search": {"budget": 2**31}}, "search.budget"),
    ({"search": {"budget": 2**63}}, "search.budget"),
    ({"search": {"parallel_trials": 10**6}}, "search.parallel_trials"),
    ({"train": {"steps": 10**12}}, "train.steps"),
    ({"data": {"num_images": 10**9}}, "data.num_images"),
    ({"resources": {"num_cpus": 2000}}, "resources.num_cpus"),
    ({"seed": 2**31}, "seed"),
    ({"tasks": ["banana"]}, "tasks.0"),
    ({"tasks": ["segmentation", "banana"]}, "tasks.1"),
    ({"tasks": ["segmentation", "classification"], "data": {"name": "nyuv2"}}, "tasks.1"),
    ({"tasks": [f"t{i}" for i in range(17)]}, "tasks"),
    ({"tasks": ["x" * 65]}, "tasks.0"),
    ({"name": "a\x00b"}, "name"),
    ({"data": {"root": "data\x00"}}, "data.root"),
    ({"schema_version": 1}, "schema_version"),
]


@pytest.fixture
def app_and_client(db_url):
    app = create_app(db_url, api_token="")
    with TestClient(app) as c:
        yield app, c


def post_json(client, body, **headers):
    # json.dumps writes inf and nan as the JavaScript literals `Infinity` and `NaN`, as a client would
    raw = json.dumps(body).encode()
    return client.post("/searches", content=raw, headers={"content-type": "application/json", **headers})


@pytest.mark.parametrize(
    ("overrides", "field"), BAD_BODIES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_BODIES)]
)
def test_an_unbounded_or_loose_value_is_422_naming_the_field(app_and_client, overrides, field):
    app, client = app_and_client
    r = post_json(client, {**GOOD, **overrides})
    assert r.status_code == 422, r.text
    doc = r.json()
    assert doc["detail"][0]["field"] == field, doc
    assert doc["message"].startswith(f"{field}: ")
    assert stored_rows(app) == (0, 0)


def test_a_good_config_records_its_schema_version(app_and_client):
    _, client = app_and_client
    r = post_json(client, GOOD)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["config_schema_version"] == CONFIG_SCHEMA_VERSION
    assert doc["config"]["schema_version"] == CONFIG_SCHEMA_VERSION
    assert doc["config_valid"] is True and doc["config_error"] is None
    # what GET shows can be sent back as it is
    again = post_json(client, client.get(f"/searches/{doc['id']}").json()["config"])
    assert again.status_code == 201, again.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/searches/{HUGE}"),
        ("GET", f"/searches/{HUGE}/trials"),
        ("GET", f"/searches/{HUGE}/best"),
        ("GET", f"/searches/{HUGE}/iterations"),
        ("GET", f"/searches/{HUGE}/plots/reward.png"),
        ("POST", f"/searches/{HUGE}/cancel"),
        ("GET", f"/searches/{2**63}"),
        ("GET", f"/searches/{-(2**63) - 1}"),
    ],
)
def test_ids_out_of_int64_range_are_404(app_and_client, method, path):
    _, client = app_and_client
    r = client.request(method, path)
    assert r.status_code == 404, r.text
    assert "does not exist" in r.json()["detail"]


def test_offsets_are_bounded_to_int64(app_and_client):
    _, client = app_and_client
    sid = post_json(client, GOOD).json()["id"]
    for path in ("/searches", f"/searches/{sid}/trials"):
        assert client.get(path, params={"offset": 2**63}).status_code == 422
        page = client.get(path, params={"offset": 2**63 - 1})
        assert page.status_code == 200 and page.json()["items"] == [], page.text


def test_a_body_over_the_limit_is_413_and_stores_nothing(db_url, monkeypatch):
    monkeypatch.setenv("AUXNAS_MAX_BODY_BYTES", "4096")
    app = create_app(db_url, api_token="")
    padded = json.dumps(GOOD).encode()[:-1] + b" " * 5000 + b"}"  # valid JSON, just big
    with TestClient(app) as client:
        r = client.post("/searches", content=padded, headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert "4096" in r.json()["detail"]

        def chunks():  # no Content-Length: counted while it streams
            for i in range(0, len(padded), 1000):
                yield padded[i : i + 1000]

        r = client.post("/searches", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert stored_rows(app) == (0, 0)
        assert post_json(client, GOOD).status_code == 201  # under the limit: accepted


def test_the_default_body_limit_is_one_mebibyte(app_and_client):
    _, client = app_and_client
    big = b"[" + b"0," * (1024 * 1024 // 2) + b"0]"
    r = client.post("/searches", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text


def test_a_streamed_body_is_not_read_past_the_limit():
    """Counted chunk by chunk: the guard stops reading at the first chunk past the limit."""
    received: list[int] = []
    sent: list[dict] = []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}  # endless

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the app was called")

    guard = RequestGuard(app, api_token=None, max_body_bytes=4500)
    scope = {
        "type": "http",
        "path": "/searches",
        "method": "POST",
        "headers": [(b"transfer-encoding", b"chunked")],
    }
    asyncio.run(guard(scope, receive, send))
    assert len(received) == 5
    assert sent[0]["status"] == 413


def test_the_token_is_checked_before_the_body_is_read(db_url):
    app = create_app(db_url, api_token=TOKEN)
    with TestClient(app) as client:
        junk = b"{" * (50 * 1024 * 1024)  # 50 MB of invalid JSON, over the size limit too
        r = client.post("/searches", content=junk, headers={"content-type": "application/json"})
        assert r.status_code == 401, r.text
        r = client.post("/searches", content=b"{" * 1000, headers={"content-type": "application/json"})
        assert r.status_code == 401, r.text
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert post_json(client, {"train": {"steps": 0}}, **good).status_code == 422

    calls: list[str] = []

    async def receive():
        calls.append("receive")
        return {"type": "http.request", "body": b"{", "more_body": False}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def inner(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the app was called")

    guard = RequestGuard(inner, api_token=TOKEN, max_body_bytes=1 << 20)
    scope = {"type": "http", "path": "/searches", "method": "POST", "headers": [(b"content-length", b"1")]}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 401 and calls == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"tasks": ",".join(f"t{i}" for i in range(17))}, "tasks"),
        ([("tasks", f"t{i}") for i in range(17)], "tasks"),
        ({"tasks": ",".join(f"t{i}" for i in range(1000)), "num_inputs": 8}, "tasks.0"),
        ({"tasks": "x" * 65}, "tasks.0"),
        ({"tasks": "ok,a\x00b"}, "tasks.0"),  # the query item: its pattern allows no NUL
        ([("tasks", "ok"), ("tasks", "a:b")], "tasks.1"),
        ({"tasks": "a,,b"}, "tasks.0"),  # an empty name
        ({"tasks": "a,a"}, "tasks"),  # duplicates: what a schema cannot say, still a 422
        ({"num_inputs": 9}, "num_inputs"),
    ],
)
def test_search_space_queries_are_capped(app_and_client, query, field):
    _, client = app_and_client
    r = client.get("/search-space", params=query)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field


def test_integral_floats_are_integers_as_in_json_schema(app_and_client):
    _, client = app_and_client
    body = {**GOOD, "train": {"steps": 104.0}, "data": {"crop_size": [16.0, 24]}, "seed": 3.0}
    r = post_json(client, body)
    assert r.status_code == 201, r.text
    config = client.get(f"/searches/{r.json()['id']}").json()["config"]
    assert config["train"]["steps"] == 104 and config["data"]["crop_size"] == [16, 24] and config["seed"] == 3
    assert isinstance(config["train"]["steps"], int)


def test_a_405_lists_every_method_of_the_path(app_and_client):
    _, client = app_and_client
    for method, path, allowed in [
        ("DELETE", "/searches", "GET, POST"),
        ("PUT", "/searches/1", "GET"),
        ("GET", "/searches/1/cancel", "POST"),
        ("DELETE", "/searches/1/plots/reward.png", "GET"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 405 and r.headers["allow"] == allowed, (method, path, r.headers)


def test_search_space_names_follow_the_documented_pattern(app_and_client):
    app, client = app_and_client
    (param,) = [
        p for p in app.openapi()["paths"]["/search-space"]["get"]["parameters"] if p["name"] == "tasks"
    ]
    pattern = re.compile(param["schema"]["items"]["pattern"])
    for item, ok in [
        ("a, b", True),
        (" " + "x" * 64 + " ", True),
        ("x" * 65, False),
        ("a:b", False),
        (",", False),
    ]:
        assert bool(pattern.fullmatch(item)) is ok, item
        r = client.get("/search-space", params={"tasks": item, "num_inputs": 1})
        assert (r.status_code == 200) is ok, (item, r.text)


def test_the_largest_search_space_allowed_is_small(app_and_client):
    _, client = app_and_client
    r = client.get("/search-space", params={"tasks": ",".join(f"t{i}" for i in range(16)), "num_inputs": 8})
    assert r.status_code == 200
    assert len(r.content) < 2_000_000, len(r.content)


def _store_old_config(app, search_id: int, config: dict) -> None:
    with transaction(app.state.storage.sessions, write=True) as s:
        s.execute(update(Search).where(Search.id == search_id).values(config=config))


def test_a_stored_config_that_no_longer_validates_is_shown_flagged(app_and_client, db_url):
    app, client = app_and_client
    sid = post_json(client, GOOD).json()["id"]
    old = SearchConfig.model_validate(GOOD).model_dump(mode="json")
    old.pop("schema_version")  # stored before versions were recorded
    old["search"]["budget"] = True
    old["train"]["steps"] = "100"
    if db_url.startswith("sqlite"):
        old["train"]["lr"] = math.inf  # PostgreSQL's JSON cannot hold it; SQLite's text could
    _store_old_config(app, sid, old)

    r = client.get(f"/searches/{sid}")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["config_valid"] is False
    assert doc["config_schema_version"] == 1
    assert doc["config_error"].split(":")[0] in ("search.budget", "train.steps", "train.lr")
    assert "\n" not in doc["config_error"]
    assert doc["config"]["search"]["budget"] is True and doc["config"]["train"]["steps"] == "100"
    if db_url.startswith("sqlite"):
        assert doc["config"]["train"]["lr"] == "Infinity"
    listed = client.get("/searches")
    assert listed.status_code == 200 and listed.json()["items"][0]["id"] == sid
    assert client.post(f"/searches/{sid}/cancel").status_code == 200

    _store_old_config(app, sid, ["not", "a", "mapping"])
    r = client.get(f"/searches/{sid}")
    assert r.status_code == 200 and r.json()["config_valid"] is False


def test_every_answered_status_is_in_the_openapi(app_and_client):
    app, _ = app_and_client
    doc = app.openapi()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"400", "413"} <= codes, (method, path, codes)
            if path != "/healthz":
                assert {"422", "503"} <= codes, (method, path, codes)
                assert "401" not in codes and "security" not in op, (method, path)  # no token
            if "{search_id}" in path:
                assert "404" in codes, (method, path, codes)
                param = next(p for p in op["parameters"] if p["name"] == "search_id")
                assert param["schema"]["maximum"] == 2**63 - 1
            for p in op.get("parameters", []):
                if p["name"] == "offset":
                    assert p["schema"]["maximum"] == 2**63 - 1
    assert "409" in doc["paths"]["/searches/{search_id}/cancel"]["post"]["responses"]


def test_every_preset_still_loads_under_the_strict_schema():
    presets = sorted((support.REPO / "configs").glob("*.yaml"))
    assert presets
    for path in presets:
        config = load_search_config(path)
        assert config.schema_version == CONFIG_SCHEMA_VERSION


def test_presets_are_strict_too_and_read_exponent_floats(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-3\n  weight_decay: 5E-5\n")
    cfg = load_config(path)
    assert cfg.train.lr == 1e-3 and cfg.train.weight_decay == 5e-5
    for text, field in (
        ("search:\n  budget: true\n", "search.budget"),
        ("train:\n  steps: '100'\n", "train.steps"),
        ("train:\n  lr: .inf\n", "train.lr"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match=f": {field}: "):
            load_search_config(path)


def test_the_builtin_task_lists_match_the_datasets(tmp_path: Path):
    from auxnas.evaluator.data import load_dataset
    from auxnas.evaluator.data.nyuv2 import TASKS as NYUV2_TASKS

    assert set(BUILTIN_DATASET_TASKS["nyuv2"]) == set(NYUV2_TASKS)
    tiny = DataConfig(num_images=8, num_test_images=4, resolution=16, root=str(tmp_path))
    with pytest.raises(ValueError, match=r"it has ([a-z, ]+)\)") as err:
        load_dataset(tiny, ["banana"])
    offered = str(err.value).rsplit("(it has ", 1)[1].rstrip(")").split(", ")
    assert set(BUILTIN_DATASET_TASKS["synthetic"]) == set(offered)
