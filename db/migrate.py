"""Apply the Alembic migrations on start; safe when an API and a worker start at the same time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from auxnas.db.engine import DatabaseError, database_url, make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# any constant: the key of the PostgreSQL advisory lock that serialises concurrent upgrades
_PG_MIGRATION_LOCK = 0x4155584E4153  # "AUXNAS"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for messages
        return "<unparseable URL>"


def migrate(url: str | None = None, engine: Engine | None = None) -> str:
    """Upgrade the database at `url` (or `engine`) to the newest schema; returns the revision.

    Raises DatabaseError (one line) when the database cannot be reached.
    """
    url = database_url(url) if engine is None else engine.url.render_as_string(hide_password=True)
    own = engine is None
    engine = engine or make_engine(url, pool_size=1)
    head = head_revision()
    try:
        if current_revision(engine) == head:
            return head
        cfg = alembic_config()
        # the whole upgrade is one transaction holding a lock: a second process starting at the
        # same moment waits, then finds the schema current and does nothing
        with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return head
    except (OperationalError, DBAPIError) as e:
        first = str(e.orig if getattr(e, "orig", None) is not None else e).strip().splitlines()[0]
        raise DatabaseError(f"database {safe_url(url)}: {first}") from None
    finally:
        if own:
            engine.dispose()
