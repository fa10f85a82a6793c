"""Event files larger than memory: a CSV or Parquet file read batch by batch into number columns.

:func:`read_event_table` is how the jobs read events: a file is streamed by :func:`stream_events`,
any other source (a database table or query, a frame) is read whole by
:func:`~embeddings.data.read_events`. Both give the same :class:`EventTable`.

Streaming reads the schema's columns ``batch_rows`` (default
:data:`~embeddings.sources.BATCH_ROWS`) at a time and checks each batch with the
checks of :func:`~embeddings.data.read_events` (an error names the row in the whole file). Of
each event it keeps numbers only: a first pass over a text id column finds its distinct keys
(polars' streaming ``unique``), and the batches come joined with them, each id's code being the
place of its key in sorted order (so sorting by code sorts as sorting by key does). The frame of events is then 16 bytes per event (Int32 entity and item codes, the time),
sorted as ``read_events`` sorts, and :func:`~embeddings.data.build_sequences` runs on it unchanged;
:meth:`EventTable.keyed` puts the keys back into its vocabulary and owners. The distinct keys
are held once; the string columns are never held whole, so the largest things in memory are
these number columns and the CSR arrays built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import polars as pl

from embeddings.data import (
    BuiltSequences,
    EventSchema,
    ReadReport,
    check_timestamps,
    check_weights,
    id_check,
    read_events,
)
from embeddings.errors import DataError, RowError
from embeddings.sources import Source, describe_source, is_file, scan_batches, scan_collect, scan_columns
from embeddings.vocab import Vocabulary


@dataclass(frozen=True)
class EventTable:
    """Checked events sorted by (entity, ts), as :func:`~embeddings.data.read_events` returns them,
    with their report. Where ``entities`` / ``items`` are set, that column of ``events`` holds
    Int32 codes and code ``i`` stands for key ``entities[i]`` / ``items[i]`` (keys in sorted order)."""

    events: pl.DataFrame
    report: ReadReport
    entities: pl.Series | None = None
    items: pl.Series | None = None

    def keyed(self, built: BuiltSequences) -> BuiltSequences:
        """``built`` (from :func:`~embeddings.data.build_sequences` over ``events``) with keys for codes
        in its vocabulary and owners."""
        vocab, owners = built.vocab, built.owners
        if self.items is not None:
            vocab = Vocabulary(self.items.gather(vocab.keys), vocab.counts[1:])
        if self.entities is not None:
            owners = owners.with_columns(entity=self.entities.gather(owners["entity"]))
        return built._replace(vocab=vocab, owners=owners)


def read_event_table(
    source: Source, schema: EventSchema, *, table: str | None = None, query: str | None = None
) -> EventTable:
    """Events of ``source``: a file streamed (:func:`stream_events`), anything else read whole."""
    if is_file(source) and table is None and query is None:
        return stream_events(source, schema)
    events, report = read_events(source, schema, table=table, query=query)
    return EventTable(events, report)


def stream_events(path: str | Path, schema: EventSchema, *, batch_rows: int | None = None) -> EventTable:
    """Read and check the events of a CSV or Parquet file a batch at a time (see the module doc).

    The result equals ``read_events``' once :meth:`EventTable.keyed` has put the keys back: the
    same rows in the same order, the same report, the same errors for bad values.
    """
    name = describe_source(path)
    columns = schema.columns()
    scan = scan_columns(path, list(columns.values()), text_columns=schema.id_columns())
    ids = id_check(schema.integer_ids)
    checks = {"entity": ids, "item": ids, "ts": check_timestamps, "weight": check_weights}
    keys: dict[str, pl.Series] = {}
    types = scan.collect_schema()
    for canonical in ("entity", "item"):
        column = columns[canonical]
        if not schema.integer_ids and types[column] in (pl.String, pl.Categorical, pl.Enum):
            # Text ids: a first pass finds the distinct keys, sorted; a key's code is its place.
            text = pl.col(column).cast(pl.String)
            found = scan_collect(scan.select(text).unique(), name).to_series().drop_nulls().sort()
            keys[canonical] = found
            table = pl.LazyFrame(
                {column: found, _code(canonical): pl.int_range(len(found), dtype=pl.Int32, eager=True)}
            )
            scan = scan.with_columns(text).join(table, on=column, how="left", maintain_order="left")
    parts: dict[str, list[pl.Series]] = {c: [] for c in columns if c != "weight"}  # weights are only checked
    rows = 0
    for batch in scan_batches(scan, name, batch_rows):
        for canonical, column in columns.items():
            try:
                values = checks[canonical](name, column, batch[column])
            except RowError as error:
                raise error.at(name, rows + error.row) from None
            if canonical in parts:
                parts[canonical].append(batch[_code(canonical)] if canonical in keys else values)
        rows += batch.height
    if rows == 0:
        raise DataError(f"{name}: no rows")
    # Column by column, each part list freed as its column is made: one column is held twice at most.
    arrays = {c: pl.concat(parts.pop(c), rechunk=True).to_physical().to_numpy() for c in list(parts)}
    order = _entity_time_order(arrays["entity"], arrays.get("ts"), len(keys["entity"]) if "entity" in keys else None)
    events = []
    for canonical in list(arrays):
        column = pl.Series(canonical, arrays.pop(canonical)[order])
        events.append(column.cast(pl.Datetime("us")) if canonical == "ts" else column)
    del order
    events = pl.DataFrame(events)

    def distinct(canonical: str) -> int:
        return len(keys[canonical]) if canonical in keys else events[canonical].n_unique()

    report = ReadReport(name, events.height, distinct("entity"), distinct("item"))
    return EventTable(events, report, keys.get("entity"), keys.get("item"))


def _entity_time_order(entity: np.ndarray, ts: np.ndarray | None, n_codes: int | None) -> np.ndarray:
    """The stable order of events by (entity, ts), as an index (gathered one column at a time,
    where a polars sort of the frame would hold a second frame and its row-encoded keys).

    Event logs are mostly written in time order. Then, with entity codes ``0 .. n_codes - 1``,
    a counting sort by entity is the whole sort: linear, where a comparison sort of 100M events
    costs about as much as reading them.
    """
    in_time_order = ts is None or bool(np.all(ts[1:] >= ts[:-1]))
    if in_time_order and n_codes is not None:
        return _counting_order(entity, n_codes)
    if ts is None:
        return np.argsort(entity, kind="stable")
    return np.lexsort((ts, entity))


@numba.njit(cache=True)
def _counting_order(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """The stable order of ``codes`` (ints in ``[0, n_codes)``) by a counting sort."""
    starts = np.zeros(n_codes + 1, dtype=np.int64)
    for code in codes:
        starts[code + 1] += 1
    for c in range(n_codes):
        starts[c + 1] += starts[c]
    order = np.empty(codes.size, dtype=np.int64)
    for i in range(codes.size):
        code = codes[i]
        order[starts[code]] = i
        starts[code] += 1
    return order


def _code(canonical: str) -> str:
    """The scan's column of the codes of the ``canonical`` id column."""
    return f"__seqemb_{canonical}_code"
