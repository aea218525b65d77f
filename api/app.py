"""The FastAPI application: `create_app()` (also a uvicorn factory: `uvicorn --factory api.app:create_app`).

Settings come from the environment unless given: `AUXNAS_DATABASE_URL` (default
`sqlite:///auxnas.db`), `AUXNAS_API_TOKEN` (unset: no auth) and `AUXNAS_MAX_BODY_BYTES` (default
1 MiB). Migrations are applied on start.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from auxnas.api import errors
from auxnas.api.auth import require_token
from auxnas.api.limits import RequestGuard, max_body_bytes_from_env
from auxnas.api.routers import health, plots, searches, space
from auxnas.api.schemas import Problem, ValidationProblem
from auxnas.db.engine import make_engine
from auxnas.db.migrate import migrate
from auxnas.db.storage import SqlStorage

DESCRIPTION = (
    "Search auxiliary modules for multi-task networks (Liu et al., 2019). `POST /searches` with a "
    "search config (the schema of the YAML presets) queues a search; a worker runs it; "
    "`GET /searches/{id}` shows progress and `GET /searches/{id}/best` returns the genotype JSON. "
    "With AUXNAS_API_TOKEN set on the server, send `Authorization: Bearer <token>` "
    "(everything but /healthz)."
)


# what any route may answer (the guard in api.limits answers these before routing)
ANY_ROUTE = {
    400: {"model": Problem, "description": "a malformed request (e.g. its Content-Length)"},
    413: {"model": Problem, "description": "request body over AUXNAS_MAX_BODY_BYTES"},
}
# what every route behind the token may answer
PROTECTED = {
    401: {"model": Problem, "description": "missing or wrong bearer token (when the server has one)"},
    422: {"model": ValidationProblem, "description": "a bad parameter or body; every field is named"},
    503: {"model": Problem, "description": "the database is unavailable"},
}


def create_app(
    database_url: str | None = None,
    api_token: str | None = None,
    *,
    apply_migrations: bool = True,
    max_body_bytes: int | None = None,
) -> FastAPI:
    token = api_token if api_token is not None else os.environ.get("AUXNAS_API_TOKEN") or None
    body_limit = max_body_bytes if max_body_bytes is not None else max_body_bytes_from_env()
    engine = make_engine(database_url)
    if apply_migrations:
        migrate(engine=engine)

    # our own /openapi.json and /docs, so that they sit behind the token like everything else
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="auxnas",
        version="1",
        description=DESCRIPTION,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses=ANY_ROUTE,
    )
    app.state.storage = SqlStorage(engine)
    app.state.api_token = token
    errors.install(app)
    # the token and the body size are checked before anything reads the body; the dependency
    # stays for the OpenAPI security scheme
    app.add_middleware(RequestGuard, api_token=token, max_body_bytes=body_limit)

    # without a token there is no auth: the document declares neither the scheme nor a 401
    protected = [Depends(require_token)] if token else []
    responses = PROTECTED if token else {k: v for k, v in PROTECTED.items() if k != 401}
    app.include_router(health.router)
    for router in (space.router, searches.router, plots.router):
        app.include_router(router, dependencies=protected, responses=responses)

    @app.get("/openapi.json", include_in_schema=False, dependencies=protected)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=protected)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="auxnas API")

    return app
