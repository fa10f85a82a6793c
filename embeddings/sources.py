"""Read a table from a file, a database or memory into a polars DataFrame.

A source is one of:

- a path to CSV (``.csv``, ``.tsv``, ``.csv.gz``, ``.tsv.gz``) or Parquet (``.parquet``, ``.pq``);
- a SQLAlchemy URL (anything containing ``://``) with ``table=`` (a table reflected through
  SQLAlchemy, so its name is quoted by the dialect; ``schema.table`` names a table of a schema) or ``query=`` (the caller's own SQL text);
  a source is only ever read: a query must be one ``SELECT`` (or ``WITH ... SELECT``), checked
  with sqlparse before it reaches the database, and runs in a read-only transaction (SQLite
  ``PRAGMA query_only``, PostgreSQL ``SET TRANSACTION READ ONLY``), so a statement that writes
  anyway fails instead;
- a ``pl.DataFrame``, passed through unchanged.

Every failure the user can fix raises a one-line :class:`DataError` (or :class:`ConfigError`
for a wrong combination of arguments) that names the source. Passwords in URLs never appear
in messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import sqlalchemy as sa
import sqlparse

from embeddings.errors import ConfigError, DataError, first_line, missing_column, missing_driver

Source = str | Path | pl.DataFrame

_CSV_SEPARATORS = {".csv": ",", ".csv.gz": ",", ".tsv": "\t", ".tsv.gz": "\t"}
_PARQUET_SUFFIXES = (".parquet", ".pq")
# Rows polars looks at to choose CSV column types; a later row of another type fails loudly.
_CSV_INFER_ROWS = 10_000
# Rows of a file read at a time where a job streams it: a few hundred MB of text ids at most.
BATCH_ROWS = 1 << 22


def _is_url(source: Source) -> bool:
    return isinstance(source, str) and "://" in source


def describe_source(source: Source, *, table: str | None = None, query: str | None = None) -> str:
    """How error messages name ``source``: the path, the URL (password hidden) and table, or ``dataframe``."""
    if isinstance(source, pl.DataFrame):
        return "dataframe"
    if _is_url(source):
        try:
            url = sa.make_url(source).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            url = "database URL"
        return f"{url} table {table!r}" if table is not None else f"{url} query"
    return str(source)


def source_identity(source: Source, *, table: str | None = None, query: str | None = None) -> str | None:
    """What tells one source from another across runs (job locks, alerts superseded by a rescoring):
    a file's absolute path, a URL (password hidden) with its table or query text; None for a
    frame, which has no name."""
    if isinstance(source, pl.DataFrame):
        return None
    if _is_url(source):
        name = describe_source(source, table=table)
        return name if query is None else f"{name} {query.strip()!r}"
    return os.path.abspath(source)


def read_table(
    source: Source, *, table: str | None = None, query: str | None = None, text_columns: Collection[str] = ()
) -> pl.DataFrame:
    """Read ``source`` whole into a DataFrame, column types as the reader infers them.

    ``text_columns`` (ids, typically) are read as text from CSV, where inference would turn
    ``0081`` into 81; typed sources (Parquet, databases, frames) keep their own types.
    """
    name = describe_source(source, table=table, query=query)
    if isinstance(source, pl.DataFrame):
        if table is not None or query is not None:
            raise ConfigError("table= and query= apply to database URLs, not to a dataframe")
        return source
    if _is_url(source):
        if (table is None) == (query is None):
            raise ConfigError(f"{name}: give exactly one of table= or query= for a database URL")
        return _read_database(str(source), name, table=table, query=query)
    if table is not None or query is not None:
        raise ConfigError(f"{name}: table= and query= apply to database URLs, not to files")
    return _read_file(Path(source), name, text_columns)


def _read_file(path: Path, name: str, text_columns: Collection[str]) -> pl.DataFrame:
    return scan_collect(_scan_file(path, name, text_columns), name)


def _scan_file(path: Path, name: str, text_columns: Collection[str]) -> pl.LazyFrame:
    """A lazy scan of a CSV or Parquet file (nothing is read until it is collected)."""
    lower = path.name.lower()
    separator = next((sep for suffix, sep in _CSV_SEPARATORS.items() if lower.endswith(suffix)), None)
    if separator is None and not lower.endswith(_PARQUET_SUFFIXES):
        raise DataError(f"{name}: unknown file type; expected .csv, .tsv, .csv.gz, .tsv.gz, .parquet or .pq")
    if not path.is_file():
        raise DataError(f"{name}: file not found")
    with _reading(name):
        if separator is None:
            return pl.scan_parquet(path)
        if lower.endswith(".gz"):  # polars scans plain text only; a compressed file is read whole
            text = pl.read_csv(
                path,
                separator=separator,
                infer_schema_length=_CSV_INFER_ROWS,
                schema_overrides=dict.fromkeys(text_columns, pl.String),
                raise_if_empty=False,
            )
            return text.lazy()
        return pl.scan_csv(
            path,
            separator=separator,
            infer_schema_length=_CSV_INFER_ROWS,
            schema_overrides=dict.fromkeys(text_columns, pl.String),
            raise_if_empty=False,
        )


@contextmanager
def _reading(name: str) -> Iterator[None]:
    """Turn what polars or the OS raises while reading the file ``name`` into one-line DataErrors."""
    try:
        yield
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"{name}: cannot read file: {first_line(e)}") from None


def scan_collect(frame: pl.LazyFrame, name: str) -> pl.DataFrame:
    """Run a query over a file's scan; a read error names the file ``name``."""
    with _reading(name):
        return frame.collect()


def is_file(source: Source) -> bool:
    """Whether ``source`` is a path (CSV or Parquet), which can be scanned in batches."""
    return not isinstance(source, pl.DataFrame) and not _is_url(source)


def scan_columns(source: str | Path, columns: Collection[str], *, text_columns: Collection[str] = ()) -> pl.LazyFrame:
    """A lazy scan of ``columns`` of a CSV or Parquet file (nothing read yet but the header). A
    missing column raises :class:`DataError` naming the file; so does an empty file ("no rows")."""
    name = describe_source(source)
    scan = _scan_file(Path(source), name, text_columns)
    if any(column not in _column_names(scan, name) for column in columns):
        if scan_collect(scan.select(pl.len()), name).item() == 0:
            raise DataError(f"{name}: no rows")  # an empty file has no columns either; say what is wrong
        for column in columns:
            _check_column(scan, column, name)
    return scan.select(columns)


def scan_batches(scan: pl.LazyFrame, name: str, batch_rows: int | None = None) -> Iterator[pl.DataFrame]:
    """The rows of a file's ``scan`` (as :func:`scan_columns` gives, maybe extended), ``batch_rows``
    (default :data:`BATCH_ROWS`) at a time in file order, so a file larger than memory is read a
    batch at a time (a file of a header only gives none); a read error names the file ``name``."""
    with _reading(name):
        yield from scan.collect_batches(chunk_size=batch_rows or BATCH_ROWS, maintain_order=True)


# The column of :func:`read_keys`' frame holding each row's 0-based data row in the whole source.
SOURCE_ROW = "__seqemb_source_row"


def check_keyed(source: Source, *, table: str | None = None, query: str | None = None) -> None:
    """Raise :class:`ConfigError` unless ``source`` can be read in blocks of keys: a file, or a
    database table (a query or a frame cannot)."""
    name = describe_source(source, table=table, query=query)
    if isinstance(source, pl.DataFrame):
        raise ConfigError("a dataframe cannot be read in blocks of keys: give a file or a database table")
    if _is_url(source) and table is None:
        raise ConfigError(f"{name}: a query cannot be read in blocks of keys: give table=")
    if not _is_url(source) and (table is not None or query is not None):
        raise ConfigError(f"{name}: table= and query= apply to database URLs, not to files")


def distinct_keys(
    source: str | Path, column: str, *, table: str | None = None, text_columns: Collection[str] = ()
) -> pl.Series:
    """The distinct values of ``column`` in ``source`` (a file or a table), sorted; only that column is read."""
    name = describe_source(source, table=table)
    if _is_url(source):
        frame = _read_database(
            str(source), name, table=table, statement=lambda t: sa.select(_column(t, column, name)).distinct()
        )
    else:
        scan = _scan_file(Path(source), name, text_columns)
        _check_column(scan, column, name)
        frame = scan_collect(scan.select(column).unique(), name)
    return frame.to_series().drop_nulls().sort()


def read_keys(
    source: str | Path, column: str, keys: Collection, *, table: str | None = None, text_columns: Collection[str] = ()
) -> pl.DataFrame:
    """The rows of ``source`` whose ``column`` is one of ``keys``, in source order, with
    :data:`SOURCE_ROW` (Int64): each row's 0-based data row in the file; null for a table, whose
    rows have no order. A file is scanned with the filter pushed down; a table is read with the
    keys as bound parameters in a read-only transaction."""
    name = describe_source(source, table=table)
    keys = list(keys)
    if _is_url(source):
        frame = _read_database(
            str(source), name, table=table, statement=lambda t: sa.select(t).where(_column(t, column, name).in_(keys))
        )
        return frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(SOURCE_ROW))
    scan = _scan_file(Path(source), name, text_columns).with_row_index(SOURCE_ROW)
    _check_column(scan, column, name)
    frame = scan_collect(scan.filter(pl.col(column).is_in(pl.Series(keys, strict=False).implode())), name)
    return frame.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))


def first_repeated(
    source: str | Path, column: str, *, table: str | None = None, text_columns: Collection[str] = ()
) -> tuple[int | None, object] | None:
    """The first value of ``column`` that ``source`` holds more than once, as ``(row, value)``
    (``row`` None for a table), or None; only that column is read."""
    name = describe_source(source, table=table)
    if _is_url(source):

        def repeated(t: sa.Table) -> sa.Select:
            c = _column(t, column, name)
            return sa.select(c).group_by(c).having(sa.func.count() > 1).limit(1)

        found = _read_database(str(source), name, table=table, statement=repeated)
        return None if found.height == 0 else (None, found.item(0, 0))
    scan = _scan_file(Path(source), name, text_columns).with_row_index(SOURCE_ROW)
    _check_column(scan, column, name)
    found = scan_collect(
        scan.group_by(column)
        .agg(pl.len(), pl.col(SOURCE_ROW).min())
        .filter(pl.col("len") > 1)
        .sort(SOURCE_ROW)
        .head(1),
        name,
    )
    return None if found.height == 0 else (int(found[SOURCE_ROW][0]), found[column][0])


def _column_names(scan: pl.LazyFrame, name: str) -> list[str]:
    with _reading(name):
        return scan.collect_schema().names()


def _check_column(scan: pl.LazyFrame, column: str, name: str) -> None:
    columns = _column_names(scan, name)
    if column not in columns:
        raise missing_column(name, column, (c for c in columns if c != SOURCE_ROW))


def _column(table: sa.Table, column: str, name: str) -> sa.Column:
    if column not in table.c:
        raise missing_column(name, column, table.c.keys())
    return table.c[column]


def check_select(query: str, name: str) -> None:
    """Raise :class:`DataError` unless ``query`` is exactly one SELECT (``WITH ... SELECT`` included)."""
    statements = [s for s in sqlparse.parse(query) if s.token_first(skip_cm=True, skip_ws=True) is not None]
    if len(statements) != 1:
        raise DataError(f"{name}: give one SELECT statement, got {len(statements)} statements")
    kind = statements[0].get_type()
    if kind != "SELECT":
        article = "an" if kind[0] in "AEIOU" else "a"
        shown = "a statement sqlparse cannot classify" if kind == "UNKNOWN" else f"{article} {kind} statement"
        raise DataError(f"{name}: a query source is read only: give one SELECT (or WITH ... SELECT), got {shown}")


def _read_only(conn: sa.Connection) -> None:
    """Make ``conn``'s transaction read-only where the dialect can (a writing statement then fails)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    elif dialect == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def _reflect(conn: sa.Connection, table: str, name: str) -> sa.Table:
    """The table called ``table``, or, when there is none and the name has a dot, table ``b`` of
    schema ``a`` for ``a.b`` (PostgreSQL schemas, SQLite attached databases)."""
    try:
        return sa.Table(table, sa.MetaData(), autoload_with=conn)
    except sa.exc.NoSuchTableError:
        pass
    schema, dot, bare = table.partition(".")
    if dot and schema and bare:
        try:
            return sa.Table(bare, sa.MetaData(), schema=schema, autoload_with=conn)
        except sa.exc.NoSuchTableError:
            pass
    raise DataError(f"{name}: no such table")


def _read_database(
    url: str,
    name: str,
    *,
    table: str | None = None,
    query: str | None = None,
    statement: Callable[[sa.Table], sa.Select] | None = None,
) -> pl.DataFrame:
    """Read ``query``, or the ``table`` (``statement(table)`` when given: a select built on it)."""
    if query is not None:
        check_select(query, name)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as e:
        raise DataError(f"{name}: invalid database URL: {first_line(e)}") from None
    try:
        engine = sa.create_engine(parsed)
    except sa.exc.NoSuchModuleError as e:  # a dialect SQLAlchemy does not know
        raise DataError(f"{name}: invalid database URL: {first_line(e)}") from None
    except ImportError as e:  # a known dialect whose driver is not installed
        raise DataError(f"{name}: {missing_driver(parsed.get_backend_name(), e)}") from None
    # SQLite creates a missing database file on connect; a typo must not leave an empty one behind.
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:"):
        if not database.startswith("file:") and not Path(database).is_file():
            raise DataError(f"{name}: database file not found")
    try:
        with engine.connect() as conn:
            _read_only(conn)
            if table is None:
                chosen = sa.text(query)
            else:
                reflected = _reflect(conn, table, name)
                chosen = sa.select(reflected) if statement is None else statement(reflected)
            return pl.read_database(chosen, conn, infer_schema_length=None)
    except (sa.exc.SQLAlchemyError, pl.exceptions.PolarsError) as e:
        raise DataError(f"{name}: {first_line(e)}") from None
    finally:
        engine.dispose()
