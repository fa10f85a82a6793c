"""Store: idempotent and resumable writes, checked input, reads, settings (runs: test_store_runs.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from embeddings.errors import ConfigError, DataError
from embeddings.store import Store
from embeddings.store.schema import metadata

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, 12, 0, 0)


def events_frame(n: int) -> pl.DataFrame:
    """``n`` events of 10 users over 7 items, one minute apart; event ids e0000...; user ids as ints."""
    index = pl.int_range(0, n, eager=True)
    return pl.DataFrame(
        {
            "event_id": "e" + index.cast(pl.String).str.zfill(4),
            "user_id": index % 10,
            "item_id": "i" + (index % 7).cast(pl.String),
            "ts": pl.datetime_range(T0, T0 + timedelta(minutes=n - 1), "1m", eager=True),
        }
    )


def recommendations(run_id: str, scale: float = 1.0) -> pl.DataFrame:
    """Three users x top-3 items; scores decrease with rank."""
    users = pl.Series(["u1"] * 3 + ["u2"] * 3 + ["u3"] * 3)
    ranks = pl.Series([1, 2, 3] * 3)
    return pl.DataFrame(
        {
            "run_id": [run_id] * 9,
            "user_id": users,
            "rank": ranks,
            "item_id": ["a", "b", "c", "b", "c", "d", "c", "d", "e"],
            "score": (1.0 / ranks) * scale,
        }
    )


def test_deleting_a_run_deletes_its_outputs(store):
    run_id = store.start_run("recommend-batch")
    store.write("recommendations", recommendations(run_id))
    with store.engine.begin() as conn:
        conn.execute(delete(store.table("runs")).where(store.table("runs").c.run_id == run_id))
    assert store.count("recommendations") == 0


# ---------------------------------------------------------------- writes


@pytest.fixture(params=["on-conflict", "look-up"])
def write_path(request, store) -> Store:
    """The same store, writing through INSERT ... ON CONFLICT or through the generic look-up path."""
    if request.param == "look-up":
        store._upsert_insert = None
    return store


def test_writing_twice_keeps_each_row_once(write_path):
    store = write_path
    frame = events_frame(100)
    assert store.write("events", frame, chunk_size=7) == 100
    assert store.write("events", frame, chunk_size=7) == 0
    assert store.write("events", frame.tail(30), on_conflict="update", chunk_size=7) == 30
    assert store.count("events") == 100
    stored = store.read("events", columns=["event_id", "user_id", "item_id", "ts"])
    assert stored.equals(frame.with_columns(pl.col("user_id").cast(pl.String)))


def test_overlapping_write_inserts_only_new_rows(write_path):
    store = write_path
    frame = events_frame(100)
    assert store.write("events", frame.head(60), chunk_size=16) == 60
    assert store.write("events", frame.sample(fraction=1.0, shuffle=True, seed=3), chunk_size=16) == 40
    assert store.count("events") == 100


def test_update_mode_replaces_and_ignore_mode_keeps(write_path):
    store = write_path
    run_id = store.start_run("recommend-batch")
    assert store.write("recommendations", recommendations(run_id)) == 9
    assert store.write("recommendations", recommendations(run_id, scale=5.0)) == 0
    assert store.read("recommendations")["score"].to_list() == recommendations(run_id)["score"].to_list()

    doubled = recommendations(run_id, scale=2.0).filter(pl.col("user_id") == "u2")
    assert store.write("recommendations", doubled, on_conflict="update", chunk_size=2) == 3
    stored = store.read("recommendations", order_by=["user_id", "rank"])
    assert stored["score"].to_list() == pytest.approx([1, 1 / 2, 1 / 3, 2, 1, 2 / 3, 1, 1 / 2, 1 / 3])


_CHILD = """
import sys, time
from sqlalchemy import event
from embeddings.store import Store
from tests.embeddings.test_store import events_frame

store = Store(sys.argv[1])
commits = 0

@event.listens_for(store.engine, "commit")
def _committed(conn):
    global commits
    commits += 1

@event.listens_for(store.engine, "after_cursor_execute")
def _hold_fourth_chunk(conn, cursor, statement, parameters, context, executemany):
    if commits == 3:
        print("inside chunk 4", flush=True)
        time.sleep(120)

store.write("events", events_frame(200), chunk_size=25)
print("finished", flush=True)
"""


def test_write_killed_midway_then_rerun_leaves_every_row_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'seqemb.sqlite'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line == "inside chunk 4\n", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    store = Store(url)
    assert store.count("events") == 75  # three committed chunks; the fourth was rolled back
    assert store.write("events", events_frame(200), chunk_size=25) == 125
    stored = store.read("events", columns=["event_id"])
    assert stored["event_id"].to_list() == events_frame(200)["event_id"].to_list()
    store.close()


# ---------------------------------------------------------------- checked input


def test_unknown_table_and_column_messages(store):
    tables = (
        "alerts, cards, events, fraud_scores, items, labels, merchants, recommendations, runs, transactions, vectors"
    )
    with pytest.raises(DataError) as caught:
        store.write("evnts", events_frame(3))
    assert str(caught.value) == f"the store has no table 'evnts' (tables: {tables})"
    with pytest.raises(DataError) as caught:
        store.read("runs; drop table runs")
    assert str(caught.value) == f"the store has no table 'runs; drop table runs' (tables: {tables})"

    columns = "event_id, user_id, item_id, ts, session_id, event_type"
    with pytest.raises(DataError) as caught:
        store.write("events", events_frame(3).with_columns(colour=pl.lit("red")))
    assert str(caught.value) == f"table 'events' has no column 'colour' (columns: {columns})"
    with pytest.raises(DataError) as caught:
        store.read("events", where={"colour": "red"})
    assert str(caught.value) == f"table 'events' has no column 'colour' (columns: {columns})"
    with pytest.raises(DataError) as caught:
        store.read("events", order_by="-colour")
    assert str(caught.value) == f"table 'events' has no column 'colour' (columns: {columns})"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("ts"), "table 'events' needs column 'ts', which the frame lacks"),
        (
            lambda f: f.with_columns(item_id=pl.when(pl.col("event_id") == "e0003").then(None).otherwise("item_id")),
            "table 'events' column 'item_id' row 3: null in a column that needs a value",
        ),
        (
            lambda f: f.with_columns(user_id=pl.col("user_id").cast(pl.Float64)),
            "table 'events' column 'user_id' holds Float64; it takes text or integer ids",
        ),
        (
            lambda f: f.with_columns(ts=pl.col("ts").cast(pl.String)),
            "table 'events' column 'ts' holds String; it takes datetimes (parse text with .str.to_datetime())",
        ),
        (
            lambda f: f.with_columns(
                event_id=pl.when(pl.col("event_id") == "e0004").then(pl.lit("e0001")).otherwise("event_id")
            ),
            "table 'events' row 4: primary key (event_id) = ('e0001') repeats an earlier row",
        ),
        (
            lambda f: f.with_columns(session_id=pl.when(pl.col("event_id") == "e0002").then(pl.lit("s" * 129))),
            "table 'events' column 'session_id' row 2: longer than 128 characters",
        ),
    ],
)
def test_bad_frames_are_rejected_whole(store, change, message):
    store.write("events", events_frame(3).with_columns(event_id=pl.lit("z") + pl.col("event_id")))
    with pytest.raises(DataError) as caught:
        store.write("events", change(events_frame(6)), chunk_size=2)
    assert str(caught.value) == message
    assert store.count("events") == 3


def test_output_checks_name_the_row(store):
    run_id = store.start_run("fraud-score")
    scores = pl.DataFrame({"run_id": [run_id] * 3, "txn_id": ["t1", "t2", "t3"], "score": [0.1, float("nan"), 0.3]})
    with pytest.raises(DataError) as caught:
        store.write("fraud_scores", scores)
    assert str(caught.value) == "table 'fraud_scores' column 'score' row 1: nan is not a finite number"

    orphan = scores.with_columns(run_id=pl.Series([run_id, run_id, "gone"]), score=pl.lit(0.5))
    with pytest.raises(DataError) as caught:
        store.write("fraud_scores", orphan)
    assert str(caught.value) == "table 'fraud_scores' column 'run_id' row 2: 'gone' is not a runs.run_id in the store"

    alerts = pl.DataFrame(
        {
            "alert_id": ["a1", "a2"],
            "run_id": [run_id] * 2,
            "score": [0.9, 0.8],
            "kind": ["txn"] * 2,
            "status": ["open", "closed"],
        }
    )
    with pytest.raises(DataError) as caught:
        store.write("alerts", alerts)
    assert str(caught.value) == (
        "table 'alerts' column 'status' row 1: 'closed' is not one of open, confirmed, false_positive, superseded"
    )
    assert store.count("fraud_scores") + store.count("alerts") == 0

    with pytest.raises(ConfigError):
        store.write("fraud_scores", scores.head(1), on_conflict="replace")


def test_alert_defaults_and_update(store):
    run_id = store.start_run("fraud-score")
    alerts = pl.DataFrame(
        {
            "alert_id": ["a1", "a2", "a3"],
            "run_id": [run_id] * 3,
            "card_id": [7, 7, 8],
            "score": [0.9, 0.8, 0.7],
            "kind": ["sequence"] * 3,
        }
    )
    assert store.write("alerts", alerts) == 3
    stored = store.read("alerts")
    assert stored["status"].to_list() == ["open"] * 3
    assert stored["created_at"].null_count() == 0 and stored["updated_at"].null_count() == 3

    assert store.update("alerts", {"status": "confirmed"}, where={"card_id": 7}) == 2
    confirmed = store.read("alerts", where={"status": "confirmed"})
    assert confirmed["alert_id"].to_list() == ["a1", "a2"]
    assert confirmed["updated_at"].null_count() == 0
    with pytest.raises(DataError) as caught:
        store.update("alerts", {"status": "maybe"}, where={"alert_id": "a3"})
    assert (
        str(caught.value)
        == "table 'alerts' column 'status': 'maybe' is not one of open, confirmed, false_positive, superseded"
    )
    with pytest.raises(DataError, match=r"^table 'alerts' update: .*score"):
        store.update("alerts", {"score": None}, where={"alert_id": "a3"})
    assert store.read("alerts", where={"alert_id": "a3"})["status"].to_list() == ["open"]


# ---------------------------------------------------------------- reads


def test_read_where_order_limit_offset_columns(store):
    store.write("events", events_frame(40).with_columns(session_id=pl.when(pl.col("user_id") < 5).then(pl.lit("s1"))))

    user3 = store.read("events", where={"user_id": 3})
    assert user3["event_id"].to_list() == ["e0003", "e0013", "e0023", "e0033"]
    assert store.count("events", where={"user_id": [3, "4"]}) == 8
    assert store.count("events", where={"session_id": None}) == 20
    assert store.count("events", where={"session_id": "s1", "item_id": "i0"}) == 3  # e0000, e0014, e0021

    latest = store.read("events", order_by="-ts", limit=3, columns=["event_id", "ts"])
    assert latest.columns == ["event_id", "ts"]
    assert latest["event_id"].to_list() == ["e0039", "e0038", "e0037"]

    pages = [store.read("events", limit=15, offset=start)["event_id"] for start in (0, 15, 30)]
    assert [len(page) for page in pages] == [15, 15, 10]
    assert pl.concat(pages).to_list() == events_frame(40)["event_id"].to_list()

    by_item = store.read("events", order_by=["item_id", "-event_id"], limit=2)
    assert by_item["event_id"].to_list() == ["e0035", "e0028"]

    empty = store.read("events", where={"user_id": "nobody"})
    assert empty.height == 0 and empty.schema["ts"] == pl.Datetime("us") and empty.schema["user_id"] == pl.String


def test_datetimes_are_stored_naive_utc(store):
    aware = datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    frame = events_frame(2).with_columns(ts=pl.Series([aware, aware + timedelta(hours=1)]))
    store.write("events", frame)
    stored = store.read("events")
    assert stored.schema["ts"] == pl.Datetime("us")
    assert stored["ts"].to_list() == [T0, T0 + timedelta(hours=1)]
    assert store.count("events", where={"ts": aware}) == 1


def test_json_columns_and_read_sql(store):
    items = pl.DataFrame(
        {
            "item_id": [1, 2, 3],
            "category": ["x", "x", "y"],
            "cluster": [0, 0, 1],
            "attributes": [{"price": 3.5}, {"price": 1.0}, None],
        }
    )
    store.write("items", items)
    stored = store.read("items")
    assert stored["item_id"].to_list() == ["1", "2", "3"]
    assert stored["attributes"].to_list()[2] is None
    assert stored["attributes"].drop_nulls().str.json_decode().struct.field("price").to_list() == [3.5, 1.0]
    with pytest.raises(DataError) as caught:
        store.write("items", stored, on_conflict="update")
    assert str(caught.value) == (
        "table 'items' column 'attributes' holds String; "
        "it takes structs or lists (JSON text: decode it with .str.json_decode())"
    )

    table = store.table("items")
    per_category = store.read_sql(
        select(table.c.category, func.count().label("n")).group_by(table.c.category).order_by(table.c.category)
    )
    assert per_category.to_dicts() == [{"category": "x", "n": 2}, {"category": "y", "n": 1}]
    attributes = store.read_sql(select(table.c.attributes).where(table.c.item_id == "1"))
    assert attributes.schema["attributes"] == pl.Object and attributes["attributes"][0] == {"price": 3.5}
    with pytest.raises(ConfigError):
        store.read_sql(text("select * from items"))


# ---------------------------------------------------------------- settings and dialects


def test_default_url_follows_seqemb_home_and_db_url(tmp_path, monkeypatch):
    monkeypatch.delenv("SEQEMB_DB_URL", raising=False)
    monkeypatch.setenv("SEQEMB_HOME", str(tmp_path / "home"))
    store = Store()
    assert store.url == f"sqlite:///{tmp_path / 'home' / 'seqemb.sqlite'}"
    assert (tmp_path / "home" / "seqemb.sqlite").is_file()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()

    target = tmp_path / "elsewhere" / "deep" / "jobs.sqlite"
    monkeypatch.setenv("SEQEMB_DB_URL", f"sqlite:///{target}")
    with pytest.raises(ConfigError, match="folder .*deep does not exist; create it first"):
        Store()  # only the default store's folder is created: a typo must not start an empty store
    assert not (tmp_path / "elsewhere").exists()
    target.parent.mkdir(parents=True)
    store = Store()
    assert store.url == f"sqlite:///{target}" and target.is_file()
    store.close()


def test_bad_urls_raise_config_errors():
    with pytest.raises(ConfigError) as caught:
        Store("not a url")
    assert str(caught.value) == "store URL 'not a url' is not a SQLAlchemy URL (e.g. sqlite:////path/seqemb.sqlite)"
    with pytest.raises(ConfigError) as caught:
        Store("postgresql+nosuchdriver://user:secret@localhost/seqemb")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_schema_compiles_for_postgresql():
    dialect = postgresql.dialect()
    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        assert f"CREATE TABLE {table.name}" in ddl and "PRIMARY KEY" in ddl
        for index in table.indexes:
            str(CreateIndex(index).compile(dialect=dialect))
