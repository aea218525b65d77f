"""`GET /search-space`: ops, aggregators and the token layout for some tasks and inputs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from api.errors import field_error
from search_space import SearchSpace, SpaceError

router = APIRouter(tags=["search space"])


@router.get("/search-space", summary="Describe the search space for tasks and P inputs")
def search_space(
    tasks: list[str] = Query(
        ["segmentation", "depth", "normal"],
        description="task names in order: repeated (`tasks=a&tasks=b`) or comma-separated (`tasks=a,b`)",
    ),
    num_inputs: int = Query(3, ge=1, le=8, description="P: encoder feature maps the modules read"),
) -> dict[str, Any]:
    names = [t.strip() for item in tasks for t in item.split(",") if t.strip()]
    if not names:
        raise field_error(("query", "tasks"), "at least one task name is needed")
    try:
        return SearchSpace(num_inputs=num_inputs, tasks=tuple(names)).describe()
    except SpaceError as e:
        field, _, msg = str(e).partition(": ")
        field = field if field in ("num_inputs", "tasks") else "tasks"
        raise field_error(("query", field), msg or str(e)) from None
