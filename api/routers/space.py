"""`GET /search-space`: ops, aggregators and the token layout for some tasks and inputs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import StringConstraints

from auxnas.api.errors import field_error
from auxnas.evaluator.config import MAX_TASK_NAME, MAX_TASKS
from auxnas.evaluator.defaults import DEFAULT_TASKS
from auxnas.search_space import SearchSpace, SpaceError

router = APIRouter(tags=["search space"])

# One query item may hold several task names, comma-separated; spaces around a name are
# dropped. The pattern states the rule for each name: 1..MAX_TASK_NAME characters without the
# spaces around it, no ',' ':' or NUL. What a schema cannot say (the name 'feature', duplicates,
# more than MAX_TASKS names over all items) is a 422 naming the field.
_EDGE = "[^ ,:\\x00]"
_NAME = f"{_EDGE}([^,:\\x00]{{0,{MAX_TASK_NAME - 2}}}{_EDGE})?"
TASKS_PATTERN = f"^ *{_NAME} *(, *{_NAME} *)*$"
_TasksItem = Annotated[
    str, StringConstraints(max_length=MAX_TASKS * (MAX_TASK_NAME + 1), pattern=TASKS_PATTERN)
]


@router.get("/search-space", summary="Describe the search space for tasks and P inputs")
def search_space(
    tasks: list[_TasksItem] = Query(
        list(DEFAULT_TASKS),
        max_length=MAX_TASKS,
        description="task names in order: repeated (`tasks=a&tasks=b`) or comma-separated (`tasks=a,b`); "
        f"at most {MAX_TASKS} names of at most {MAX_TASK_NAME} characters",
    ),
    num_inputs: int = Query(3, ge=1, le=8, description="P: encoder feature maps the modules read"),
) -> dict[str, Any]:
    names = [t.strip(" ") for item in tasks for t in item.split(",") if t.strip(" ")]
    if not names:
        raise field_error(("query", "tasks"), "at least one task name is needed")
    # the description grows with the square of the task count: a cap keeps it small
    if len(names) > MAX_TASKS:
        raise field_error(("query", "tasks"), f"at most {MAX_TASKS} task names, got {len(names)}")
    for i, name in enumerate(names):
        if len(name) > MAX_TASK_NAME or "\x00" in name:
            reason = (
                f"at most {MAX_TASK_NAME} characters" if len(name) > MAX_TASK_NAME else "no NUL characters"
            )
            raise field_error(("query", "tasks", i), f"task names have {reason}")
    try:
        return SearchSpace(num_inputs=num_inputs, tasks=tuple(names)).describe()
    except SpaceError as e:
        field, _, msg = str(e).partition(": ")
        field = field if field in ("num_inputs", "tasks") else "tasks"
        raise field_error(("query", field), msg or str(e)) from None
