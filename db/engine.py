"""Engines and sessions: the database URL, SQLite made safe for an API and a worker at once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATABASE_URL = "sqlite:///auxnas.db"
# how long a SQLite writer waits for another process's write lock before giving up
SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseError(ValueError):
    """A user mistake in the database URL or an unreachable database: one line."""


# the PostgreSQL driver the project depends on (psycopg2-binary); a plain postgresql:// URL uses it
POSTGRES_DRIVER = "postgresql+psycopg2"


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else `AUXNAS_DATABASE_URL`, else a SQLite file here."""
    return url or os.environ.get("AUXNAS_DATABASE_URL") or DEFAULT_DATABASE_URL


def is_sqlite(url_or_engine: str | Engine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str | None = None, pool_size: int = 20) -> Engine:
    """An engine for `url`; for SQLite: WAL journal, busy timeout, foreign keys on."""
    url = database_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"AUXNAS_DATABASE_URL: cannot parse database URL {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
        )
        _make_sqlite_safe(engine)
        return engine
    kwargs: dict = {"pool_pre_ping": True}
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # SQLAlchemy's default driver is not the one installed
            parsed = parsed.set(drivername=POSTGRES_DRIVER)
        kwargs.update(pool_size=pool_size, max_overflow=pool_size)
    try:
        return create_engine(parsed, **kwargs)
    except Exception as e:  # unknown dialect or missing driver
        raise DatabaseError(f"AUXNAS_DATABASE_URL: unsupported database {backend!r} ({e})") from None


def _make_sqlite_safe(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        # let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions defer the write lock)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # IMMEDIATE takes the write lock up front, so a read-then-write transaction waits
        # (busy_timeout) at BEGIN instead of failing with "database is locked" halfway
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], write: bool = False) -> Iterator[Session]:
    """A session for one transaction. `write=True` commits at the end and, on SQLite, holds the
    write lock from the start; a read-only one is rolled back."""
    with factory() as session:
        if write:
            session.connection(execution_options={"sqlite_immediate": True})
        yield session
        if write:
            session.commit()
