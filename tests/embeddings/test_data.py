from __future__ import annotations

import gzip
import re
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa

from embeddings import sources
from embeddings.data import BuildReport, EventSchema, build_sequences, read_events, split_sessions
from embeddings.errors import ConfigError, DataError
from embeddings.sources import read_table
from embeddings.vocab import Vocabulary

SCHEMA = EventSchema(entity="user", item="item", timestamp="when", weight="w")

# File order deliberately unsorted; u1's two events at 09:00 must keep this order.
RAW = pl.DataFrame(
    {
        "user": ["u2", "u1", "u1", "u2", "u1"],
        "item": ["a", "b", "c", "c", "a"],
        "when": [
            "2024-01-01T10:00:00",
            "2024-01-01 09:00:00",
            "2024-01-01 09:00:00",
            "2024-01-01T12:30:00Z",
            "2024-01-01T08:00:00.5+01:00",
        ],
        "w": [1, 2, 3, 4, 5],
    }
)
EXPECTED = pl.DataFrame(
    {
        "entity": ["u1", "u1", "u1", "u2", "u2"],
        "item": ["a", "b", "c", "a", "c"],
        "ts": [
            datetime(2024, 1, 1, 7, 0, 0, 500000),
            datetime(2024, 1, 1, 9),
            datetime(2024, 1, 1, 9),
            datetime(2024, 1, 1, 10),
            datetime(2024, 1, 1, 12, 30),
        ],
        "weight": [5.0, 2.0, 3.0, 1.0, 4.0],
    },
    schema_overrides={"ts": pl.Datetime("us")},
)


def _raises(error, message):
    return pytest.raises(error, match="^" + re.escape(message) + "$")


# --- sources -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["events.csv", "events.tsv", "events.csv.gz", "events.parquet", "events.pq"])
def test_file_sources_round_trip(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".tsv"):
        RAW.write_csv(path, separator="\t")
    elif name.endswith(".csv.gz"):
        path.write_bytes(gzip.compress(RAW.write_csv().encode()))
    elif name.endswith(".csv"):
        RAW.write_csv(path)
    else:
        RAW.write_parquet(path)
    events, report = read_events(path, SCHEMA)
    assert events.equals(EXPECTED)
    assert str(report) == f"{path}: 5 events, 2 entities, 3 items"


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = sa.create_engine(url)
    RAW.write_database("click events", engine)  # a name that must be quoted
    engine.dispose()
    return url


def _rows(url: str) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text('SELECT * FROM "click events" ORDER BY 1, 2, 3')).all()
    engine.dispose()
    return rows


@pytest.mark.parametrize(
    ("query", "got"),
    [
        ('DROP TABLE "click events"', "a DROP statement"),
        ('DELETE FROM "click events" RETURNING *', "a DELETE statement"),
        ('UPDATE "click events" SET w = 0 RETURNING *', "an UPDATE statement"),
        ('WITH x AS (SELECT 1) DELETE FROM "click events" RETURNING *', "a DELETE statement"),
        ("PRAGMA writable_schema = ON", "a statement sqlparse cannot classify"),
    ],
)
def test_a_query_source_is_read_only(sqlite_url, query, got):
    before = _rows(sqlite_url)
    message = f"{sqlite_url} query: a query source is read only: give one SELECT (or WITH ... SELECT), got {got}"
    with _raises(DataError, message):
        read_table(sqlite_url, query=query)
    assert _rows(sqlite_url) == before


def test_a_query_source_runs_one_statement_in_a_read_only_transaction(sqlite_url):
    before = _rows(sqlite_url)
    with _raises(DataError, f"{sqlite_url} query: give one SELECT statement, got 2 statements"):
        read_table(sqlite_url, query='SELECT 1; DROP TABLE "click events"')
    with _raises(DataError, f"{sqlite_url} query: give one SELECT statement, got 0 statements"):
        read_table(sqlite_url, query="  -- nothing\n")
    # Past the parser, the transaction itself refuses to write.
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        sources._read_only(conn)
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.execute(sa.text('DELETE FROM "click events"'))
    engine.dispose()
    assert _rows(sqlite_url) == before
    assert read_table(sqlite_url, query='WITH x AS (SELECT * FROM "click events") SELECT * FROM x').height == len(
        before
    )


def test_sqlite_table_and_query_round_trip(sqlite_url):
    events, report = read_events(sqlite_url, SCHEMA, table="click events")
    assert events.equals(EXPECTED)
    assert report.source == f"{sqlite_url} table 'click events'"
    events, _ = read_events(sqlite_url, SCHEMA, query='SELECT * FROM "click events" WHERE w > 2')
    assert events.equals(EXPECTED.filter(pl.col("weight") > 2))
    events, _ = read_events(sqlite_url, SCHEMA, table="main.click events")  # schema.table
    assert events.equals(EXPECTED)
    with pytest.raises(DataError, match=r"table 'nowhere.click events': .*unknown database \"nowhere\"$"):
        read_events(sqlite_url, SCHEMA, table="nowhere.click events")


def test_a_table_of_a_schema_is_a_source_and_a_query_cannot_write(store_url):
    """``--table schema.table`` on the store's own database (a PostgreSQL schema, SQLite's main),
    and a writing query refused there too, by the parser and by the read-only transaction."""
    engine = sa.create_engine(store_url)
    RAW.write_database("click events", engine)  # lands in the first schema on the search path
    with engine.connect() as conn:
        schema = (
            "main" if engine.dialect.name == "sqlite" else conn.execute(sa.text("SELECT current_schema()")).scalar()
        )
    events, report = read_events(store_url, SCHEMA, table=f"{schema}.click events")
    assert events.equals(EXPECTED)
    with pytest.raises(DataError, match="a query source is read only"):
        read_table(store_url, query='DELETE FROM "click events"')
    with engine.connect() as conn:
        sources._read_only(conn)
        with pytest.raises(sa.exc.DBAPIError, match="(?i)read.?only"):
            conn.execute(sa.text('DELETE FROM "click events"'))
    assert read_table(store_url, table="click events").height == RAW.height
    engine.dispose()


def test_sqlite_errors(sqlite_url, tmp_path):
    with _raises(DataError, f"{sqlite_url} table 'nope': no such table"):
        read_table(sqlite_url, table="nope")
    with _raises(DataError, f"{sqlite_url} query: (sqlite3.OperationalError) no such table: nope"):
        read_table(sqlite_url, query="SELECT * FROM nope")
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    with _raises(DataError, f"{missing} table 'events': database file not found"):
        read_table(missing, table="events")
    assert not (tmp_path / "missing.db").exists()
    with _raises(ConfigError, f"{sqlite_url} query: give exactly one of table= or query= for a database URL"):
        read_table(sqlite_url)


def test_url_password_is_hidden():
    with pytest.raises(DataError, match=r"^nosuchdialect://me:\*\*\*@host/db table 'e': invalid database URL: "):
        read_table("nosuchdialect://me:secret@host/db", table="e")


def test_dataframe_passes_through():
    assert read_table(RAW) is RAW
    events, report = read_events(RAW, SCHEMA)
    assert events.equals(EXPECTED) and report.source == "dataframe"


def test_file_errors(tmp_path):
    with _raises(DataError, f"{tmp_path / 'none.csv'}: file not found"):
        read_table(tmp_path / "none.csv")
    (tmp_path / "e.json").write_text("{}")
    with _raises(
        DataError, f"{tmp_path / 'e.json'}: unknown file type; expected .csv, .tsv, .csv.gz, .tsv.gz, .parquet or .pq"
    ):
        read_table(tmp_path / "e.json")
    (tmp_path / "bad.parquet").write_text("user,item\n")
    unreadable = "^" + re.escape(f"{tmp_path / 'bad.parquet'}: cannot read file: ") + r"[^\n]+$"
    with pytest.raises(DataError, match=unreadable):
        read_table(tmp_path / "bad.parquet")
    with _raises(ConfigError, f"{tmp_path / 'e.json'}: table= and query= apply to database URLs, not to files"):
        read_table(tmp_path / "e.json", table="x")


# --- validation ----------------------------------------------------------------------------


def _csv(tmp_path, text: str):
    path = tmp_path / "events.csv"
    path.write_text(text)
    return path


def test_empty_tables(tmp_path):
    path = _csv(tmp_path, "user,item,when,w\n")
    with _raises(DataError, f"{path}: no rows"):
        read_events(path, SCHEMA)
    path.write_text("")
    with _raises(DataError, f"{path}: no rows"):
        read_events(path, SCHEMA)


def test_missing_column_lists_the_columns_there(tmp_path):
    path = _csv(tmp_path, "user,item,ts\nu,a,2024-01-01\n")
    with _raises(DataError, f"{path}: missing column 'when' (columns: user, item, ts)"):
        read_events(path, SCHEMA)


def test_unparsable_timestamp_names_the_first_bad_row(tmp_path):
    rows = [f"u{i % 3},i{i},2024-01-01 00:00:{i:02d}" for i in range(20)]
    rows[17] = "u1,i17,yesterday"
    rows[19] = "u1,i19,tomorrow"
    path = _csv(tmp_path, "user,item,ts\n" + "\n".join(rows) + "\n")
    with _raises(DataError, f"{path}: column 'ts' row 17 (0-based data row): cannot parse 'yesterday' as a timestamp"):
        read_events(path, EventSchema("user", "item", "ts"))


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("user", ["u", None, "v"], "column 'user' row 1 (0-based data row): missing value"),
        ("item", ["a", "b", None], "column 'item' row 2 (0-based data row): missing value"),
        ("when", [None, "2024-01-01", "2024-01-02"], "column 'when' row 0 (0-based data row): missing value"),
        ("w", [1.0, None, 2.0], "column 'w' row 1 (0-based data row): missing value"),
        ("w", ["1", "2", "3"], "column 'w' has type String; expected numbers"),
        ("w", [1.0, float("nan"), -1.0], "column 'w' row 1 (0-based data row): weight nan is not a finite number >= 0"),
        ("w", [1.0, 2.0, -1.0], "column 'w' row 2 (0-based data row): weight -1.0 is not a finite number >= 0"),
        ("item", [1.5, 2.5, 3.5], "column 'item' has type Float64; expected integer or string ids"),
        (
            "when",
            [1.5, 2.5, 3.5],
            "column 'when' has type Float64; expected datetimes, dates, ISO-8601 text or integer unix seconds",
        ),
    ],
)
def test_bad_values_name_column_and_row(column, values, message):
    good = {"user": ["u", "v", "u"], "item": ["a", "b", "c"], "when": ["2024-01-01"] * 3, "w": [1.0, 1.0, 1.0]}
    frame = pl.DataFrame({**good, column: values}, strict=False)
    with _raises(DataError, f"dataframe: {message}"):
        read_events(frame, SCHEMA)


def test_csv_ids_are_text_so_leading_zeros_stay_distinct(tmp_path):
    path = _csv(tmp_path, "user,item\n007,0081\n007,81\n7,081\n")
    events, report = read_events(path, EventSchema("user", "item"))
    assert events.rows() == [("007", "0081"), ("007", "81"), ("7", "081")]
    assert (report.entities, report.items) == (2, 3)
    asked, report = read_events(path, EventSchema("user", "item", integer_ids=True))
    assert asked.rows() == [(7, 81), (7, 81), (7, 81)] and report.items == 1
    path.write_text("user,item\n1,2\n1,x2\n")
    with _raises(DataError, f"{path}: column 'item' row 1 (0-based data row): 'x2' is not an integer id"):
        read_events(path, EventSchema("user", "item", integer_ids=True))


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("x" * 129, "id is 129 characters long; ids have at most 128"),
        ("a\x00b", "id holds a NUL, newline or carriage-return character"),
        ("a\nb", "id holds a NUL, newline or carriage-return character"),
    ],
)
def test_ids_the_store_cannot_keep_are_refused_when_read(tmp_path, bad, problem):
    frame = pl.DataFrame({"user": ["u", "u", "v"], "item": ["a", bad, "c"]})
    path = tmp_path / "events.parquet"
    frame.write_parquet(path)
    with _raises(DataError, f"{path}: column 'item' row 1 (0-based data row): {problem}"):
        read_events(path, EventSchema("user", "item"))
    assert read_events(frame.with_columns(item=pl.lit("x" * 128)), EventSchema("user", "item"))[1].items == 1


def test_timestamp_types_and_ids_are_normalised():
    moments = [datetime(2024, 3, 1, 12), datetime(2024, 3, 2)]
    frames = {
        "datetime_ms": pl.Series(moments, dtype=pl.Datetime("ms")),
        "datetime_tz": pl.Series(moments).dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Paris"),
        "epoch": pl.Series([1709294400, 1709337600]),
        "text": pl.Series(["2024-03-01T12:00", "2024-03-02"]),
    }
    for ts in frames.values():
        raw = pl.DataFrame({"e": pl.Series([1, 1], dtype=pl.Int16), "i": pl.Series(["x", "y"], dtype=pl.Categorical)})
        events, _ = read_events(raw.with_columns(t=ts), EventSchema("e", "i", "t"))
        assert events.schema == pl.Schema({"entity": pl.Int64, "item": pl.String, "ts": pl.Datetime("us")})
        assert events["ts"].to_list() == moments
    dates = pl.DataFrame({"e": [1, 1], "i": [1, 2], "t": [date(2024, 3, 2), date(2024, 3, 1)]})
    events, _ = read_events(dates, EventSchema("e", "i", "t"))
    assert events["item"].to_list() == [2, 1]
    assert events["ts"].to_list() == [datetime(2024, 3, 1), datetime(2024, 3, 2)]


def test_without_timestamp_file_order_is_kept():
    raw = pl.DataFrame({"user": [2, 1, 2, 1], "item": ["d", "c", "b", "a"]})
    events, _ = read_events(raw, EventSchema("user", "item"))
    assert events.columns == ["entity", "item"]
    assert events.rows() == [(1, "c"), (1, "a"), (2, "d"), (2, "b")]


def test_schema_rejects_repeated_names():
    with _raises(ConfigError, "event columns must be distinct, got ['a', 'a']"):
        EventSchema("a", "a")


# --- sessions and sequences ----------------------------------------------------------------

T0 = datetime(2024, 1, 1)


def _events(rows):
    """rows of (entity, item, minutes after T0), already in (entity, ts) order."""
    entity, item, minutes = zip(*rows, strict=True)
    ts = [T0 + timedelta(minutes=m) for m in minutes]
    return pl.DataFrame({"entity": entity, "item": item, "ts": ts}, schema_overrides={"ts": pl.Datetime("us")})


EVENTS = _events(
    [
        ("u1", "a", 0), ("u1", "b", 10), ("u1", "a", 50),  # gap 40 > 30: new session at 50
        ("u1", "c", 60), ("u1", "z", 61),
        ("u2", "b", 0), ("u2", "a", 30),  # gap exactly 30: same session
        ("u3", "c", 5),
        ("u4", "z", 0), ("u4", "a", 100), ("u4", "b", 101),
    ]
)  # fmt: skip


def test_split_sessions_by_gap():
    sessions = split_sessions(EVENTS, timedelta(minutes=30))
    assert sessions["session"].dtype == pl.Int64
    assert sessions["session"].to_list() == [0, 0, 1, 1, 1, 2, 2, 3, 4, 5, 5]
    assert split_sessions(EVENTS, None)["session"].to_list() == [0, 0, 0, 0, 0, 1, 1, 2, 3, 3, 3]


def test_split_sessions_sorts_unsorted_events_and_needs_timestamps():
    shuffled = EVENTS.reverse()
    assert split_sessions(shuffled, timedelta(minutes=30)).equals(split_sessions(EVENTS, timedelta(minutes=30)))
    with _raises(ConfigError, "a session gap needs timestamps; the events have no 'ts' column"):
        split_sessions(EVENTS.drop("ts"), timedelta(minutes=1))
    with _raises(ConfigError, "session gap must be positive, got 0:00:00"):
        split_sessions(EVENTS, timedelta(0))


def test_build_sequences_hand_computed():
    built = build_sequences(EVENTS, min_count=2, session_gap=timedelta(minutes=30), min_length=2)
    # counts: a 4, b 3, c 2, z 2 -> indices a1 b2 c3 z4; nothing is below min_count 2.
    assert built.vocab.keys.to_list() == ["a", "b", "c", "z"]
    # sessions: [a b] [a c z] [b a] [c] [z] [a b]; [c] and [z] are shorter than 2.
    assert built.sequences.to_lists() == [[1, 2], [1, 3, 4], [2, 1], [1, 2]]
    assert built.sequences.offsets.dtype == np.int64 and built.sequences.tokens.dtype == np.int32
    assert built.owners.rows() == [("u1", 0), ("u1", 1), ("u2", 2), ("u4", 5)]
    assert built.report == BuildReport(
        rows_read=11,
        rows_dropped={"below_min_count": 0, "unknown_item": 0, "short_sequence": 2},
        sequences_dropped=2,
        sequences=4,
        tokens=9,
        vocab_size=5,
    )


def test_min_count_then_min_length_are_counted():
    built = build_sequences(EVENTS, min_count=3, min_length=3)
    # Only a (4) and b (3) survive min_count 3; c and z lose 4 rows.
    # Per entity: u1 [a b a] kept, u2 [b a] short, u3 [] short, u4 [a b] short.
    assert built.sequences.to_lists() == [[1, 2, 1]]
    assert built.owners.rows() == [("u1", 0)]
    assert built.report.rows_dropped == {"below_min_count": 4, "unknown_item": 0, "short_sequence": 4}
    assert built.report.sequences_dropped == 3
    assert built.report.rows_read == built.report.tokens + sum(built.report.rows_dropped.values())
    assert str(built.report) == (
        "11 events -> 1 sequences, 3 tokens, vocabulary 3; rows dropped: below_min_count 4, "
        "unknown_item 0, short_sequence 4; short sequences dropped: 3"
    )


def test_given_vocabulary_drops_unknown_items():
    vocab = Vocabulary(["z", "a"], [5, 5])
    built = build_sequences(EVENTS, vocab=vocab, min_length=1)
    assert built.vocab is vocab
    assert built.sequences.to_lists() == [[2, 2, 1], [2], [1, 2]]
    assert built.owners["entity"].to_list() == ["u1", "u2", "u4"]
    assert built.report.rows_dropped == {"below_min_count": 0, "unknown_item": 5, "short_sequence": 0}
    assert built.report.sequences_dropped == 1


def test_build_sequences_rejects_bad_settings():
    with _raises(ConfigError, "min_length must be an integer >= 1, got 0"):
        build_sequences(EVENTS, min_length=0)
