"""Bearer-token auth: with `AUXNAS_API_TOKEN` set, every endpoint but `/healthz` needs it."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(
    auto_error=False,
    description="Needed on every endpoint but /healthz when the server has AUXNAS_API_TOKEN set.",
)


def require_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    expected: str | None = request.app.state.api_token
    if not expected:
        return
    given = credentials.credentials if credentials is not None else ""
    # constant-time comparison: the response time says nothing about how much of it matched
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token (send 'Authorization: Bearer <AUXNAS_API_TOKEN>')",
            headers={"WWW-Authenticate": "Bearer"},
        )
