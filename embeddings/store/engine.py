"""The store's SQLAlchemy engine: any SQLAlchemy URL, with SQLite set up as the embedded default.

``make_engine(url)`` parses ``url`` and creates the engine. For SQLite the file's folder must
exist (only the default store's, ``$SEQEMB_HOME``, is created for it); it waits up to 30 s on a
locked database, shares one connection for an
in-memory database (so every thread sees the same data) and turns on the WAL journal and
foreign keys and a larger page cache on every connection. A server database (PostgreSQL) gets
SQLAlchemy's default pool, 5 connections kept plus 10 more at peak per process, each checked
before use. A malformed URL or a missing driver raises :class:`~embeddings.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from embeddings.errors import ConfigError, first_line, missing_driver

_CACHE_KIB = 256 * 1024  # SQLite page cache per connection, KiB


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite: its folder must exist; WAL and foreign keys on)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"store URL {url!r} is not a SQLAlchemy URL (e.g. sqlite:////path/seqemb.sqlite)") from exc
    options: dict[str, Any] = {}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            # One shared connection: every thread sees the same in-memory database.
            options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        else:
            parent = Path(database).parent
            if not database.startswith("file:") and not parent.is_dir():
                # Only the default store's folder ($SEQEMB_HOME) is created, by settings.seqemb_home:
                # a typo in a URL must not leave a new, empty store behind.
                shown = parsed.render_as_string(hide_password=True)
                raise ConfigError(f"store URL {shown!r}: folder {parent} does not exist; create it first")
            options = {"connect_args": {"timeout": 30}}
    else:
        # A server restarted or a connection an idle timeout closed is replaced, not raised mid-job.
        options = {"pool_pre_ping": True}
    try:
        engine = create_engine(parsed, **options)
    except NoSuchModuleError as exc:  # a dialect SQLAlchemy does not know
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"store URL {shown!r}: {first_line(exc)}") from None
    except ImportError as exc:  # a known dialect whose driver is not installed
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"store URL {shown!r}: {missing_driver(parsed.get_backend_name(), exc)}") from None
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def shown_url(engine: Engine) -> str:
    """The engine's URL as the user may see it (password hidden)."""
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def opening(engine: Engine) -> Iterator[None]:
    """Turn a database that cannot be opened (locked, unreadable, not a database, a refused
    connection) into one :class:`~embeddings.errors.ConfigError` line."""
    try:
        yield
    except DatabaseError as exc:
        raise ConfigError(f"cannot open the store at {shown_url(engine)}: {first_line(exc.orig)}") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside a writer; SQLite enforces foreign keys only when asked; a page
    cache of up to 256 MiB (allocated as pages are used; the default is 2 MiB) keeps the indexes
    of a few million output rows in memory while bulk writes insert into them."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA cache_size={-_CACHE_KIB}")
    cursor.close()
