"""Searches: start one, list them, watch one, page through its trials, get its best genotype, stop it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel

from auxnas.api.deps import MAX_ID, get_storage, not_found, search_id_in_path
from auxnas.api.errors import field_error
from auxnas.api.schemas import (
    GenotypeDocument,
    IterationOut,
    Problem,
    SearchDetail,
    SearchList,
    SearchOut,
    SearchStatus,
    TrialOut,
    TrialPage,
    TrialStatus,
    ValidationProblem,
)
from auxnas.controller.config import SearchConfig
from auxnas.db.storage import SqlStorage, UnknownSearch
from auxnas.evaluator.config import unoffered_task
from auxnas.search_space import SpaceError

router = APIRouter(prefix="/searches", tags=["searches"])

_404 = {404: {"model": Problem, "description": "no search with this id"}}


def json_of(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The model serialised once. (Returned as a model, FastAPI would dump it, validate the dump
    against `response_model` and serialise it again: a third of a polled request's CPU time.)"""
    return Response(model.model_dump_json(), status_code, headers, media_type="application/json")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SearchDetail,
    responses={422: {"model": ValidationProblem, "description": "a bad config; every field is named"}},
    summary="Start a search (queued for a worker)",
)
def create_search(config: SearchConfig, storage: SqlStorage = Depends(get_storage)) -> Response:
    check_search_config(config)
    search_id = storage.create_search(config, launched_by="api")
    return json_of(SearchDetail.of(storage.summary(search_id)), 201, {"Location": f"/searches/{search_id}"})


def check_search_config(config: SearchConfig) -> None:
    """What the schema alone cannot say: the tasks and P must form a valid search space, and a
    REST caller may name only the datasets the operator allows and paths inside AUXNAS_DATA_DIR."""
    from auxnas.evaluator.policy import PolicyError, check_caller_config

    try:
        check_caller_config(config)
    except PolicyError as e:
        raise field_error(("body", *e.loc), e.msg) from None
    try:
        config.search_space()
    except SpaceError as e:
        field, _, msg = str(e).partition(": ")
        loc = ("body", "model", "num_aux_inputs") if field == "num_inputs" else ("body", "tasks")
        raise field_error(loc, msg or str(e)) from None
    check_tasks_offered(config)


def check_tasks_offered(config: SearchConfig) -> None:
    """A built-in dataset offers a fixed set of tasks (plugin datasets are checked by the worker)."""
    unoffered = unoffered_task(config)
    if unoffered is not None:
        index, reason = unoffered
        raise field_error(("body", "tasks", index), reason)


@router.get("", response_model=SearchList, summary="List searches, newest first")
def list_searches(
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(50, ge=1, le=500),
    status_: SearchStatus | None = Query(None, alias="status", description="only searches in this status"),
    storage: SqlStorage = Depends(get_storage),
) -> Response:
    items, total = storage.list_searches(offset, limit, status_)
    return json_of(
        SearchList(items=[SearchOut.of(s) for s in items], total=total, offset=offset, limit=limit)
    )


@router.get("/{search_id}", response_model=SearchDetail, responses=_404, summary="One search")
def get_search(
    search_id: int = Depends(search_id_in_path), storage: SqlStorage = Depends(get_storage)
) -> Response:
    summary = storage.summary(search_id)
    if summary is None:
        raise not_found(search_id)
    return json_of(SearchDetail.of(summary))


@router.get(
    "/{search_id}/trials", response_model=TrialPage, responses=_404, summary="Trials in order, paginated"
)
def list_trials(
    search_id: int = Depends(search_id_in_path),
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(50, ge=1, le=1000),
    status: TrialStatus | None = Query(None, description="only trials in this state, e.g. running"),
    storage: SqlStorage = Depends(get_storage),
) -> Response:
    trials, total = storage.trial_page(search_id, offset, limit, status=status)
    if total == 0 and not storage.search_exists(search_id):
        raise not_found(search_id)
    pairing = storage.pairing(search_id) if trials else None
    page = TrialPage(items=[TrialOut.of(t, pairing) for t in trials], total=total, offset=offset, limit=limit)
    return json_of(page)


@router.get(
    "/{search_id}/iterations",
    response_model=list[IterationOut],
    responses=_404,
    summary="The controller's iterations: the learning curve of the search",
)
def list_iterations(
    search_id: int = Depends(search_id_in_path), storage: SqlStorage = Depends(get_storage)
) -> list[IterationOut]:
    if not storage.search_exists(search_id):
        raise not_found(search_id)
    return [IterationOut.model_validate(asdict(it)) for it in storage.iterations(search_id)]


@router.get(
    "/{search_id}/best",
    response_model=GenotypeDocument,
    response_model_exclude_unset=True,
    responses={404: {"model": Problem, "description": "unknown search, or no successful trial yet"}},
    summary="The answer's genotype document (JSON version 2): the recommended module, or the quoted one "
    "with recommended false when no module beats Joint; before the answer, the best trial so far",
)
def best_genotype(
    search_id: int = Depends(search_id_in_path), storage: SqlStorage = Depends(get_storage)
) -> dict[str, Any]:
    try:
        doc = storage.best_genotype_json(search_id)
    except UnknownSearch:
        raise not_found(search_id) from None
    if doc is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"search {search_id} has no successful trial with a genotype yet",
        )
    return doc


@router.post(
    "/{search_id}/cancel",
    response_model=SearchDetail,
    responses={
        **_404,
        409: {"model": Problem, "description": "the search already ended (succeeded or failed)"},
    },
    summary="Stop a search; its running evaluations are cancelled",
)
def cancel_search(
    search_id: int = Depends(search_id_in_path), storage: SqlStorage = Depends(get_storage)
) -> Response:
    try:
        after = storage.request_cancel(search_id)
    except UnknownSearch:
        raise not_found(search_id) from None
    if after in (SearchStatus.SUCCEEDED, SearchStatus.FAILED):
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"search {search_id} already {after}")
    return json_of(SearchDetail.of(storage.summary(search_id)))
