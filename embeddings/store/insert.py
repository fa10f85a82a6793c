"""How a checked chunk of rows reaches the database (the write path of :class:`embeddings.store.Store`).

:func:`write_rows` inserts a chunk in the caller's transaction with ``INSERT ... ON CONFLICT
(primary key) DO NOTHING`` (or ``DO UPDATE``) where the dialect has it, and by looking up the
keys first elsewhere. Each dialect with a bulk path (:data:`BULK_WRITERS`) takes it:

- PostgreSQL (psycopg 3): the chunk is streamed with ``COPY ... FROM STDIN`` into a temporary
  staging table, then moved by one ``INSERT INTO target SELECT ... FROM staging ON CONFLICT``
  whose row count is exact; the staging table is dropped in the same transaction;
- SQLite, whose ``executemany`` row count is exact: rows go to the driver as tuples through the
  statement SQLAlchemy compiles (bind processors applied column by column), without ``RETURNING``.

Other dialects use SQLAlchemy's ``executemany``, counting the rows written with ``RETURNING``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import polars as pl
from sqlalchemy import Column, MetaData, Table, and_, bindparam, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable, DropTable
from sqlalchemy.sql.dml import Insert

from embeddings.store.frames import driver_rows

# Dialects with INSERT ... ON CONFLICT; others take the look-up-then-write path.
UPSERT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def write_rows(
    conn: Connection, table: Table, chunk: pl.DataFrame, replace: bool, upsert_insert: Callable | None
) -> int:
    """Write ``chunk`` (checked by :func:`~embeddings.store.frames.prepare_frame`) into ``table`` on
    ``conn``; return the rows inserted (plus, with ``replace``, updated). ``upsert_insert`` is the
    dialect's ``insert`` with ON CONFLICT (:data:`UPSERT_INSERTS`), or None for the look-up path."""
    keys = [column.name for column in table.primary_key.columns]
    if upsert_insert is None:
        return _write_chunk_by_lookup(conn, table, chunk, keys, replace)
    # A stored row keeps the columns the frame does not name, even those with defaults.
    updated = [name for name in chunk.columns if name not in keys] if replace else []
    stmt = _on_conflict(upsert_insert(table), keys, updated)
    writer = BULK_WRITERS.get((conn.dialect.name, conn.dialect.driver))
    if writer is not None:
        return writer(conn, table, _with_defaults(table, chunk), stmt)
    rows = chunk.to_dicts()
    # RETURNING counts exactly the rows inserted or updated; executemany rowcounts vary by driver.
    if conn.dialect.insert_executemany_returning:
        return len(conn.execute(stmt.returning(*table.primary_key.columns), rows).all())
    return conn.execute(stmt, rows).rowcount


def _on_conflict(stmt: Insert, keys: list[str], updated: list[str]) -> Insert:
    """``stmt`` keeping the stored row on a key conflict, or setting its ``updated`` columns."""
    if updated:
        return stmt.on_conflict_do_update(index_elements=keys, set_={name: stmt.excluded[name] for name in updated})
    return stmt.on_conflict_do_nothing(index_elements=keys)


def _with_defaults(table: Table, chunk: pl.DataFrame) -> pl.DataFrame:
    """``chunk`` with the Python-side defaults of the table's missing columns, as INSERT would fill
    them (a callable default is called once for the chunk)."""
    filled = {}
    for column in table.columns:
        default = column.default
        if column.name not in chunk.columns and default is not None and (default.is_scalar or default.is_callable):
            filled[column.name] = pl.lit(default.arg if default.is_scalar else default.arg(None))
    return chunk.with_columns(**filled) if filled else chunk


def _executemany_tuples(conn: Connection, table: Table, chunk: pl.DataFrame, stmt: Insert) -> int:
    """SQLite: the compiled statement over driver tuples, without RETURNING (its executemany row count is exact)."""
    compiled = stmt.compile(dialect=conn.dialect, column_keys=chunk.columns)
    keys = [column.name for column in table.primary_key.columns]
    # Rows go in primary-key order: appending to the key's B-tree is much cheaper than random inserts.
    rows = driver_rows(table, chunk.sort(keys), compiled.positiontup, conn.dialect)
    return conn.exec_driver_sql(compiled.string, rows).rowcount


def _copy_through_staging(conn: Connection, table: Table, chunk: pl.DataFrame, stmt: Insert) -> int:
    """PostgreSQL with psycopg 3: COPY into a temporary table, then ``stmt`` as INSERT ... SELECT from it."""
    names = chunk.columns
    staging = Table(
        f"seqemb_staging_{uuid.uuid4().hex[:12]}",
        MetaData(),
        *(Column(name, table.c[name].type) for name in names),
        prefixes=["TEMPORARY"],
    )
    conn.execute(CreateTable(staging))
    quote = conn.dialect.identifier_preparer.quote
    copy_sql = f"COPY {quote(staging.name)} ({', '.join(quote(name) for name in names)}) FROM STDIN"
    with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for row in driver_rows(table, chunk, names, conn.dialect):
            copy.write_row(row)
    moved = stmt.from_select(names, select(staging), include_defaults=False).execution_options(preserve_rowcount=True)
    written = conn.execute(moved).rowcount
    conn.execute(DropTable(staging))
    return written


# (dialect, driver) -> the bulk writer of a checked chunk with its defaults filled in.
BULK_WRITERS: dict[tuple[str, str], Callable[[Connection, Table, pl.DataFrame, Insert], int]] = {
    ("postgresql", "psycopg"): _copy_through_staging,
    ("sqlite", "pysqlite"): _executemany_tuples,
}


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
