"""Event files streamed in batches give what reading them whole gives: rows, vocabulary, owners, errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from embeddings.data import EventSchema, build_sequences, read_events
from embeddings.errors import DataError
from embeddings.event_stream import stream_events


def _events(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1)
    return pl.DataFrame(
        {
            # Ids with leading zeros stay text ("007" and "7" are two users); rows are not sorted.
            "user": [f"{u:03d}" if u % 3 else str(u) for u in rng.integers(0, 40, n)],
            "item": rng.zipf(1.5, n).clip(max=60).astype(np.int64),
            "ts": [start + timedelta(minutes=int(m)) for m in rng.integers(0, 5000, n)],
        }
    ).with_columns(pl.format("item-{}", "item").alias("name"))


@pytest.mark.parametrize("in_time_order", [False, True])  # a log in time order is sorted by counting
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("schema", "gap"),
    [
        (EventSchema(entity="user", item="name", timestamp="ts"), timedelta(hours=6)),
        (EventSchema(entity="user", item="item", timestamp="ts"), None),
        (EventSchema(entity="user", item="name"), None),  # file order
    ],
)
def test_streamed_events_build_the_sequences_of_the_whole_read(tmp_path: Path, suffix, schema, gap, in_time_order):
    path = tmp_path / f"events.{suffix}"
    frame = _events().sort("ts", maintain_order=True) if in_time_order else _events()
    frame.write_csv(path) if suffix == "csv" else frame.write_parquet(path)
    whole, report = read_events(path, schema)
    expected = build_sequences(whole, min_count=2, session_gap=gap, min_length=2)
    streamed = stream_events(path, schema, batch_rows=37)
    built = streamed.keyed(build_sequences(streamed.events, min_count=2, session_gap=gap, min_length=2))
    assert streamed.report == report
    assert np.array_equal(built.sequences.tokens, expected.sequences.tokens)
    assert np.array_equal(built.sequences.offsets, expected.sequences.offsets)
    assert built.vocab.keys.equals(expected.vocab.keys) and np.array_equal(built.vocab.counts, expected.vocab.counts)
    assert built.owners.equals(expected.owners)
    assert built.report == expected.report
    # Text ids are held as codes, one per distinct key, never as a string column of every event.
    assert streamed.events["entity"].dtype == pl.Int32 and len(streamed.entities) == report.entities


def test_a_bad_value_in_a_later_batch_is_named_by_its_row_in_the_file(tmp_path: Path):
    path = tmp_path / "events.csv"
    frame = _events().with_columns(
        pl.when(pl.int_range(pl.len()) == 301)
        .then(pl.lit("yesterday"))
        .otherwise(pl.col("ts").cast(pl.String))
        .alias("ts")
    )
    frame.write_csv(path)
    schema = EventSchema(entity="user", item="name", timestamp="ts")
    message = f"{path}: column 'ts' row 301 (0-based data row): cannot parse 'yesterday' as a timestamp"
    with pytest.raises(DataError) as whole:
        read_events(path, schema)
    with pytest.raises(DataError) as streamed:
        stream_events(path, schema, batch_rows=50)
    assert str(whole.value) == str(streamed.value) == message


def test_a_transaction_file_read_in_batches_gives_the_graph_of_the_whole_table(tmp_path: Path, monkeypatch):
    from embeddings import sources
    from embeddings.graph.transactions import transaction_graph

    frame = _events().rename({"user": "card_id", "name": "merchant_id"}).with_columns(amount=pl.col("item") * 0.5)
    path = tmp_path / "transactions.csv"
    frame.write_csv(path)
    whole = transaction_graph(frame.with_columns(pl.col("card_id").cast(pl.String)), weight="amount")
    monkeypatch.setattr(sources, "BATCH_ROWS", 37)
    streamed = transaction_graph(path, weight="amount")
    assert list(streamed.nodes) == list(whole.nodes)
    assert np.array_equal(streamed.indptr, whole.indptr) and np.array_equal(streamed.indices, whole.indices)
    assert np.allclose(streamed.weights, whole.weights, rtol=1e-12)
