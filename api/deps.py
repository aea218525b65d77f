"""Request dependencies: the storage of this app, and the search a path names."""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from db.storage import SqlStorage


def get_storage(request: Request) -> SqlStorage:
    return request.app.state.storage


def not_found(search_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"search {search_id} does not exist")
