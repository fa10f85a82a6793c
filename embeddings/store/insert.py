"""How a checked chunk of rows reaches the database (the write path of :class:`embeddings.store.Store`).

:func:`write_rows` inserts a chunk in the caller's transaction with ``INSERT ... ON CONFLICT
(primary key) DO NOTHING`` (or ``DO UPDATE``) where the dialect has it, and by looking up the
keys first elsewhere. On SQLite, whose ``executemany`` row count is exact, rows go to the driver
as tuples through the statement SQLAlchemy compiles (bind processors applied column by column),
without ``RETURNING``; elsewhere ``RETURNING`` counts the rows written.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
from sqlalchemy import Table, and_, bindparam, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from embeddings.store.frames import driver_rows

# Dialects with INSERT ... ON CONFLICT; others take the look-up-then-write path.
UPSERT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# Dialects whose driver's executemany row count is exactly the rows inserted or updated.
EXACT_EXECUTEMANY_ROWCOUNT = {"sqlite"}


def write_rows(
    conn: Connection, table: Table, chunk: pl.DataFrame, replace: bool, upsert_insert: Callable | None
) -> int:
    """Write ``chunk`` (checked by :func:`~embeddings.store.frames.prepare_frame`) into ``table`` on
    ``conn``; return the rows inserted (plus, with ``replace``, updated). ``upsert_insert`` is the
    dialect's ``insert`` with ON CONFLICT (:data:`UPSERT_INSERTS`), or None for the look-up path."""
    keys = [column.name for column in table.primary_key.columns]
    if upsert_insert is None:
        return _write_chunk_by_lookup(conn, table, chunk, keys, replace)
    stmt = upsert_insert(table)
    changes = {name: stmt.excluded[name] for name in chunk.columns if name not in keys}
    if replace and changes:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=changes)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    if conn.dialect.name in EXACT_EXECUTEMANY_ROWCOUNT:
        compiled = stmt.compile(dialect=conn.dialect, column_keys=chunk.columns)
        names = compiled.positiontup
        # Only the frame's columns are bound (no Python-side default to fill per row). Rows go
        # in primary-key order: appending to the key's B-tree is much cheaper than random inserts.
        if names is not None and sorted(names) == sorted(chunk.columns):
            rows = driver_rows(table, chunk.sort(keys), names, conn.dialect)
            return conn.exec_driver_sql(compiled.string, rows).rowcount
    rows = chunk.to_dicts()
    # RETURNING counts exactly the rows inserted or updated; executemany rowcounts vary by driver.
    if conn.dialect.insert_executemany_returning:
        return len(conn.execute(stmt.returning(*table.primary_key.columns), rows).all())
    return conn.execute(stmt, rows).rowcount


def _write_chunk_by_lookup(conn: Connection, table: Table, chunk: pl.DataFrame, keys: list[str], replace: bool) -> int:
    """Insert-if-absent (and update-if-present) for dialects without ON CONFLICT.

    Looks up which keys exist, then inserts the others; a concurrent writer of the same keys
    can make the chunk fail (it is then rolled back whole), never duplicate a row.
    """
    key_columns = [table.c[name] for name in keys]
    wanted = chunk.select(keys)
    found = conn.execute(select(*key_columns).where(tuple_(*key_columns).in_(wanted.rows()))).all()
    stored = pl.DataFrame(found, schema=wanted.schema, orient="row")
    new = chunk.join(stored, on=keys, how="anti")
    if new.height:
        conn.execute(insert(table), new.to_dicts())
    others = [name for name in chunk.columns if name not in keys]
    if not (replace and others and stored.height):
        return new.height
    old = chunk.join(stored, on=keys, how="semi")
    stmt = (
        update(table)
        .where(and_(*(table.c[name] == bindparam(f"key_{name}") for name in keys)))
        .values({name: bindparam(f"new_{name}") for name in others})
    )
    renamed = old.rename({name: f"key_{name}" for name in keys} | {name: f"new_{name}" for name in others})
    conn.execute(stmt, renamed.to_dicts())
    return new.height + old.height
