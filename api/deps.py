"""Request dependencies: the storage of this app, and the search a path names."""

from __future__ import annotations

from fastapi import HTTPException, Path, Request, status

from auxnas.db.storage import SqlStorage

# ids and offsets fit a signed 64-bit integer (SQLite INTEGER, PostgreSQL BIGINT)
MAX_ID = 2**63 - 1


def get_storage(request: Request) -> SqlStorage:
    return request.app.state.storage


def not_found(search_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"search {search_id} does not exist")


def search_id_in_path(
    search_id: int = Path(
        description=f"id of the search, 1..{MAX_ID}",
        json_schema_extra={"minimum": 1, "maximum": MAX_ID},
    ),
) -> int:
    """The search id of the path; 404 for one no database can hold (there is no such search)
    before it reaches a query, where it would overflow the column."""
    if not 1 <= search_id <= MAX_ID:
        raise not_found(search_id)
    return search_id
