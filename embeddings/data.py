"""Events -> checked polars frame -> sessions -> vocabulary-encoded CSR sequences.

An event is one row: an *entity* (user, card, session) touched an *item* at time *ts*,
optionally with a *weight*. :func:`read_events` reads any source of
:mod:`embeddings.sources`, checks it and renames the caller's columns to the canonical
``entity``, ``item``, ``ts`` (Datetime µs) and ``weight`` (Float64). :func:`split_sessions`
cuts each entity's history where the time gap is too long, and :func:`build_sequences`
turns the sessions into :class:`Sequences` (int32 tokens, int64 offsets) with a
:class:`Vocabulary`. Everything is polars / numpy over whole columns, no Python loop over
rows: building takes about 20 bytes of working memory per event beyond the frame itself
(int64 session ids, int32 tokens, two masks) and keeps 4 bytes per kept token.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import numpy as np
import polars as pl

from embeddings.checks import check_int
from embeddings.errors import ConfigError, DataError, RowError, missing_column
from embeddings.keys import FORBIDDEN_ID_PATTERN, ID_LENGTH, id_problem
from embeddings.sequences import Sequences
from embeddings.sources import Source, describe_source, read_table
from embeddings.vocab import Vocabulary

# ISO-8601 forms accepted in text columns, tried in order after a 'T' separator becomes ' '.
_TS_FORMAT_WITH_ZONE = "%Y-%m-%d %H:%M:%S%.f%#z"
_TS_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class EventSchema:
    """Names of the caller's columns. ``timestamp=None``: rows are in time order as read.

    ``integer_ids``: the entity and item ids are integers (text that is not one is an error);
    otherwise ids in CSV files are read as text and typed sources keep their column types.
    """

    entity: str = "entity"
    item: str = "item"
    timestamp: str | None = None
    weight: str | None = None
    # False: ids in text files are read as text, so "0081" and "81" stay two ids.
    integer_ids: bool = False

    def __post_init__(self) -> None:
        names = [n for n in (self.entity, self.item, self.timestamp, self.weight) if n is not None]
        if any(not isinstance(n, str) or not n for n in names):
            raise ConfigError(f"event column names must be non-empty strings, got {names}")
        if len(set(names)) != len(names):
            raise ConfigError(f"event columns must be distinct, got {names}")

    def id_columns(self) -> list[str]:
        """The caller's id columns: read as text from CSV unless ``integer_ids``."""
        return [] if self.integer_ids else [self.entity, self.item]

    def columns(self) -> dict[str, str]:
        """Canonical name -> caller's column name, for the columns this schema uses."""
        named = {"entity": self.entity, "item": self.item, "ts": self.timestamp, "weight": self.weight}
        return {canonical: column for canonical, column in named.items() if column is not None}


@dataclass(frozen=True)
class ReadReport:
    """What :func:`read_events` read: rows and distinct entities and items."""

    source: str
    rows: int
    entities: int
    items: int

    def __str__(self) -> str:
        return f"{self.source}: {self.rows} events, {self.entities} entities, {self.items} items"


@dataclass(frozen=True)
class BuildReport:
    """What :func:`build_sequences` kept and dropped.

    ``rows_dropped`` maps each reason to the number of events it removed:
    ``below_min_count`` (item rarer than ``min_count``), ``unknown_item`` (item not in a given
    vocabulary) and ``short_sequence`` (left in a sequence shorter than ``min_length``).
    ``sequences_dropped`` counts those short sequences.
    """

    rows_read: int
    rows_dropped: dict[str, int]
    sequences_dropped: int
    sequences: int
    tokens: int
    vocab_size: int

    def __str__(self) -> str:
        dropped = ", ".join(f"{reason} {n}" for reason, n in self.rows_dropped.items())
        return (
            f"{self.rows_read} events -> {self.sequences} sequences, {self.tokens} tokens, "
            f"vocabulary {self.vocab_size}; rows dropped: {dropped}; "
            f"short sequences dropped: {self.sequences_dropped}"
        )


class BuiltSequences(NamedTuple):
    """Result of :func:`build_sequences`; ``owners`` row ``i`` (``entity``, ``session``) owns sequence ``i``."""

    sequences: Sequences
    vocab: Vocabulary
    report: BuildReport
    owners: pl.DataFrame


def bad_row(name: str, column: str, row: int, problem: str) -> RowError:
    return RowError(name, column, row, problem)


def check_nulls(name: str, column: str, s: pl.Series) -> None:
    if s.null_count():
        raise bad_row(name, column, int(s.is_null().arg_max()), "missing value")


def check_ids(name: str, column: str, s: pl.Series) -> pl.Series:
    """Entity or item ids as Int64 or String; text ids must be storable (:func:`embeddings.keys.id_problem`)."""
    check_nulls(name, column, s)
    if s.dtype in (pl.Categorical, pl.Enum):
        s = s.cast(pl.String)
    if s.dtype.is_integer():
        return s.cast(pl.Int64)
    if s.dtype != pl.String:
        raise DataError(f"{name}: column {column!r} has type {s.dtype}; expected integer or string ids")
    bad = (s.str.len_chars() > ID_LENGTH) | s.str.contains(FORBIDDEN_ID_PATTERN)
    if bad.any():
        row = int(bad.arg_max())
        raise bad_row(name, column, row, id_problem(s[row]) or "not a valid id")
    return s


def check_integer_ids(name: str, column: str, s: pl.Series) -> pl.Series:
    """Ids the caller declared integers: Int64, text of plain decimal integers converted."""
    check_nulls(name, column, s)
    if s.dtype.is_integer():
        return s.cast(pl.Int64)
    if s.dtype != pl.String:
        raise DataError(f"{name}: column {column!r} has type {s.dtype}; expected integer ids")
    parsed = s.str.strip_chars().str.to_integer(strict=False)
    if parsed.null_count():
        row = int(parsed.is_null().arg_max())
        raise bad_row(name, column, row, f"{s[row][:40]!r} is not an integer id")
    return parsed.cast(pl.Int64)


def id_check(integer_ids: bool) -> Check:
    """The check of id columns: integers when the caller asked for them, else integers or text."""
    return check_integer_ids if integer_ids else check_ids


def check_weights(name: str, column: str, s: pl.Series, what: str = "weight") -> pl.Series:
    """Float64 values that must be finite and >= 0 (weights, amounts); ``what`` names them in errors."""
    check_nulls(name, column, s)
    if not s.dtype.is_numeric():
        raise DataError(f"{name}: column {column!r} has type {s.dtype}; expected numbers")
    w = s.cast(pl.Float64)
    bad = ~(w.is_finite() & (w >= 0))
    if bad.any():
        row = int(bad.arg_max())
        raise bad_row(name, column, row, f"{what} {w[row]!r} is not a finite number >= 0")
    return w


def check_timestamps(name: str, column: str, s: pl.Series) -> pl.Series:
    """Datetime (µs, naive UTC) from datetimes, dates, ISO-8601 text or integer unix seconds."""
    check_nulls(name, column, s)
    if isinstance(s.dtype, pl.Datetime):
        if s.dtype.time_zone is not None:
            s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return s.cast(pl.Datetime("us"))
    if s.dtype == pl.Date:
        return s.cast(pl.Datetime("us"))
    if s.dtype.is_integer():
        return pl.from_epoch(s, time_unit="s").cast(pl.Datetime("us"))
    if s.dtype != pl.String:
        raise DataError(
            f"{name}: column {column!r} has type {s.dtype}; "
            "expected datetimes, dates, ISO-8601 text or integer unix seconds"
        )
    text = s.str.strip_chars().str.replace("T", " ", literal=True)
    with_zone = (
        text.str.to_datetime(_TS_FORMAT_WITH_ZONE, strict=False, time_unit="us")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
    )
    naive = [text.str.to_datetime(f, strict=False, time_unit="us") for f in _TS_FORMATS]
    parsed = pl.select(pl.coalesce(with_zone, *naive)).to_series()
    if parsed.null_count():
        row = int(parsed.is_null().arg_max())
        raise bad_row(name, column, row, f"cannot parse {s[row]!r} as a timestamp")
    return parsed


Check = Callable[[str, str, pl.Series], pl.Series]


def read_checked(
    source: Source,
    columns: dict[str, str],
    checks: dict[str, Check],
    *,
    table: str | None = None,
    query: str | None = None,
    text_columns: Collection[str] = (),
) -> tuple[str, pl.DataFrame]:
    """Read ``source`` and return ``(its name, frame)`` of the canonical ``columns``, each checked.

    ``columns`` maps canonical names to the caller's column names; ``checks[canonical](source
    name, column, values)`` validates and converts one column (raising :class:`DataError`
    naming the source, column and row). An empty source or a missing column is a DataError.
    ``text_columns`` are read as text from CSV files (ids: leading zeros kept).
    """
    name = describe_source(source, table=table, query=query)
    raw = read_table(source, table=table, query=query, text_columns=text_columns)
    if raw.height == 0:
        raise DataError(f"{name}: no rows")
    missing = [c for c in columns.values() if c not in raw.columns]
    if missing:
        raise missing_column(name, missing[0], raw.columns)
    return name, pl.DataFrame(
        [checks[canonical](name, column, raw[column]).rename(canonical) for canonical, column in columns.items()]
    )


def read_events(
    source: Source, schema: EventSchema, *, table: str | None = None, query: str | None = None
) -> tuple[pl.DataFrame, ReadReport]:
    """Read and check events; return them sorted by (entity, ts) with a :class:`ReadReport`.

    Columns: ``entity`` and ``item`` (String, or Int64 where the source's column holds integers or
    ``schema.integer_ids``), ``ts`` (Datetime µs, naive UTC; only
    when ``schema.timestamp`` is set) and ``weight`` (Float64; only when ``schema.weight`` is
    set). The sort is stable: events of one entity at the same time (or all of them, without
    a timestamp) keep their order in the source. A bad value raises :class:`DataError`
    naming the source, the column and the first bad row (0-based, header not counted).
    """
    ids = id_check(schema.integer_ids)
    checks = {"entity": ids, "item": ids, "ts": check_timestamps, "weight": check_weights}
    name, events = read_checked(
        source, schema.columns(), checks, table=table, query=query, text_columns=schema.id_columns()
    )
    events = events.sort(["entity", "ts"] if "ts" in events.columns else "entity", maintain_order=True)
    report = ReadReport(name, events.height, events["entity"].n_unique(), events["item"].n_unique())
    return events, report


def split_sessions(events: pl.DataFrame, gap: timedelta | None) -> pl.DataFrame:
    """Add an Int64 ``session`` column numbering sessions 0, 1, ... in row order.

    A session starts at each new entity and, when ``gap`` is given, wherever an entity's
    event comes more than ``gap`` after its previous one. ``gap=None``: one session per
    entity. Events not sorted by (entity, ts) are sorted first (stably).
    """
    if gap is not None:
        if "ts" not in events.columns:
            raise ConfigError("a session gap needs timestamps; the events have no 'ts' column")
        if gap <= timedelta(0):
            raise ConfigError(f"session gap must be positive, got {gap}")
    keys = ["entity", "ts"] if "ts" in events.columns else ["entity"]
    if not events.select(pl.struct(keys)).to_series().is_sorted():
        events = events.sort(keys, maintain_order=True)
    starts = pl.col("entity").ne_missing(pl.col("entity").shift(1))
    if gap is not None:
        # Across an entity boundary the diff is meaningless, but that row starts a session anyway.
        starts = starts | (pl.col("ts").diff() > gap).fill_null(False)
    return events.with_columns(session=starts.cast(pl.Int64).cum_sum() - 1)


def build_sequences(
    events: pl.DataFrame,
    *,
    min_count: int = 1,
    session_gap: timedelta | None = None,
    min_length: int = 2,
    vocab: Vocabulary | None = None,
) -> BuiltSequences:
    """Turn events (as from :func:`read_events`) into one token sequence per session.

    Items are encoded with ``vocab``, built here from the item counts when ``None``; then
    ``min_count`` drops rarer items. A given vocabulary fixes the item set instead: its
    unknown items are dropped and ``min_count`` is not applied. Sequences left shorter than
    ``min_length`` are dropped. Every dropped event is counted in the report by reason.
    Tokens within a sequence are in time order; weights, if any, are not used.
    """
    check_int("min_count", min_count)
    check_int("min_length", min_length)
    events = split_sessions(events, session_gap)
    dropped = {"below_min_count": 0, "unknown_item": 0, "short_sequence": 0}
    if vocab is None:
        vocab, vocab_report = Vocabulary.build(events["item"], min_count=min_count)
        dropped["below_min_count"] = vocab_report.dropped_rows["below_min_count"]
        tokens = vocab.encode(events["item"])
    else:
        tokens = vocab.encode(events["item"])
        dropped["unknown_item"] = int(np.count_nonzero(tokens == Vocabulary.PAD))

    session = events["session"].to_numpy()
    n_sessions = int(session[-1]) + 1 if session.size else 0
    known = tokens != Vocabulary.PAD
    lengths = np.bincount(session[known], minlength=n_sessions)
    keep_seq = lengths >= min_length
    keep_row = known & keep_seq[session]
    dropped["short_sequence"] = int(np.count_nonzero(known) - np.count_nonzero(keep_row))

    sequences = Sequences.from_lengths(lengths[keep_seq], tokens[keep_row])
    first_rows = np.flatnonzero(np.diff(session, prepend=-1))
    owners = events.select("entity", "session")[first_rows[keep_seq]]
    report = BuildReport(
        rows_read=events.height,
        rows_dropped=dropped,
        sequences_dropped=int(n_sessions - np.count_nonzero(keep_seq)),
        sequences=len(sequences),
        tokens=sequences.n_tokens,
        vocab_size=len(vocab),
    )
    return BuiltSequences(sequences, vocab, report, owners)
