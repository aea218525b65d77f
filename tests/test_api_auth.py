"""Bearer-token auth: with a token every endpoint but /healthz needs it; without one none does."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from auxnas.api.app import create_app
from tests import service_support as support

db_url = support.db_url

TOKEN = "s3cret-token"
CALLS = [
    ("GET", "/search-space"),
    ("POST", "/searches"),
    ("GET", "/searches"),
    ("GET", "/searches/1"),
    ("GET", "/searches/1/trials"),
    ("GET", "/searches/1/iterations"),
    ("GET", "/searches/1/best"),
    ("POST", "/searches/1/cancel"),
    ("GET", "/searches/1/plots/reward.png"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
]
BODY = {"name": "auth", "tasks": ["depth"], "model": {"num_aux_inputs": 1}}


def call(client, method, path, **headers):
    return client.request(
        method, path, json=BODY if method == "POST" and path == "/searches" else None, headers=headers
    )


def template(path: str) -> str:
    return path.replace("/1", "/{search_id}").replace("/reward.png", "/{name}.png")


@pytest.fixture
def app_with_token(db_url):
    app = create_app(db_url, api_token=TOKEN)
    with TestClient(app) as c:
        yield app, c


def test_every_route_but_healthz_needs_the_token(app_with_token):
    app, client = app_with_token
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    routed = documented | {("GET", "/openapi.json"), ("GET", "/docs")}
    expected = {(m, template(p)) for m, p in CALLS} | {("GET", "/healthz")}
    assert routed == expected, "a route was added: list it in CALLS"
    assert client.get("/healthz").json() == {"status": "ok"}
    for method, path in CALLS:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ):
            r = call(client, method, path, **headers)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/searches").status_code == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    created = call(client, "POST", "/searches", **good)
    assert created.status_code == 201
    for method, path in CALLS[2:]:
        r = call(client, method, path, **good)
        assert r.status_code in (200, 404), (method, path, r.status_code, r.text)
    assert client.get("/searches", headers=good).json()["total"] == 1


def test_a_bad_body_without_the_token_is_401_not_422(app_with_token):
    _, client = app_with_token
    assert client.post("/searches", json={"train": {"steps": 0}}).status_code == 401


def test_without_a_token_nothing_needs_auth(db_url, monkeypatch):
    monkeypatch.delenv("AUXNAS_API_TOKEN", raising=False)
    with TestClient(create_app(db_url)) as client:
        for method, path in CALLS:
            assert call(client, method, path).status_code != 401, (method, path)


def test_the_token_comes_from_the_environment(db_url, monkeypatch):
    monkeypatch.setenv("AUXNAS_API_TOKEN", TOKEN)
    with TestClient(create_app(db_url)) as client:
        assert client.get("/searches").status_code == 401
        assert client.get("/searches", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_without_a_token_the_openapi_declares_no_auth(db_url):
    with TestClient(create_app(db_url, api_token="")) as client:
        doc = client.get("/openapi.json").json()
    assert "securitySchemes" not in doc.get("components", {})
    for ops in doc["paths"].values():
        for op in ops.values():
            assert "security" not in op and "401" not in op["responses"]


def test_openapi_documents_every_endpoint_and_the_bearer_scheme(db_url):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(db_url, api_token=TOKEN)) as client:
        doc = client.get("/openapi.json", headers=auth).json()
    paths = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert paths == {
        ("GET", "/healthz"),
        ("GET", "/search-space"),
        ("POST", "/searches"),
        ("GET", "/searches"),
        ("GET", "/searches/{search_id}"),
        ("GET", "/searches/{search_id}/trials"),
        ("GET", "/searches/{search_id}/iterations"),
        ("GET", "/searches/{search_id}/best"),
        ("POST", "/searches/{search_id}/cancel"),
        ("GET", "/searches/{search_id}/plots/{name}.png"),
    }
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    body = doc["paths"]["/searches"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/SearchConfig")
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert (
        doc["paths"]["/searches"]["get"]["security"]
        and "401" in doc["paths"]["/searches"]["get"]["responses"]
    )
