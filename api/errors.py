"""Error bodies: 422 names every offending field by its dotted path; 503 when the DB is down."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("auxnas.api")

# request parts FastAPI puts first in a location; the field path leaves them out
_PARTS = ("body", "query", "path", "header")


class FieldError(Exception):
    """A value that passed the schema but is still wrong (e.g. an invalid task name)."""

    def __init__(self, loc: Sequence[str | int], msg: str, type_: str = "value_error") -> None:
        super().__init__(msg)
        self.loc, self.msg, self.type = list(loc), msg, type_


def field_error(loc: Sequence[str | int], msg: str) -> FieldError:
    return FieldError(loc, msg)


def field_path(loc: Sequence[str | int]) -> str:
    parts = list(loc)
    if parts and parts[0] in _PARTS:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "<body>"


def _problem(errors: list[dict[str, Any]]) -> JSONResponse:
    detail = [
        {"field": field_path(e["loc"]), "loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in errors
    ]
    first = detail[0]
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"message": f"{first['field']}: {first['msg']}{more}", "detail": detail},
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": _location(e), "msg": _message(e), "type": e.get("type", "value_error")}
            for e in exc.errors()
        ]
        return _problem(errors)

    @app.exception_handler(FieldError)
    async def _field(_request: Request, exc: FieldError) -> JSONResponse:
        return _problem([{"loc": exc.loc, "msg": exc.msg, "type": exc.type}])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            # every method of the path (the router names only those of the first route it matched)
            headers["Allow"] = ", ".join(allowed_methods(app, request)) or headers.get("Allow", "")
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=headers)

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        first = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        log.error("database error: %s", first)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": f"database unavailable: {first}"},
        )


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods the OpenAPI document gives the request's path, sorted (empty for a path
    outside the document)."""
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {m.upper() for m in operations}
    return sorted(methods)


def _location(e: dict[str, Any]) -> list[str | int]:
    loc = list(e.get("loc", ()))
    # for unparseable JSON FastAPI puts the character offset where a field name would be
    return loc[:1] if e.get("type") == "json_invalid" else loc


def _message(e: dict[str, Any]) -> str:
    msg = str(e.get("msg", "invalid value"))
    if e.get("type") == "json_invalid":
        ctx = e.get("ctx") or {}
        loc = list(e.get("loc", ()))
        at = f" at character {loc[1]}" if len(loc) > 1 else ""
        return f"invalid JSON{at}: {ctx.get('error', msg)}"
    if e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",):
        return "a JSON body with the search config is needed"
    return msg
