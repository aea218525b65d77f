"""Every bad request gets a 4xx naming the field, and stores nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from auxnas.api.app import create_app
from auxnas.db.engine import transaction
from auxnas.db.models import Search, Trial
from tests import service_support as support

db_url = support.db_url

BAD_BODIES = [
    ({"train": {"steps": 0}}, "train.steps"),
    ({"search": {"budget": 0}}, "search.budget"),
    ({"search": {"strategy": "grid"}}, "search.strategy"),
    ({"search": {"early_stop_ratio": 1.5}}, "search.early_stop_ratio"),
    ({"controller": {"lr": -1}}, "controller.lr"),
    ({"tasks": []}, "tasks"),
    ({"tasks": ["depth", "depth"]}, "tasks"),
    ({"tasks": ["seg:mentation"]}, "tasks"),
    ({"model": {"encoder": "vgg"}}, "model.encoder"),
    ({"model": {"num_aux_inputs": 0}}, "model.num_aux_inputs"),
    ({"data": {"name": "imagenet"}}, "data.name"),
    ({"resources": {"num_gpus": -1}}, "resources.num_gpus"),
    ({"name": ""}, "name"),
    ({"seed": "abc"}, "seed"),
    ({"unknown_section": {}}, "unknown_section"),
    ({"train": {"stepz": 10}}, "train.stepz"),
    ({"train": "fast"}, "train"),
    ([1, 2], "<body>"),
    ("a string", "<body>"),
]


@pytest.fixture
def app_and_client(db_url):
    app = create_app(db_url, api_token="")
    with TestClient(app) as c:
        yield app, c


def stored_rows(app) -> tuple[int, int]:
    with transaction(app.state.storage.sessions) as s:
        return s.scalar(select(func.count()).select_from(Search)), s.scalar(
            select(func.count()).select_from(Trial)
        )


@pytest.mark.parametrize(("body", "field"), BAD_BODIES, ids=[f for _, f in BAD_BODIES])
def test_a_bad_config_is_422_with_the_field_path_and_stores_nothing(app_and_client, body, field):
    app, client = app_and_client
    r = client.post("/searches", json=body)
    assert r.status_code == 422, r.text
    doc = r.json()
    assert field in [d["field"] for d in doc["detail"]], doc
    assert doc["message"].startswith(doc["detail"][0]["field"] + ": ")
    assert stored_rows(app) == (0, 0)
    assert client.get("/searches").json()["total"] == 0


def test_unparseable_and_missing_bodies(app_and_client):
    app, client = app_and_client
    r = client.post("/searches", content=b'{"name": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["message"].startswith("<body>: invalid JSON at character")
    r = client.post("/searches")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "<body>"
    assert stored_rows(app) == (0, 0)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/searches?limit=0", "limit"),
        ("/searches?offset=-1", "offset"),
        ("/searches?status=paused", "status"),
        ("/searches/1/trials?limit=100000", "limit"),
        ("/searches/abc", "search_id"),
        ("/search-space?num_inputs=0", "num_inputs"),
        ("/search-space?tasks=a,feature", "tasks"),
        ("/search-space?tasks=,", "tasks.0"),  # no name in the item: its pattern
    ],
)
def test_bad_query_and_path_parameters_name_the_parameter(app_and_client, path, field):
    _, client = app_and_client
    r = client.get(path)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field


def test_unknown_ids_are_404_everywhere(app_and_client):
    app, client = app_and_client
    for method, path in [
        ("GET", "/searches/42"),
        ("GET", "/searches/42/trials"),
        ("GET", "/searches/42/best"),
        ("POST", "/searches/42/cancel"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["detail"] == "search 42 does not exist"
    assert stored_rows(app) == (0, 0)


def test_search_space_describes_the_token_layout(app_and_client):
    _, client = app_and_client
    doc = client.get(
        "/search-space", params=[("tasks", "segmentation"), ("tasks", "depth"), ("num_inputs", 2)]
    ).json()
    assert doc["space"]["tasks"] == ["segmentation", "depth"] and doc["num_tokens"] == 5 * 2 * 2
    assert doc["token_layout"][0]["choices"] == ["feature:0", "feature:1"]
    assert client.get("/search-space", params={"tasks": "a,b,c"}).json()["num_cells"] == 9
