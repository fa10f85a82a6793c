"""The store's schema version and its migrations (Alembic; the scripts are in ``migrations/versions``).

A store records its schema revision in the table ``seqemb_schema_version`` (Alembic's version
table, renamed so that an application's own Alembic history in the same database is left alone).

- :func:`ensure_schema` is what opening a :class:`~embeddings.store.Store` does: an empty
  database gets the current tables and is stamped :data:`HEAD`; a store at :data:`HEAD` is used
  as it is; an older store raises :class:`~embeddings.errors.ConfigError` telling the user to
  run ``seqemb db upgrade`` (nothing is changed), and a newer one to upgrade seqemb.
- :func:`upgrade` migrates a store to :data:`HEAD` in one transaction and returns the revisions
  before and after.
- Stores made before seqemb had migrations carry no version: :func:`current_revision` infers
  theirs from the columns of ``runs`` (the only change between those releases), so they upgrade
  like any other.

Schema work runs in one transaction that holds the database for itself: on PostgreSQL it takes
an advisory lock (DDL is transactional there); on SQLite it opens its own connection with
``BEGIN IMMEDIATE`` and foreign keys off, because SQLite changes a table by copying it, and
dropping the old copy with foreign keys on would cascade-delete the rows that reference it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, StaticPool

from embeddings.errors import ConfigError
from embeddings.settings import default_db_url
from embeddings.store.engine import make_engine, shown_url
from embeddings.store.schema import metadata

VERSION_TABLE = "seqemb_schema_version"
MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: the PostgreSQL advisory lock that serialises schema work on one database.
_SCHEMA_LOCK = 0x5E0E_3B00


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The schema revision this seqemb writes and reads."""
    return _scripts().get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The store's schema revision; None for a database without seqemb's tables."""
    stored = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if stored is not None:
        return stored
    tables = inspect(conn)
    if not tables.has_table("runs"):
        return None
    # Made before migrations: the hardening release added the run owner columns (revision 0002).
    columns = {column["name"] for column in tables.get_columns("runs")}
    return "0002" if "lock_key" in columns else "0001"


def open_engine(url: str | None) -> Engine:
    """The engine of the store at ``url`` (default: :func:`~embeddings.settings.default_db_url`), schema unchecked."""
    return make_engine(url or default_db_url())


def ensure_schema(engine: Engine) -> None:
    """Create the tables of an empty store (stamped :func:`head`), or check that the store is at :func:`head`."""
    with engine.connect() as conn:
        found = current_revision(conn)
    if found is None:
        with schema_transaction(engine) as conn:
            found = current_revision(conn)  # another process may have created it meanwhile
            if found is None:
                _create(conn)
                return
    _check(found, shown_url(engine))


def _check(found: str, shown: str) -> None:
    wanted = head()
    if found == wanted:
        return
    known = [script.revision for script in _scripts().walk_revisions()]
    if found not in known:
        raise ConfigError(
            f"the store at {shown} has schema revision {found}, newer than this seqemb's {wanted}: upgrade seqemb"
        )
    raise ConfigError(
        f"the store at {shown} has schema revision {found}, this seqemb needs {wanted}: "
        f"run `seqemb db upgrade --db {shown}` (back it up first)"
    )


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the store to ``revision`` (default :func:`head`) in one transaction; return the
    revisions before and after. An empty database at ``head`` is created from the current tables."""
    with schema_transaction(engine) as conn:
        before = current_revision(conn)
        if before is None and revision == "head":
            _create(conn)
            return None, head()
        if before is not None:
            _stamp(conn, before)  # a store made before migrations gets its inferred revision recorded
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("version_table", VERSION_TABLE)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        return before, current_revision(conn)


def _create(conn: Connection) -> None:
    """An empty database's tables, created from the current definitions and stamped :func:`head`."""
    metadata.create_all(conn)
    _stamp(conn, head())


def _stamp(conn: Connection, revision: str) -> None:
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    context.stamp(_scripts(), revision)


@contextmanager
def schema_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for schema work that no other process's schema work interleaves with."""
    if engine.dialect.name == "sqlite" and not isinstance(engine.pool, StaticPool):  # a file, not memory
        private = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 30})
        event.listen(private, "connect", _sqlite_autocommit_without_foreign_keys)
        event.listen(private, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        try:
            with private.begin() as conn:
                yield conn
        finally:
            private.dispose()
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        yield conn


def _sqlite_autocommit_without_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling off, so that BEGIN IMMEDIATE (the "begin" event) is ours.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")
