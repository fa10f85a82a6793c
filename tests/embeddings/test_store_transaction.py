"""Store.write_all (several frames, one transaction) and the SQLite bulk write path."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import event

from embeddings.errors import DataError
from embeddings.store import Store, insert

T0 = datetime(2024, 3, 1, 12, 0, 0)


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path) -> Store:
    opened = Store(f"sqlite:///{tmp_path / 'seqemb.sqlite'}" if request.param == "file" else "sqlite://")
    yield opened
    opened.close()


def scores_and_alerts(run_id: str, n: int = 50) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``n`` scores (txn ids t0..t{n-1}, in no key order) and alerts for those scoring >= 0.9."""
    index = pl.int_range(0, n, eager=True).reverse()
    scores = pl.DataFrame(
        {"run_id": run_id, "txn_id": "t" + index.cast(pl.String), "card_id": index % 7, "score": index / n}
    )
    alerts = scores.filter(pl.col("score") >= 0.9).select(
        (run_id + ":" + pl.col("txn_id")).alias("alert_id"), "run_id", "txn_id", "score", kind=pl.lit("ae")
    )
    return scores, alerts


def test_write_all_writes_every_frame_once_and_counts(store):
    run_id = store.start_run("score")
    scores, alerts = scores_and_alerts(run_id)
    assert store.write_all([("alerts", alerts), ("fraud_scores", scores)]) == [5, 50]
    assert store.write_all([("alerts", alerts), ("fraud_scores", scores)]) == [0, 0]
    assert store.write_all([("fraud_scores", scores.head(0))]) == [0]
    stored = store.read("fraud_scores", order_by="-score")
    assert stored["txn_id"].to_list() == scores["txn_id"].to_list()
    assert stored["card_id"].to_list() == scores["card_id"].cast(pl.String).to_list()
    # The alerts lacked created_at and status: the table's defaults filled them in.
    stored_alerts = store.read("alerts")
    assert set(stored_alerts["status"]) == {"open"} and stored_alerts["created_at"].null_count() == 0
    doubled = scores.with_columns(pl.col("score") * 2).head(10)
    assert store.write_all([("fraud_scores", doubled)], on_conflict="update") == [10]
    assert store.read("fraud_scores", where={"txn_id": "t49"})["score"].to_list() == [pytest.approx(2 * 49 / 50)]


def test_write_all_is_one_transaction(store):
    run_id = store.start_run("score")
    scores, alerts = scores_and_alerts(run_id)

    # A bad frame is found before anything is written.
    with pytest.raises(DataError, match="table 'fraud_scores' column 'score' row 0"):
        store.write_all([("alerts", alerts), ("fraud_scores", scores.with_columns(score=pl.lit(None)))])
    assert store.count("alerts") == 0

    # The database fails on the second frame: the first frame's rows are rolled back with it.
    def fail_scores(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO fraud_scores"):
            raise RuntimeError("disk full")

    event.listen(store.engine, "before_cursor_execute", fail_scores)
    with pytest.raises(RuntimeError, match="disk full"):
        store.write_all([("alerts", alerts), ("fraud_scores", scores)])
    event.remove(store.engine, "before_cursor_execute", fail_scores)
    assert (store.count("alerts"), store.count("fraud_scores")) == (0, 0)
    assert store.write_all([("alerts", alerts), ("fraud_scores", scores)]) == [5, 50]


def test_bulk_path_stores_what_the_generic_path_stores(store_url, monkeypatch):
    """Datetimes, booleans, floats, JSON and bytes reach the database the same way on the bulk path
    (COPY on PostgreSQL, driver tuples on SQLite) as through SQLAlchemy's executemany, and so do
    the row counts and the column defaults."""
    n = 40
    index = pl.int_range(0, n, eager=True)
    transactions = pl.DataFrame(
        {
            "txn_id": index.reverse(),
            "card_id": index % 3,
            "merchant_id": "m" + (index % 5).cast(pl.String),
            "amount": index * 1.25,
            "ts": pl.datetime_range(T0, T0 + timedelta(minutes=n - 1), "1m", eager=True),
            "is_fraud": index % 4 == 0,
        }
    )
    items = pl.DataFrame({"item_id": ["a", "b"], "attributes": [{"price": 1.5, "tags": ["x"]}, None]})
    store = Store(store_url)
    run = store.start_run("score", {})
    vectors = pl.DataFrame({"run_id": run, "key": ["k1", "k2"], "vector": [b"\x00\x01\\N", b""]})
    labels = pl.DataFrame({"label_id": ["l1"], "txn_id": ["3"], "label": ["fraud"], "note": ["a\tb\nc \\N"]})
    stored = {}
    for bulk in (True, False):
        if not bulk:
            monkeypatch.setattr(insert, "BULK_WRITERS", {})
        assert store.write("transactions", transactions, chunk_size=15) == n
        assert store.write("transactions", transactions.head(20), on_conflict="update", chunk_size=15) == 20
        assert store.write("transactions", transactions.head(20), chunk_size=15) == 0
        assert store.write("items", items) == 2
        assert store.write("vectors", vectors) == 2
        assert store.write("labels", labels) == 1
        names = ("transactions", "items", "vectors", "labels")
        stored[bulk] = [store.read(name).drop("created_at", strict=False) for name in names]
        assert store.read("labels")["created_at"].is_not_null().all()
        with store.engine.begin() as conn:
            for name in names:
                conn.execute(store.table(name).delete())
    for bulk_frame, generic_frame in zip(stored[True], stored[False]):
        assert bulk_frame.equals(generic_frame)
    assert stored[True][2]["vector"].to_list() == [b"\x00\x01\\N", b""]
    assert stored[True][3]["note"].to_list() == ["a\tb\nc \\N"]
    assert stored[True][0]["ts"].sort().to_list() == transactions["ts"].to_list()
    assert stored[True][0].filter(pl.col("is_fraud")).height == n // 4
    store.close()
