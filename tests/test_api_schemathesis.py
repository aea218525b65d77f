"""schemathesis against the app's own `/openapi.json` (in process, no server), on SQLite and on
PostgreSQL: valid and invalid requests to every operation, with a bounded example count. No
answer may be a 5xx, and every answer must be one the OpenAPI declares, in the declared content
type and conforming to the declared schema."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from auxnas.api.app import create_app
from tests import service_support as support

db_url = support.db_url

TOKEN = "schemathesis-token"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# per generation mode and backend: about 6 s each on a loaded 2-core machine (measured)
MAX_EXAMPLES = 200


@pytest.fixture
def app_with_a_search(db_url):
    """The app with one search stored, so that id 1 exists and GETs have something to show."""
    app = create_app(db_url, api_token=TOKEN)
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = {"name": "fuzzed", "tasks": ["segmentation", "depth"], "model": {"num_aux_inputs": 2}}
        assert client.post("/searches", json=body, headers=auth).status_code == 201
        yield app


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_the_api_conforms_to_its_openapi(app_with_a_search, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app_with_a_search, headers=_auth())
    seen: dict[int, int] = {}

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call(headers=_auth())
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS, headers=_auth())

    check()
    assert not any(code >= 500 for code in seen), seen
    # the examples reached the handlers, not only the validation
    assert any(200 <= code < 300 for code in seen), seen


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
