"""The dashboard without a browser: its SQL reads (paging, filters, threshold counts, histogram),
the labelling path, the graph layout and PCA map, and the security of serving it."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from sqlalchemy import text

from embeddings.errors import ConfigError, NotFoundError
from embeddings.store import Store
from fraud.labels import read_labels
from fraud.score_counts import recorded_counts, scores_at_least
from ui.dashboard import queries
from ui.dashboard.alert_detail import label_alert
from ui.dashboard.app import check_exposure, parse_auth, serve
from ui.dashboard.embeddings_tab import pca_2d
from ui.dashboard.graph import layout, neighbourhood, svg

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 1, 1)


@pytest.fixture
def store(store_url: str) -> tuple[Store, str]:
    """Ten transactions of three cards at three merchants, all scored by one run; five alerted."""
    store = Store(store_url)
    run = store.start_run("score", {"model_path": None})
    cards = ["c1", "c1", "c1", "c2", "c2", "c2", "c3", "c3", "c3", "c3"]
    merchants = ["m1", "m2", "m1", "m1", "m3", "m3", "m2", "m2", "m1", "m<b>"]
    txns = pl.DataFrame(
        {
            "txn_id": [f"t{i}" for i in range(10)],
            "card_id": cards,
            "merchant_id": merchants,
            "amount": [10.0 * (i + 1) for i in range(10)],
            "ts": [T0 + timedelta(days=i) for i in range(10)],
            "is_fraud": [False, False, True, False, False, False, True, True, False, False],
        }
    )
    store.write("transactions", txns)
    scores = [0.1, 0.5, 0.9995, 0.2, 0.995, 0.3, 0.9999, 0.99995, 0.4, 0.9991]
    store.write(
        "fraud_scores",
        pl.DataFrame({"run_id": run, "txn_id": txns["txn_id"], "card_id": cards, "score": scores}),
    )
    alerted = txns.with_columns(score=pl.Series(scores)).filter(pl.col("score") >= 0.99)
    store.write(
        "alerts",
        alerted.select(
            (pl.lit(f"{run}:") + pl.col("txn_id")).alias("alert_id"),
            pl.lit(run).alias("run_id"),
            "txn_id",
            "card_id",
            "score",
            pl.lit("autoencoder").alias("kind"),
            pl.lit("open").alias("status"),
            "ts",
        ),
    )
    store.finish_run(run)
    users = ["u_1", "ux1", "ux1", "u2"]
    store.write(
        "events",
        pl.DataFrame(
            {
                "event_id": ["e1", "e2", "e3", "e4"],
                "user_id": users,
                "item_id": ["i1", "i2", "i3", "i1"],
                "ts": [T0 + timedelta(hours=h) for h in range(4)],
            }
        ),
    )
    return store, run


def test_alerts_page_filters_pages_and_sorts(store) -> None:
    store, run = store
    everything, total = queries.alerts_page(store, queries.AlertFilter(run_id=run))
    assert total == 5 and everything["txn_id"].to_list() == ["t7", "t6", "t2", "t9", "t4"]  # score, highest first
    first, _ = queries.alerts_page(store, queries.AlertFilter(run_id=run), page=1, size=2)
    second, _ = queries.alerts_page(store, queries.AlertFilter(run_id=run), page=2, size=2)
    third, _ = queries.alerts_page(store, queries.AlertFilter(run_id=run), page=3, size=2)
    assert first["txn_id"].to_list() + second["txn_id"].to_list() + third["txn_id"].to_list() == [
        "t7",
        "t6",
        "t2",
        "t9",
        "t4",
    ]
    newest, _ = queries.alerts_page(store, queries.AlertFilter(run_id=run), sort="-ts")
    assert newest["txn_id"].to_list() == ["t9", "t7", "t6", "t4", "t2"]

    def txns(**where) -> list[str]:
        frame, count = queries.alerts_page(store, queries.AlertFilter(run_id=run, **where), sort="ts")
        assert count == frame.height
        return frame["txn_id"].to_list()

    assert txns(card_id="c3") == ["t6", "t7", "t9"]
    assert txns(merchant_id="m2") == ["t6", "t7"]
    assert txns(min_score=0.9999) == ["t6", "t7"]
    assert txns(since=T0 + timedelta(days=4), until=T0 + timedelta(days=7)) == ["t4", "t6"]
    assert txns(kind="other") == []
    assert txns(merchant_id="m<b>", status="open") == ["t9"]
    with pytest.raises(ConfigError, match="page"):
        queries.alerts_page(store, queries.AlertFilter(), page=0)
    with pytest.raises(ConfigError, match="until: 'tomorrow' is not a date"):
        queries.parse_day("tomorrow", "until")


def test_threshold_count_and_histogram_agree(store) -> None:
    store, run = store
    assert scores_at_least(store, run, [0.0, 0.99, 0.9995]) == {0.0: 10, 0.99: 5, 0.9995: 3}
    histogram = queries.score_histogram(store, run, 0.9995)
    assert histogram["count"].sum() == 10
    assert histogram.filter(pl.col("flagged") == "flagged")["count"].sum() == 3
    assert histogram["lower"].is_sorted() and 0.9995 in histogram["lower"].to_list()
    assert histogram["count"].to_list() == [5, 0, 0, 0, 1, 0, 1, 1, 0, 2]
    # A finished score run records its counts at the histogram's edges: the same histogram,
    # from the run's metrics plus one count at the threshold.
    recorded = recorded_counts(store, run)
    assert recorded["scores_at_least"][0] == 10
    store.log_metrics(run, recorded)
    assert queries.score_histogram(store, run, 0.9995).equals(histogram)
    assert scores_at_least(store, run, [0.0, 0.9995]) == {0.0: 10, 0.9995: 3}


def test_label_alert_writes_a_checked_label_and_the_alert_status(store) -> None:
    store, run = store
    alert = f"{run}:t6"
    with pytest.raises(ConfigError, match="label must be"):
        label_alert(store, alert, "maybe", "ann")
    with pytest.raises(ConfigError, match="analyst"):
        label_alert(store, alert, "fraud", "   ")
    with pytest.raises(ConfigError, match="note is 10001 characters"):
        label_alert(store, alert, "fraud", "ann", "x" * 10_001)
    with pytest.raises(NotFoundError, match="not in the store"):
        label_alert(store, f"{run}:t0", "fraud", "ann")
    assert store.count("labels") == 0 and store.count("alerts", {"status": "open"}) == 5

    assert "**fraud**" in label_alert(store, alert, "confirmed fraud", "ann", "called the owner")
    assert "**genuine**" in label_alert(store, f"{run}:t4", "false positive", "bob")
    labels = read_labels(store).sort("txn_id")
    assert labels.select("txn_id", "card_id", "alert_id", "label", "analyst").rows() == [
        ("t4", "c2", f"{run}:t4", "genuine", "bob"),
        ("t6", "c3", alert, "fraud", "ann"),
    ]
    statuses = dict(store.read("alerts", columns=["txn_id", "status"]).iter_rows())
    assert (statuses["t6"], statuses["t4"], statuses["t7"]) == ("confirmed", "false_positive", "open")


def test_confirmed_frauds_follow_the_analysts_latest_word(store) -> None:
    store, run = store
    assert set(queries.confirmed_frauds(store)["txn_id"]) == {"t2", "t6", "t7"}
    label_alert(store, f"{run}:t7", "genuine", "ann")  # the data said fraud; the analyst disagrees
    label_alert(store, f"{run}:t9", "fraud", "ann")
    frauds = queries.confirmed_frauds(store)
    assert dict(frauds.select("txn_id", "source").iter_rows()) == {"t9": "analyst", "t6": "data", "t2": "data"}
    assert frauds["txn_id"].to_list() == ["t9", "t6", "t2"]  # newest first


def test_confirmed_frauds_read_labels_as_fraud_labels_does(store) -> None:
    """Labels written by another tool (other spelling) and two labels at the same instant: the
    dashboard agrees with :func:`fraud.labels.read_labels`, one row per transaction."""
    store, _ = store
    at = T0 + timedelta(days=30)
    rows = [("l1", "t3", "c2", "Confirmed Fraud", at), ("l2", "t4", "c2", "fraud", at), ("l3", "t4", "c2", "fraud", at)]
    store.write(
        "labels",
        pl.DataFrame(
            [{"label_id": i, "txn_id": x, "card_id": c, "label": lab, "analyst": "bot", "created_at": ts}
             for i, x, c, lab, ts in rows]
        ),
    )  # fmt: skip
    frauds = queries.confirmed_frauds(store)
    assert sorted(frauds["txn_id"]) == ["t2", "t3", "t4", "t6", "t7"]
    assert frauds.filter(pl.col("source") == "analyst")["txn_id"].sort().to_list() == ["t3", "t4"]
    labelled = read_labels(store).filter(pl.col("is_fraud") == 1)["txn_id"].sort().to_list()
    assert labelled == ["t3", "t4"]


def test_user_search_treats_wildcards_as_text(store) -> None:
    store, _ = store
    assert queries.search_users(store, "u_")["user_id"].to_list() == ["u_1"]
    assert queries.search_users(store, "u").select("user_id", "events").rows() == [("u2", 1), ("u_1", 1), ("ux1", 2)]
    assert queries.search_users(store, "%").height == 0
    assert queries.user_history(store, "ux1")["item_id"].to_list() == ["i2", "i3"]


def test_graph_neighbourhood_layout_and_escaped_drawing(store) -> None:
    store, _ = store
    edges, nodes = neighbourhood(store, "card:c3")
    assert set(edges.filter(pl.col("a") == "card:c3")["b"]) == {"merchant:m2", "merchant:m1", "merchant:m<b>"}
    assert edges.filter(pl.col("b") == "merchant:m2")["frauds"].to_list() == [2]
    radius = dict(zip(nodes["node"], np.hypot(nodes["x"], nodes["y"])))
    ring = dict(zip(nodes["node"], nodes["ring"]))
    assert radius["card:c3"] == 0 and ring["card:c1"] == ring["card:c2"] == 2
    assert all(abs(radius[n] - ring[n]) < 1e-9 for n in radius)
    assert nodes["node"].is_unique().all()
    drawing = svg(edges, nodes, "card:c3")
    assert "m&lt;b&gt;" in drawing and "m<b>" not in drawing
    assert drawing.count("<circle") == nodes.height
    with pytest.raises(NotFoundError):
        neighbourhood(store, "card:nobody")
    # A ring-2 node joins the ring-1 nodes it touches, so the layout works from edges alone.
    assert layout(pl.DataFrame({"a": ["x", "x", "y"], "b": ["y", "z", "w"]}), "x")["ring"].to_list() == [0, 1, 1, 2]


def test_pca_map_separates_planted_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16)) * 5
    vectors = np.vstack([centres[0] + rng.normal(size=(50, 16)), centres[1] + rng.normal(size=(50, 16))])
    x = pca_2d(vectors.astype(np.float32))[:, 0]
    assert x.shape == (100,)
    assert (x[:50] > 0).all() != (x[50:] > 0).all() and ((x[:50] > 0).all() or (x[:50] < 0).all())


def test_exposure_needs_a_login() -> None:
    check_exposure("127.0.0.1", None)
    check_exposure("localhost", None)
    check_exposure("::1", None)
    check_exposure("0.0.0.0", ("ann", "pw"))
    for host in ("0.0.0.0", "192.168.1.5", "example.org", "::"):
        with pytest.raises(ConfigError, match="without a login"):
            check_exposure(host, None)
    assert parse_auth("ann:p:w") == ("ann", "p:w")
    assert parse_auth(None) is None and parse_auth("  ") is None
    for bad in ("ann", "ann:", ":pw"):
        with pytest.raises(ConfigError, match="user:password"):
            parse_auth(bad)


def test_ui_on_all_interfaces_without_login_exits_with_one_line(tmp_path: Path) -> None:
    bad = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ui.cli import main; main()",
            "ui",
            "--host",
            "0.0.0.0",
            "--db",
            f"sqlite:///{tmp_path / 'never.sqlite'}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: refusing to serve the dashboard on 0.0.0.0 without a login")
    assert len(bad.stderr.splitlines()) == 1
    assert not (tmp_path / "never.sqlite").exists()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_with_a_login_an_unauthenticated_request_gets_no_data(store) -> None:
    store, run = store
    app, url = serve(store, port=_port(), auth=("ann", "s3cret"), block=False, quiet=True)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for path in ("config", "gradio_api/info", "gradio_api/queue/status"):
                response = client.get(path)
                assert response.status_code == 401, path
                assert run not in response.text and store.url not in response.text
            join = client.post("gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"})
            assert join.status_code == 401
            page = client.get("")
            assert store.url not in page.text and run not in page.text
            assert client.post("login", data={"username": "ann", "password": "wrong"}).status_code == 400
            assert client.post("login", data={"username": "ann", "password": "s3cret"}).status_code == 200
            config = client.get("config")
            assert config.status_code == 200 and store.url in config.text
    finally:
        app.close()


def test_uploads_are_size_limited(store) -> None:
    store, _ = store
    app, url = serve(store, port=_port(), block=False, quiet=True)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            small = client.post("gradio_api/upload", files={"files": ("a.txt", b"x" * 1000)})
            assert small.status_code == 200
            uploaded = Path(small.json()[0])
            assert uploaded.is_relative_to(Path(tempfile.gettempdir()))
            big = client.post("gradio_api/upload", files={"files": ("b.txt", b"x" * 2_000_000)})
            assert big.status_code == 413
    finally:
        app.close()


def test_ctrl_c_stops_seqemb_ui(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ui.sqlite'}"
    port = _port()
    child = subprocess.Popen(
        [sys.executable, "-c", "from ui.cli import main; main()", "ui", "--db", url, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "Ctrl+C to stop" in child.stdout.readline()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until it listens
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) is not None
    finally:
        child.kill()


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("first page", {}),
        ("card", {"card_id": "c3"}),
        ("score", {"min_score": 0.9995}),
        ("day", {"since": T0 + timedelta(days=4), "until": T0 + timedelta(days=5)}),
        ("merchant", {"merchant_id": "m1"}),
    ],
)
def test_the_alerts_tab_filters_are_served_by_indexes(store, name, where) -> None:
    """The plan of each alerts-tab query (the page and the count) reads the alerts through one of
    their indexes, never by scanning the table (which index wins depends on the table's size and
    statistics: benchmarks/store_scale.py records the plans of a large store). PostgreSQL is told
    to avoid sequential scans, which it prefers on a table this small."""
    store, run = store
    statements = queries.alerts_page_statements(store, queries.AlertFilter(run_id=run, **where))
    dialect = store.engine.dialect.name
    with store.engine.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))
        for statement in statements:
            sql = str(statement.compile(store.engine, compile_kwargs={"literal_binds": True}))
            explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
            plan = "\n".join(str(row[-1]) for row in conn.execute(text(explain + sql)))
            assert re.search(r"\bix_alerts_\w+", plan), f"{name}: {plan}"
            assert not re.search(r"SCAN alerts\b|Seq Scan on alerts\b", plan), f"{name}: {plan}"
