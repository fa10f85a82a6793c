"""The store: runs, input data and job outputs in one SQL database (SQLAlchemy 2 Core).

``Store(url)`` opens any SQLAlchemy URL; without one it opens
:func:`embeddings.settings.default_db_url` (``SEQEMB_DB_URL``, else a SQLite file in
``SEQEMB_HOME``). SQLite is the embedded default (WAL journal, foreign keys on; only the
default store's folder is created); PostgreSQL is the production target. The tables are in
:mod:`embeddings.store.schema`; only those tables are reachable, and no SQL is ever built from
a user's string: names are looked up among the known tables and columns, values are bound.

Writes are idempotent and resumable. :meth:`Store.write` checks the whole frame first (columns,
types, nulls, lengths, allowed values, repeated keys, references to runs), then writes it in
chunks of ``chunk_size`` rows, each chunk in its own transaction, with
``INSERT ... ON CONFLICT (primary key) DO NOTHING`` (or ``DO UPDATE``). A job killed between
or inside chunks loses at most its open chunk; running it again writes exactly the missing rows.
:meth:`Store.write_all` writes several frames (of one or more tables) in one transaction: all
their rows land together or none do.

How rows reach each dialect (ON CONFLICT, tuples on SQLite) is :mod:`embeddings.store.insert`;
the run records (``store.run``, ``start_run`` .. ``runs``) are :mod:`embeddings.store.runs`.

Frames in and out are polars. Column types map to ``String`` (ids and text; integer ids are
written as their decimal text), ``Int64``, ``Float64``, ``Boolean``, ``Datetime("us")``
(timezone-naive UTC; aware input is converted) and, for JSON columns, struct/list columns on
the way in and JSON text (``String``; decode with ``pl.col(c).str.json_decode()``) on the way out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import polars as pl
from sqlalchemy import JSON, Enum, Table, Text, cast, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Select, Update

from embeddings.checks import check_int
from embeddings.errors import ConfigError, DataError, first_line
from embeddings.settings import default_db_url
from embeddings.store.engine import make_engine, opening, shown_url
from embeddings.store.frames import (
    bind_value,
    conditions,
    first_row,
    ordering,
    polars_dtype,
    prepare_frame,
    table_column,
)
from embeddings.store.insert import UPSERT_INSERTS, write_rows
from embeddings.store.migrate import ensure_schema
from embeddings.store.runs import RunRecords
from embeddings.store.schema import metadata, utcnow

OnConflict = Literal["ignore", "update"]


class Store(RunRecords):
    """Runs, input tables and outputs in one database; frames in and out are polars.

    ``Store(url=None)`` connects and creates missing tables. ``url`` is any SQLAlchemy URL;
    ``None`` means :func:`embeddings.settings.default_db_url`.
    """

    def __init__(self, url: str | None = None) -> None:
        self.engine: Engine = make_engine(url or default_db_url())
        self._upsert_insert = UPSERT_INSERTS.get(self.engine.dialect.name)
        self.create()

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return shown_url(self.engine)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def url_for_workers(self) -> str:
        """The URL other processes open this store with (password included): a job's workers.

        An in-memory SQLite store lives in this process only: :class:`ConfigError`."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and (url.database or "") in ("", ":memory:"):
            raise ConfigError(f"the store at {self.url} is in memory: workers in other processes cannot write to it")
        return url.render_as_string(hide_password=False)

    def create(self) -> None:
        """Create the tables of an empty database, or check that the store's schema is this seqemb's.

        A store at an older schema revision is refused with one line telling to run
        ``seqemb db upgrade`` (nothing is changed); see :mod:`embeddings.store.migrate`.
        """
        with opening(self.engine):
            ensure_schema(self.engine)

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    @property
    def tables(self) -> tuple[str, ...]:
        """Names of the tables the store knows, sorted."""
        return tuple(sorted(metadata.tables))

    def table(self, name: str) -> Table:
        """The Core ``Table`` called ``name``, for building selects for :meth:`read_sql`."""
        table = metadata.tables.get(name) if isinstance(name, str) else None
        if table is None:
            raise DataError(f"the store has no table {name!r} (tables: {', '.join(self.tables)})")
        return table

    # ------------------------------------------------------------------ writes

    def write(
        self,
        table_name: str,
        frame: pl.DataFrame,
        *,
        on_conflict: OnConflict = "ignore",
        chunk_size: int = 10_000,
    ) -> int:
        """Write ``frame`` into ``table_name``; return the number of rows written.

        ``on_conflict="ignore"`` keeps rows whose primary key is already stored (the count is
        the rows inserted); ``"update"`` replaces the frame's columns of those rows (the count is
        rows inserted plus rows updated). The frame is checked whole before anything is written;
        then each chunk of ``chunk_size`` rows is written in its own transaction.
        """
        check_int("chunk_size", chunk_size)
        table, frame = self._checked(table_name, frame, on_conflict)
        written = 0
        for start in range(0, frame.height, chunk_size):
            chunk = frame.slice(start, chunk_size)
            try:
                with self.engine.begin() as conn:
                    written += self._write_chunk(conn, table, chunk, on_conflict == "update")
            except IntegrityError as exc:
                raise DataError(
                    f"table '{table.name}' rows {start}-{start + chunk.height - 1}: {first_line(exc.orig)}"
                ) from exc
        return written

    def write_all(
        self,
        frames: Sequence[tuple[str, pl.DataFrame]],
        *,
        on_conflict: OnConflict = "ignore",
        updates: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = (),
    ) -> list[int]:
        """Write each ``(table_name, frame)`` of ``frames``, then apply each ``(table_name, values,
        where)`` of ``updates`` (as :meth:`update` does), in ONE transaction; return the rows
        written per frame (counted as in :meth:`write`).

        Every frame and update is checked before anything is written; then all their rows are
        committed together, or none are (a crash or an error rolls the whole transaction back).
        """
        checked = [self._checked(name, frame, on_conflict) for name, frame in frames]
        statements = [self._update_statement(name, values, where) for name, values, where in updates]
        written = []
        try:
            with self.engine.begin() as conn:
                for table, frame in checked:
                    written.append(
                        self._write_chunk(conn, table, frame, on_conflict == "update") if frame.height else 0
                    )
                for statement in statements:
                    conn.execute(statement)
        except IntegrityError as exc:
            if len(written) == len(checked):  # every frame was written: an update failed
                raise DataError(f"update in a write of {len(checked)} frames: {first_line(exc.orig)}") from exc
            table, frame = checked[len(written)]
            raise DataError(f"table '{table.name}' rows 0-{frame.height - 1}: {first_line(exc.orig)}") from exc
        return written

    def _checked(self, table_name: str, frame: pl.DataFrame, on_conflict: str) -> tuple[Table, pl.DataFrame]:
        """The table and the frame checked and cast for it (see :func:`prepare_frame`), references checked."""
        table = self.table(table_name)
        if on_conflict not in ("ignore", "update"):
            raise ConfigError(f"on_conflict must be 'ignore' or 'update', got {on_conflict!r}")
        frame = prepare_frame(table, frame)
        self._check_references(table, frame)
        return table, frame

    def update(self, table_name: str, values: Mapping[str, Any], *, where: Mapping[str, Any]) -> int:
        """Set ``values`` on the rows matching ``where`` (as in :meth:`read`; ``{}`` is every row); return rows changed.

        A table with an ``updated_at`` column gets it set to now unless ``values`` names it.
        """
        statement = self._update_statement(table_name, values, where)
        try:
            with self.engine.begin() as conn:
                return conn.execute(statement).rowcount
        except IntegrityError as exc:
            raise DataError(f"table '{table_name}' update: {first_line(exc.orig)}") from exc

    def _update_statement(self, table_name: str, values: Mapping[str, Any], where: Mapping[str, Any]) -> Update:
        """The checked UPDATE of :meth:`update` (values bound, allowed values of enum columns checked)."""
        table = self.table(table_name)
        assignments = {
            table_column(table, name).name: bind_value(table.c[name], value) for name, value in values.items()
        }
        if not assignments:
            raise ConfigError(f"update of table '{table.name}' names no column to set")
        for name, value in assignments.items():
            kind = table.c[name].type
            if isinstance(kind, Enum) and value is not None and value not in kind.enums:
                allowed = ", ".join(kind.enums)
                raise DataError(f"table '{table.name}' column '{name}': {value!r} is not one of {allowed}")
        if "updated_at" in table.c and "updated_at" not in assignments:
            assignments["updated_at"] = utcnow()
        return update(table).where(*conditions(table, where)).values(assignments)

    def _write_chunk(self, conn: Connection, table: Table, chunk: pl.DataFrame, replace: bool) -> int:
        return write_rows(conn, table, chunk, replace, self._upsert_insert)

    def _check_references(self, table: Table, frame: pl.DataFrame) -> None:
        """Each foreign-key value of ``frame`` must exist in the referenced table."""
        for foreign_key in table.foreign_keys:
            name = foreign_key.parent.name
            if name not in frame.columns:
                continue
            target = foreign_key.column
            wanted = frame[name].drop_nulls().unique().to_list()
            with self.engine.connect() as conn:
                found = conn.execute(select(target).where(target.in_(wanted))).scalars().all()
            row = first_row(~frame[name].is_in(found) & frame[name].is_not_null())
            if row is not None:
                raise DataError(
                    f"table '{table.name}' column '{name}' row {row}: {frame[name][row]!r} "
                    f"is not a {target.table.name}.{target.name} in the store"
                )

    # ------------------------------------------------------------------ reads

    def read(
        self,
        table_name: str,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        order_by: str | Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Rows of ``table_name`` as a frame typed by the table definition.

        ``where`` maps column -> value (a list/tuple/set means IN, ``None`` means IS NULL);
        ``order_by`` names columns, ``"-score"`` for descending (default: the primary key, so
        ``limit``/``offset`` pages are stable); ``columns`` picks and orders the columns.
        """
        table = self.table(table_name)
        chosen = [table_column(table, name) for name in columns] if columns else list(table.columns)
        stmt = (
            select(*(cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in chosen))
            .where(*conditions(table, where))
            .order_by(*ordering(table, order_by))
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return pl.DataFrame(rows, schema={c.name: polars_dtype(c.type, json=pl.String) for c in chosen}, orient="row")

    def count(self, table_name: str, where: Mapping[str, Any] | None = None) -> int:
        """Number of rows of ``table_name`` matching ``where`` (as in :meth:`read`)."""
        table = self.table(table_name)
        stmt = select(func.count()).select_from(table).where(*conditions(table, where))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def read_sql(self, stmt: Select) -> pl.DataFrame:
        """Run a Core ``select(...)`` (build it from :meth:`table`) and return its rows as a frame.

        Columns of known types get the store's dtypes; JSON columns come back as Python
        objects (``pl.Object``); computed columns of unknown type are inferred.
        """
        if not isinstance(stmt, Select):
            raise ConfigError(f"read_sql takes a SQLAlchemy Core select(...), got {type(stmt).__name__}")
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            names = list(result.keys())
            rows = result.all()
        dtypes = [polars_dtype(c.type, json=pl.Object) for c in stmt.selected_columns]
        overrides = {name: dtype for name, dtype in zip(names, dtypes) if dtype is not None}
        return pl.DataFrame(rows, schema=names, schema_overrides=overrides, orient="row")
