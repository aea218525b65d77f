"""The database of the CLI commands: the `--database-url` option and opening it (migrated)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from auxnas.cli.main import fail

if TYPE_CHECKING:
    from auxnas.db.storage import SqlStorage

DB_OPTION = typer.Option(
    None,
    "--database-url",
    envvar="AUXNAS_DATABASE_URL",
    help="SQLAlchemy URL of the database [env AUXNAS_DATABASE_URL; default sqlite:///auxnas.db].",
    show_default=False,
)


def open_storage(database_url: str | None = None) -> SqlStorage:
    """The database at `database_url` (else AUXNAS_DATABASE_URL, else the default), migrated to
    the current schema; exit 2 with one line when it cannot be opened."""
    from auxnas.db.engine import DatabaseError
    from auxnas.db.migrate import migrate
    from auxnas.db.storage import SqlStorage

    try:
        storage = SqlStorage(database_url, owner=None)
        migrate(engine=storage.engine)
    except DatabaseError as e:
        fail(str(e))
    return storage
