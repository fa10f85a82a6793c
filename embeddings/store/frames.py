"""Between polars frames (and Python values) and the store's table columns.

Writing: :func:`prepare_frame` checks a frame against a table (known columns, required
columns present, types, nulls, finite numbers, allowed values, lengths, repeated primary keys)
and casts each column to the store's dtype: ``String`` (integer ids become their decimal text),
``Int64``, ``Float64``, ``Boolean``, ``Datetime("us")`` (timezone-naive UTC), ``Binary``, and
struct/list columns for JSON. Every problem raises :class:`~embeddings.errors.DataError`
naming the table, the column and the first bad row.

:func:`driver_rows` turns a checked frame into DBAPI parameter tuples (the bulk write path).

Reading: :func:`polars_dtype` maps a column type to its polars dtype; :func:`conditions` and
:func:`ordering` turn ``where`` / ``order_by`` given by column name into bound SQL clauses,
with values matched to what a write stores (:func:`bind_value`). :func:`jsonable` turns a
config or metrics object into plain JSON for the runs table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import polars as pl
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ColumnElement

from embeddings.errors import DataError


def prepare_frame(table: Table, frame: pl.DataFrame) -> pl.DataFrame:
    """Check ``frame`` against ``table`` and cast it to the store's dtypes; raise DataError on the first problem."""
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"table '{table.name}': write takes a polars DataFrame, got {type(frame).__name__}")
    for name in frame.columns:
        table_column(table, name)
    for column in table.columns:
        needed = not column.nullable and column.default is None and column.server_default is None
        if needed and column.name not in frame.columns:
            raise DataError(f"table '{table.name}' needs column '{column.name}', which the frame lacks")
    frame = pl.DataFrame([_coerce(table, table.c[name], frame[name]) for name in frame.columns])
    for name in frame.columns:
        _check_values(table, table.c[name], frame[name])
    keys = [column.name for column in table.primary_key.columns]
    row = first_row(frame.select(~pl.struct(keys).is_first_distinct()).to_series())
    if row is not None:
        key = ", ".join(repr(frame[name][row]) for name in keys)
        raise DataError(
            f"table '{table.name}' row {row}: primary key ({', '.join(keys)}) = ({key}) repeats an earlier row"
        )
    return frame


def _coerce(table: Table, column: Column, series: pl.Series) -> pl.Series:
    dtype, kind = series.dtype, column.type
    if isinstance(dtype, pl.Null):
        return series if isinstance(kind, JSON) else series.cast(polars_dtype(kind, json=pl.String))
    if isinstance(kind, JSON):
        if isinstance(dtype, (pl.Struct, pl.List, pl.Array, pl.Object)):
            return series
        expected = "structs or lists (JSON text: decode it with .str.json_decode())"
    elif isinstance(kind, Boolean):
        if dtype == pl.Boolean:
            return series
        expected = "booleans"
    elif isinstance(kind, Integer):
        if dtype.is_integer():
            return series.cast(pl.Int64)
        expected = "integers"
    elif isinstance(kind, (Float, Numeric)):
        if dtype.is_numeric():
            return series.cast(pl.Float64)
        expected = "numbers"
    elif isinstance(kind, DateTime):
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is not None:
                series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            return series.cast(pl.Datetime("us"))
        if dtype == pl.Date:
            return series.cast(pl.Datetime("us"))
        expected = "datetimes (parse text with .str.to_datetime())"
    elif isinstance(kind, LargeBinary):
        if dtype == pl.Binary:
            return series
        expected = "bytes"
    elif isinstance(kind, String):
        if dtype == pl.String or dtype.is_integer() or isinstance(dtype, (pl.Categorical, pl.Enum)):
            return series.cast(pl.String)
        expected = "text or integer ids"
    else:
        raise DataError(f"table '{table.name}' column '{column.name}' has a type the store cannot write ({kind})")
    raise DataError(f"table '{table.name}' column '{column.name}' holds {dtype}; it takes {expected}")


def _check_values(table: Table, column: Column, series: pl.Series) -> None:
    where = f"table '{table.name}' column '{column.name}'"
    if not column.nullable and (row := first_row(series.is_null())) is not None:
        raise DataError(f"{where} row {row}: null in a column that needs a value")
    if series.dtype == pl.Float64 and (row := first_row(~series.is_finite() & series.is_not_null())) is not None:
        raise DataError(f"{where} row {row}: {series[row]} is not a finite number")
    if isinstance(column.type, Enum):
        allowed = list(column.type.enums)
        if (row := first_row(~series.is_in(allowed) & series.is_not_null())) is not None:
            raise DataError(f"{where} row {row}: {series[row]!r} is not one of {', '.join(allowed)}")
    elif isinstance(column.type, String) and column.type.length is not None and series.dtype == pl.String:
        too_long = series.str.len_chars() > column.type.length
        if (row := first_row(too_long.fill_null(False))) is not None:
            raise DataError(f"{where} row {row}: longer than {column.type.length} characters")


def table_column(table: Table, name: str) -> Column:
    column = table.c.get(name) if isinstance(name, str) else None
    if column is None:
        raise DataError(
            f"table '{table.name}' has no column {name!r} (columns: {', '.join(c.name for c in table.columns)})"
        )
    return column


def conditions(table: Table, where: Mapping[str, Any] | None) -> list[ColumnElement[bool]]:
    clauses = []
    for name, value in (where or {}).items():
        column = table_column(table, name)
        if value is None:
            clauses.append(column.is_(None))
        elif isinstance(value, (list, tuple, set, frozenset, pl.Series)):
            clauses.append(column.in_([bind_value(column, v) for v in value]))
        else:
            clauses.append(column == bind_value(column, value))
    return clauses


def ordering(table: Table, order_by: str | Sequence[str] | None) -> list[ColumnElement[Any]]:
    if order_by is None:
        return list(table.primary_key.columns)
    names = [order_by] if isinstance(order_by, str) else list(order_by)
    return [
        table_column(table, name[1:]).desc() if name.startswith("-") else table_column(table, name).asc()
        for name in names
    ]


def bind_value(column: Column, value: Any) -> Any:
    """Match what :meth:`Store.write` stores: integer ids as text, datetimes naive UTC."""
    if isinstance(column.type, String) and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def driver_rows(table: Table, frame: pl.DataFrame, names: Sequence[str], dialect: Dialect) -> list[tuple]:
    """``frame``'s rows as driver parameter tuples in the order ``names``, each value passed
    through its column type's bind processor for ``dialect`` (as SQLAlchemy's execute does)."""
    columns = []
    for name in names:
        values = frame[name].to_list()
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        columns.append(values if process is None else list(map(process, values)))
    return list(zip(*columns))


def polars_dtype(kind: Any, *, json: Any) -> Any:
    """The polars dtype for a SQLAlchemy column type (``json`` for JSON columns; None if unknown)."""
    if isinstance(kind, JSON):
        return json
    if isinstance(kind, Boolean):
        return pl.Boolean
    if isinstance(kind, Integer):
        return pl.Int64
    if isinstance(kind, (Float, Numeric)):
        return pl.Float64
    if isinstance(kind, DateTime):
        return pl.Datetime("us")
    if isinstance(kind, Date):
        return pl.Date
    if isinstance(kind, String):
        return pl.String
    if isinstance(kind, LargeBinary):
        return pl.Binary
    return None


def first_row(mask: pl.Series) -> int | None:
    hits = mask.arg_true()
    return int(hits[0]) if len(hits) else None


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: dataclasses and mappings to dicts, numpy to Python, NaN/inf to None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
