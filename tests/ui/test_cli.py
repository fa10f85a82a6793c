"""The seqemb command line: the demo end to end, training from a file, and one-line user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy
from typer.testing import CliRunner

from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from recsys.recommender import Recommender
from ui.cli import app

# Every test here runs on each store back-end (tests/store_backends.py).
pytestmark = pytest.mark.usefixtures("db_backend")

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_demo_leaves_runs_models_and_vectors_in_the_store(seqemb_home: Path) -> None:
    result = runner.invoke(app, ["demo", "--no-ui", "--scale", "0.2"])
    assert result.exit_code == 0, result.output
    store = Store()
    columns = ("run_id", "kind", "status", "artifact_path")
    runs = pl.DataFrame([{name: run[name] for name in columns} for run in store.runs()])
    assert sorted(runs["kind"]) == [
        "fraud_model",
        "item2vec",
        "item2vec",
        "node2vec",
        "recommend",
        "recommender",
        "score",
        "synthetic",
    ]
    assert set(runs["status"]) == {"succeeded"}
    world = make_world(WorldConfig().scaled(0.2))
    recommended = store.read("recommendations")
    assert recommended.height == 10 * world.users.height
    # At this scale users have seen nearly every item of their taste clusters, and the stored
    # top 10 excludes seen items; without that exclusion the model's picks are their tastes.
    model = Recommender.load(runs.filter(pl.col("kind") == "recommender")["artifact_path"][0])
    cluster = dict(world.items.select("item_id", "cluster").iter_rows())
    taste = dict(world.users.select("user_id", "taste_clusters").iter_rows())
    picks = [(u, i) for u in model.user_ids[:100] for i in model.recommend(u, 10, exclude_seen=False).items]
    assert np.mean([cluster[i] in taste[u] for u, i in picks]) >= 0.8
    assert store.count("events") == world.events.height
    # Every transaction scored once; alerts are mostly the planted fraud, and each kind ranks high.
    score_run = store.get_run(runs.filter(pl.col("kind") == "score")["run_id"][0])
    assert store.count("fraud_scores") == world.transactions.height
    alerted = store.read("alerts", columns=["txn_id"]).join(world.transactions, on="txn_id")
    assert alerted.height > 0 and alerted["is_fraud"].mean() >= 0.5
    for kind in ("account_takeover", "card_testing", "merchant_ring"):
        assert score_run["metrics"][f"{kind}_auc"] >= 0.9, score_run["metrics"]
    assert store.count("vectors") > 0
    for path in runs.filter(pl.col("kind").is_in(["item2vec", "node2vec"]))["artifact_path"]:
        assert (Path(path) / "model.json").is_file()

    similar = runner.invoke(app, ["similar", "i0001", "-k", "3"])
    assert similar.exit_code == 0, similar.output
    assert len(similar.output.strip().splitlines()) == 3
    card = runner.invoke(app, ["similar", "card:c0001", "-k", "3"])
    assert card.exit_code == 0, card.output
    assert len(card.output.strip().splitlines()) == 3


def test_item2vec_from_csv_and_bad_column(tmp_path: Path, seqemb_home: Path) -> None:
    events = make_world(WorldConfig().scaled(0.1)).events
    csv = tmp_path / "clicks.csv"
    events.write_csv(csv)
    out = tmp_path / "model"
    args = ["item2vec", str(csv), "--entity", "user_id", "--item", "item_id", "--timestamp", "ts"]
    ok = runner.invoke(app, [*args, "--session-gap", "30", "--epochs", "2", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert (out / "model.json").is_file()

    bad = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ui.cli import main; main()",
            "item2vec",
            str(csv),
            "--entity",
            "customer",
            "--item",
            "item_id",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr == (
        f"error: {csv}: missing column 'customer' (columns: event_id, user_id, session_id, item_id, ts)\n"
    )
    failed = Store().runs(status="failed")
    assert [run["error"] for run in failed] == [f"DataError: {bad.stderr[len('error: ') :].strip()}"]
    assert list(seqemb_home.glob("models/*")) == []  # the failed run left no model behind


def test_similar_of_unknown_key_is_one_line() -> None:
    bad = subprocess.run(
        [sys.executable, "-c", "from ui.cli import main; main()", "similar", "nope"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"error: no model in {Store().url} knows")
    assert bad.stderr.rstrip().endswith("knows 'nope'")
    assert len(bad.stderr.splitlines()) == 1


def _seqemb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from ui.cli import main; main()", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_typed_keys_that_only_look_like_integers_are_one_line(tmp_path: Path) -> None:
    """``str.isdigit`` accepts "²" and a stripped "--5"; ``int()`` does not: such keys are text, found nowhere."""
    events = pl.DataFrame({"user": [1, 1, 1, 2, 2, 2] * 20, "item": [3, 4, 5, 3, 4, 6] * 20})
    csv = tmp_path / "clicks.csv"
    events.write_csv(csv)
    trained = runner.invoke(app, ["item2vec", str(csv), "--entity", "user", "--item", "item", "--dim", "4"])
    assert trained.exit_code == 0, trained.output
    found = _seqemb("similar", "3", "-k", "2")  # typed text, integer keys: found
    assert found.returncode == 0, found.stderr
    assert [line.split()[1] for line in found.stdout.splitlines()] != []
    for key in ("²", "--5", "٣"):
        bad = _seqemb("similar", "--", key)
        assert bad.returncode == 2, bad.stderr
        assert bad.stdout == ""
        assert bad.stderr.splitlines() == [f"error: no model in {Store().url} knows {key!r}"]


def test_version_and_help_are_one_command_each() -> None:
    version = _seqemb("--version")
    assert version.returncode == 0 and version.stdout.startswith("seqemb ")
    shown = _seqemb("--help")
    assert shown.returncode == 0
    for command in ("demo", "item2vec", "node2vec", "similar", "runs", "train-recommender", "score", "ui"):
        assert command in shown.stdout


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    assert ci in readme


def test_node2vec_from_an_edge_file_and_a_transaction_table(tmp_path: Path) -> None:
    world = make_world(WorldConfig().scaled(0.1))
    edges = tmp_path / "edges.parquet"
    world.edges.write_parquet(edges)
    small = ["--dim", "8", "--walk-length", "10", "--walks-per-node", "2"]
    graph = runner.invoke(app, ["node2vec", "--edges", str(edges), "--src", "card_id", "--dst", "merchant_id", *small])
    assert graph.exit_code == 0, graph.output
    assert f"({world.edges.height:,} edges," in graph.output

    txns = tmp_path / "txns.csv"
    world.transactions.write_csv(txns)
    args = ["node2vec", "--edges", str(txns), "--transactions", "--src", "card_id", "--dst", "merchant_id"]
    bipartite = runner.invoke(app, [*args, *small, "--out", str(tmp_path / "model")])
    assert bipartite.exit_code == 0, bipartite.output
    assert (tmp_path / "model" / "model.json").is_file()
    assert "card:c0001" in Store().read("vectors", where={"key": "card:c0001"})["key"].to_list()


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


def test_bad_store_urls_and_session_gaps_are_one_line(tmp_path: Path, seqemb_home: Path) -> None:
    missing = tmp_path / "typo" / "x.sqlite"
    assert _one_line_error(_seqemb("runs", "--db", f"sqlite:///{missing}")) == (
        f"error: store URL 'sqlite:///{missing}': folder {missing.parent} does not exist; create it first"
    )
    assert not missing.parent.exists()  # a typo leaves no new, empty store behind
    not_a_store = tmp_path / "notes.sqlite"
    not_a_store.write_text("these are notes, not a database\n" * 50)
    assert _one_line_error(_seqemb("runs", "--db", f"sqlite:///{not_a_store}")).endswith("file is not a database")
    assert not_a_store.read_text().startswith("these are notes")

    events = tmp_path / "clicks.csv"
    pl.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 2]}).write_csv(events)
    for gap in ("nan", "inf", "-5", "1e300"):
        line = _one_line_error(
            _seqemb("item2vec", str(events), "--entity", "user", "--item", "item", "--session-gap", gap)
        )
        assert line.startswith("error: session_gap_minutes must be a finite number in (0, "), line
    assert Store().runs() == []  # refused before any run was recorded


def test_a_missing_postgres_driver_names_the_extra() -> None:
    hide_psycopg = "import sys; sys.modules['psycopg'] = None; from ui.cli import main; main()"  # import fails
    bad = subprocess.run(
        [sys.executable, "-c", hide_psycopg, "runs", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and bad.stderr.rstrip().endswith("pip install 'seqemb[postgres]'"), bad.stderr


def test_a_query_source_that_writes_is_refused_and_the_table_is_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    table = pl.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 2]})
    engine = sqlalchemy.create_engine(url)
    table.write_database("t", engine)
    for query in ("DROP TABLE t", "DELETE FROM t RETURNING *", "UPDATE t SET item = 0 RETURNING *"):
        line = _one_line_error(_seqemb("item2vec", url, "--query", query, "--entity", "user", "--item", "item"))
        assert "a query source is read only" in line, line
    with engine.connect() as conn:
        assert pl.read_database("SELECT * FROM t ORDER BY user, item", conn).equals(table)
    engine.dispose()


def test_an_out_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    events = tmp_path / "clicks.csv"
    pl.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 2]}).write_csv(events)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "sub" / "model"
    args = ["item2vec", str(events), "--entity", "user", "--item", "item", "--dim", "4", "--out", str(out)]
    line = _one_line_error(_seqemb(*args))
    assert line == f"error: {out}: cannot create its folder {out.parent} ({blocker} is a file)"
    line = _one_line_error(_seqemb(*args[:-1], str(blocker)))  # --out an existing file
    assert line == f"error: {blocker}: is a file; a model is saved as a directory"
    assert blocker.read_text() == "x" and list(tmp_path.glob(".*")) == []
    assert Store().runs() == []  # refused before the run started
