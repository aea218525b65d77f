"""`GET /healthz`: liveness, never behind auth."""

from __future__ import annotations

from fastapi import APIRouter

from auxnas.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness check (no auth)")
def healthz() -> Health:
    return Health()
