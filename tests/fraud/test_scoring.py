"""Batch scoring into the store: every transaction scored once, alerts once, resumable after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select
from typer.testing import CliRunner

from embeddings.errors import ConfigError, DataError
from embeddings.settings import default_db_url
from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from fraud.config import AutoencoderConfig, FraudModelConfig, TransactionSchema
from fraud.jobs import score_batch
from fraud.model import FraudModel, train_fraud_model
from ui.cli import app
from ui.dashboard import queries

torch.set_num_threads(1)

# Every test here runs on each store back-end (tests/store_backends.py).
pytestmark = pytest.mark.usefixtures("db_backend")

ROOT = Path(__file__).resolve().parents[2]
THRESHOLD = 0.99


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(seed=0).scaled(0.2))


@pytest.fixture(scope="module")
def model_path(world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = FraudModelConfig(AutoencoderConfig(epochs=4, device="cpu"), transaction_id="txn_id")
    model = train_fraud_model(world.transactions, TransactionSchema(label="is_fraud"), config)
    return model.save(tmp_path_factory.mktemp("fraud") / "model")


@pytest.fixture(scope="module")
def parquet(world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tx") / "transactions.parquet"
    world.transactions.drop("is_fraud", "fraud_kind").write_parquet(path)
    return path


def _check_complete(store: Store, run_id: str, world) -> pl.DataFrame:
    """Every transaction has exactly one score; the alerts are exactly the scores >= the threshold."""
    scores = store.read("fraud_scores", where={"run_id": run_id})
    assert scores.height == world.transactions.height
    assert scores["txn_id"].n_unique() == scores.height
    assert set(scores["txn_id"]) == set(world.transactions["txn_id"])
    alerts = store.read("alerts", where={"run_id": run_id})
    assert alerts["txn_id"].n_unique() == alerts.height
    assert set(alerts["txn_id"]) == set(scores.filter(pl.col("score") >= THRESHOLD)["txn_id"])
    assert set(alerts["alert_id"]) == {f"{run_id}:{t}" for t in alerts["txn_id"]}
    assert set(alerts["status"]) == {"open"}
    return scores


def test_batch_scores_rank_planted_fraud_and_alerts(world, model_path: Path, parquet: Path) -> None:
    store = Store()
    run_id = score_batch(
        store, FraudModel.load(model_path), str(parquet), chunk_entities=64, model_path=model_path, progress=False
    ).run_id
    scores = _check_complete(store, run_id, world)
    truth = scores.join(world.transactions.select("txn_id", "is_fraud", "card_id"), on="txn_id")
    assert truth["card_id"].equals(truth["card_id_right"])
    assert roc_auc_score(truth["is_fraud"], truth["score"]) >= 0.9
    alerts = store.read("alerts", where={"run_id": run_id})
    precision = alerts.join(world.transactions.select("txn_id", "is_fraud"), on="txn_id")["is_fraud"].mean()
    assert alerts.height > 0 and precision >= 0.3  # 3 % of transactions are fraud: a tenfold lift at least
    run = store.get_run(run_id)
    assert (run["kind"], run["status"]) == ("score", "succeeded")
    assert run["metrics"]["scores"] == world.transactions.height
    assert run["metrics"]["entities_this_pass"] == world.cards.height

    # A finished run resumed: nothing is left to score, nothing is written twice.
    assert score_batch(store, FraudModel.load(model_path), str(parquet), run_id=run_id, progress=False).run_id == run_id
    assert store.get_run(run_id)["metrics"]["entities_this_pass"] == 0
    _check_complete(store, run_id, world)


def test_since_scores_only_new_transactions_with_their_history(world, model_path: Path, parquet: Path) -> None:
    """The nightly run: only transactions at or after ``since`` are scored, each as it scores
    with its card's whole history (the same score as a run over everything)."""
    store = Store()
    model = FraudModel.load(model_path)
    everything = score_batch(store, model, str(parquet), progress=False).run_id
    since = world.transactions["ts"].sort()[int(0.9 * world.transactions.height)]
    nightly = score_batch(store, model, str(parquet), since=since, progress=False).run_id
    new = world.transactions.filter(pl.col("ts") >= since)
    scored = store.read("fraud_scores", where={"run_id": nightly})
    assert sorted(scored["txn_id"]) == sorted(new["txn_id"])
    full = store.read("fraud_scores", where={"run_id": everything}).select("txn_id", full="score")
    both = scored.join(full, on="txn_id")
    np.testing.assert_allclose(both["score"], both["full"], rtol=1e-5, atol=1e-6)
    metrics = store.get_run(nightly)["metrics"]
    assert metrics["transactions"] == new.height and metrics["history_transactions"] == world.transactions.height
    assert metrics["entities"] == new["card_id"].n_unique()
    alerts = store.read("alerts", where={"run_id": nightly})
    assert set(alerts["txn_id"]) <= set(new["txn_id"])
    # Resumed, the run keeps its cut-off; resumed with another one, it refuses in one line.
    assert score_batch(store, model, str(parquet), run_id=nightly, progress=False).run_id == nightly
    assert store.count("fraud_scores", {"run_id": nightly}) == new.height
    with pytest.raises(ConfigError, match="since"):
        score_batch(store, model, str(parquet), run_id=nightly, since=world.transactions["ts"].min(), progress=False)


# A scoring job in its own process, slowed to one chunk per 0.05 s so it can be killed midway.
SLOW_JOB = """
import sys, time
import torch
torch.set_num_threads(1)
from embeddings.store import Store
from fraud.model import FraudModel
from fraud.jobs import score_batch

model = FraudModel.load(sys.argv[2])
inner = model.score_frame

def slow(frame):
    time.sleep(0.05)
    return inner(frame)

model.score_frame = slow
score_batch(Store(sys.argv[1]), model, sys.argv[3], chunk_entities=10, alert_threshold=0.99, progress=False)
"""


def test_a_job_killed_by_sigkill_resumes_and_scores_every_transaction_once(
    world, model_path: Path, parquet: Path, tmp_path: Path
) -> None:
    url = default_db_url()
    store = Store(url)
    job = subprocess.Popen(
        [sys.executable, "-c", SLOW_JOB, url, str(model_path), str(parquet)], cwd=ROOT, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while store.count("fraud_scores") < 2000 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL, job.stderr.read().decode()
    written = store.count("fraud_scores")
    assert 0 < written < world.transactions.height
    (run_id,) = [run["run_id"] for run in store.runs("score")]
    assert store.get_run(run_id)["status"] == "interrupted"  # killed: its process is gone
    # A chunk (whole entities, scores and alerts) is one transaction: each card is either fully
    # scored or not at all, and the alerts stored are exactly the stored scores over the threshold.
    per_card = store.read("fraud_scores").group_by("card_id").len()
    sizes = world.transactions.group_by("card_id").len()
    assert per_card.join(sizes, on="card_id").filter(pl.col("len") != pl.col("len_right")).height == 0
    stored = store.read("fraud_scores", where={"run_id": run_id})
    assert set(store.read("alerts")["txn_id"]) == set(stored.filter(pl.col("score") >= THRESHOLD)["txn_id"])

    score_batch(store, FraudModel.load(model_path), str(parquet), chunk_entities=10, run_id=run_id, progress=False)
    _check_complete(store, run_id, world)
    run = store.get_run(run_id)
    assert run["status"] == "succeeded"
    assert run["metrics"]["entities_this_pass"] == world.cards.height - per_card.height

    # The same run scored without a crash stores the same scores and the same alerts.
    fresh = score_batch(store, FraudModel.load(model_path), str(parquet), progress=False).run_id
    a = store.read("fraud_scores", where={"run_id": run_id}).drop("run_id").sort("txn_id")
    b = store.read("fraud_scores", where={"run_id": fresh}).drop("run_id").sort("txn_id")
    assert a.equals(b)


def test_two_jobs_write_at_once_while_the_dashboard_reads_whole_chunks(
    world, model_path: Path, parquet: Path, tmp_path: Path
) -> None:
    """Two scoring jobs over two sources write at the same time; meanwhile the dashboard's
    queries run, and every read sees each card either fully scored or not at all."""
    url = default_db_url()
    store = Store(url)
    other = tmp_path / "copy.parquet"
    other.write_bytes(parquet.read_bytes())
    jobs = [
        subprocess.Popen([sys.executable, "-c", SLOW_JOB, url, str(model_path), str(source)], cwd=ROOT)
        for source in (parquet, other)
    ]
    sizes = dict(world.transactions.group_by("card_id").len().iter_rows())
    scores = store.table("fraud_scores")
    per_card = select(scores.c.run_id, scores.c.card_id, func.count().label("n")).group_by(
        scores.c.run_id, scores.c.card_id
    )
    reads = 0
    try:
        while any(job.poll() is None for job in jobs):
            snapshot = store.read_sql(per_card)  # one statement: one snapshot of the store
            assert all(sizes[card] == n for card, n in zip(snapshot["card_id"], snapshot["n"]))
            for run in store.runs("score"):
                page, total = queries.alerts_page(store, queries.AlertFilter(run_id=run["run_id"]))
                # The page is read after the count, and alerts only grow meanwhile.
                assert page.height >= min(total, queries.PAGE_SIZE)
            reads += 1
    finally:
        for job in jobs:
            job.kill()
    assert [job.wait() for job in jobs] == [0, 0]
    assert reads >= 3  # the reads ran while the jobs wrote
    runs = store.runs("score")
    assert len(runs) == 2 and {run["status"] for run in runs} == {"succeeded"}
    for run in runs:
        _check_complete(store, run["run_id"], world)


def test_bad_transactions_and_bad_resumes(world, model_path: Path, tmp_path: Path) -> None:
    store = Store()
    model = FraudModel.load(model_path)
    csv = tmp_path / "tx.csv"
    world.transactions.head(30).drop("card_id").write_csv(csv)
    with pytest.raises(DataError, match=rf"^{csv}: missing column 'card_id'"):
        score_batch(store, model, str(csv), progress=False)
    assert store.count("runs") == 0  # bad input: no run, nothing half-written
    other = store.start_run("synthetic")
    with pytest.raises(ConfigError, match="is a 'synthetic' run, not a 'score' run"):
        score_batch(store, model, world.transactions.head(30), run_id=other, progress=False)
    with pytest.raises(ConfigError, match="alert_threshold"):
        score_batch(store, model, world.transactions.head(30), alert_threshold=0.0, progress=False)


def test_store_table_source(world, model_path: Path, tmp_path: Path) -> None:
    url = default_db_url()
    store = Store(url)
    store.write(
        "transactions", world.transactions.filter(pl.col("card_id").is_in(world.cards["card_id"].head(40).implode()))
    )
    run_id = score_batch(store, FraudModel.load(model_path), url, table="transactions", progress=False).run_id
    assert store.count("fraud_scores", {"run_id": run_id}) == store.count("transactions")


runner = CliRunner()


def test_cli_train_fraud_then_score(world, tmp_path: Path) -> None:
    csv = tmp_path / "tx.csv"
    small = world.transactions.filter(pl.col("card_id").is_in(world.cards["card_id"].head(100).implode()))
    small.write_csv(csv)
    trained = runner.invoke(
        app, ["train-fraud", str(csv), "--label", "is_fraud", "--transaction-id", "txn_id", "--epochs", "1",
              "--device", "cpu"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "model: " in trained.output
    scored = runner.invoke(app, ["score", str(csv), "--threshold", "0.95"])
    assert scored.exit_code == 0, scored.output
    store = Store()
    (run_id,) = [run["run_id"] for run in store.runs("score")]
    assert store.count("fraud_scores", {"run_id": run_id}) == small.height
    high = store.read("fraud_scores", where={"run_id": run_id}).filter(pl.col("score") >= 0.95)
    assert store.count("alerts", {"run_id": run_id}) == high.height > 0
    resumed = runner.invoke(app, ["score", str(csv), "--resume", run_id])
    assert resumed.exit_code == 0, resumed.output
    assert "(0 this pass)" in resumed.output

    bad = runner.invoke(app, ["train-fraud", str(csv), "--entity", "customer"])
    assert bad.exit_code != 0
    assert isinstance(bad.exception, DataError)
    assert str(bad.exception).startswith(f"{csv}: missing column 'customer'")


def test_a_second_score_of_the_same_source_and_model_while_one_runs_exits_2(
    model_path: Path, parquet: Path, tmp_path: Path, monkeypatch
) -> None:
    url = default_db_url()
    args = ["score", str(parquet), "--model", str(model_path), "--db", url]
    started, release = threading.Event(), threading.Event()
    score_frame = FraudModel.score_frame

    def held(self, frame):  # the first job waits inside its first chunk until the second has tried
        started.set()
        release.wait(60)
        return score_frame(self, frame)

    monkeypatch.setattr(FraudModel, "score_frame", held)
    first = threading.Thread(target=lambda: CliRunner().invoke(app, args))
    first.start()
    try:
        assert started.wait(60)
        second = subprocess.run(
            [sys.executable, "-c", "from ui.cli import main; main()", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        release.set()
        first.join()
    (line,) = second.stderr.strip().splitlines()
    assert second.returncode == 2 and line.startswith(f"error: seqemb score of {parquet} with model "), second.stderr
    assert "is already running as run" in line
    store = Store(url)
    assert [run["status"] for run in store.runs("score")] == ["succeeded"]


def test_scoring_a_source_again_leaves_one_open_alert_per_transaction_the_newest_runs(
    world, model_path: Path, parquet: Path
) -> None:
    store = Store()
    model = FraudModel.load(model_path)
    old = score_batch(store, model, parquet, alert_threshold=THRESHOLD, model_path=model_path, progress=False).run_id
    alerts = store.read("alerts", where={"run_id": old})
    reviewed = alerts["alert_id"][0]
    store.update("alerts", {"status": "confirmed"}, where={"alert_id": reviewed})
    new = score_batch(store, model, parquet, alert_threshold=THRESHOLD, model_path=model_path, progress=False).run_id
    other = score_batch(store, model, world.transactions, alert_threshold=THRESHOLD, progress=False).run_id

    open_alerts = store.read("alerts", where={"status": "open", "run_id": [old, new]})
    assert open_alerts["txn_id"].n_unique() == open_alerts.height == alerts.height
    assert set(open_alerts["run_id"]) == {new}
    older = store.read("alerts", where={"run_id": old})
    assert dict(older.group_by("status").len().iter_rows()) == {"confirmed": 1, "superseded": alerts.height - 1}
    # A frame has no name: its run's alerts neither supersede nor are superseded.
    assert set(store.read("alerts", where={"run_id": other})["status"]) == {"open"}
