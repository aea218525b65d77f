"""`GET /searches/{id}/plots/{name}.png`: reward per trial, sampled operators, best genotype."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status

from auxnas.api.deps import get_storage, not_found, search_id_in_path
from auxnas.api.schemas import Problem
from auxnas.controller.plots import PLOT_NAMES, PlotError, render
from auxnas.db.storage import SqlStorage

router = APIRouter(prefix="/searches", tags=["plots"])


@router.get(
    "/{search_id}/plots/{name}.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "the plot as a PNG image"},
        404: {"model": Problem, "description": "unknown search or plot name, or nothing to draw yet"},
    },
    summary=f"A plot of the search as PNG: one of {', '.join(PLOT_NAMES)}",
)
def search_plot(
    name: str, search_id: int = Depends(search_id_in_path), storage: SqlStorage = Depends(get_storage)
) -> Response:
    if name not in PLOT_NAMES:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"unknown plot {name!r}; one of {', '.join(PLOT_NAMES)}"
        )
    if not storage.search_exists(search_id):
        raise not_found(search_id)
    trials = storage.trials(search_id)
    summary = storage.summary(search_id)
    title = f"search {search_id} ({summary.name}): {name}" if summary is not None else ""
    try:
        png = render(name, trials, title=title, answer=summary.answer if summary is not None else None)
    except PlotError as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"search {search_id}: {e}") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
