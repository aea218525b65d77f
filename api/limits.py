"""Checks made before a request body is read: the bearer token, then the body size.

A pure ASGI middleware, outside FastAPI's routing: FastAPI parses a route's body before its
dependencies run, so a token dependency alone would let a caller without the token make the
server read and parse any body. Here a request without the token gets 401 before one body byte
is read, and a body over `AUXNAS_MAX_BODY_BYTES` gets 413, by its Content-Length when it has one
and while it streams otherwise (chunked bodies are counted, never read past the limit).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
PUBLIC_PATHS = frozenset({"/healthz"})
UNAUTHORIZED = "missing or invalid bearer token (send 'Authorization: Bearer <AUXNAS_API_TOKEN>')"


def max_body_bytes_from_env() -> int:
    """`AUXNAS_MAX_BODY_BYTES` (default 1 MiB); ValueError naming the variable when it is not a
    positive integer."""
    raw = os.environ.get("AUXNAS_MAX_BODY_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"AUXNAS_MAX_BODY_BYTES: must be a positive integer of bytes, got {raw!r}")
    return int(raw)


def token_matches(authorization: str | None, expected: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    # constant-time comparison: the response time says nothing about how much of it matched
    return hmac.compare_digest(given.strip().encode(), expected.encode())


class RequestGuard:
    def __init__(self, app: ASGIApp, *, api_token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_token = api_token
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        needs_token = bool(self.api_token) and scope["path"] not in PUBLIC_PATHS
        if needs_token and not token_matches(headers.get("authorization"), self.api_token):
            await _answer(scope, receive, send, 401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _answer(scope, receive, send, 400, f"invalid Content-Length header {length!r}")
                return
            if int(length) > self.max_body_bytes:
                await _answer(scope, receive, send, 413, self._too_large())
                return
        if length is None and "chunked" not in headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send)  # no body
            return
        body = await self._read_within_limit(receive)
        if body is None:
            await _answer(scope, receive, send, 413, self._too_large())
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_within_limit(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None as soon as they add up to more than the limit."""
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client went away: let the app see it
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    def _too_large(self) -> str:
        return f"request body over the limit of {self.max_body_bytes} bytes (AUXNAS_MAX_BODY_BYTES)"


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _answer(
    scope: Scope, receive: Receive, send: Send, code: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    # Connection: close, so that a client still sending a refused body does not keep the socket
    response = JSONResponse({"detail": detail}, code, {**(headers or {}), "Connection": "close"})
    await response(scope, receive, send)
