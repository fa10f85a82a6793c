"""``seqemb train-semi``: the semi-supervised model retrained from the analysts' labels in the store."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import polars as pl
import pytest
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

from embeddings.errors import DataError
from embeddings.store import Store
from fraud.counterparty_labels import COUNTERPARTY_LABEL_INPUTS
from fraud.features import step_features
from fraud.jobs import store_label_history
from fraud.labels import read_labels
from fraud.model import FraudModel
from fraud.semi import load_semi
from ui.cli import app

# Every test here runs on each store back-end (tests/store_backends.py).
pytestmark = pytest.mark.usefixtures("db_backend")

runner = CliRunner()


def _label_cards(
    store: Store, transactions: pl.DataFrame, cards: list[str], *, delay: dt.timedelta | None = None
) -> int:
    """Every transaction of ``cards`` labelled as an analyst would (fraud or false positive);
    recorded ``delay`` after the transaction (None: now)."""
    rows = transactions.filter(pl.col("card_id").is_in(cards))
    labels = rows.select(
        pl.Series("label_id", [str(uuid.uuid4()) for _ in range(rows.height)]),
        "txn_id",
        "card_id",
        pl.when(pl.col("is_fraud")).then(pl.lit("fraud")).otherwise(pl.lit("genuine")).alias("label"),
        pl.lit("analyst").alias("analyst"),
    )
    if delay is not None:
        labels = labels.with_columns(created_at=rows["ts"] + delay)
    return store.write("labels", labels)


def _train_fraud(world, tmp_path: Path, epochs: int) -> Path:
    """The world's transactions as a CSV, with a fraud model trained on them; returns the CSV."""
    csv = tmp_path / "tx.csv"
    world.transactions.write_csv(csv)
    trained = runner.invoke(
        app, ["train-fraud", str(csv), "--transaction-id", "txn_id", "--epochs", str(epochs), "--device", "cpu"]
    )
    assert trained.exit_code == 0, trained.output
    return csv


def test_train_semi_learns_from_store_labels_and_ranks_unlabelled_cards(world, tmp_path: Path) -> None:
    csv = _train_fraud(world, tmp_path, epochs=2)

    empty = runner.invoke(app, ["train-semi", str(csv)])
    assert empty.exit_code != 0 and isinstance(empty.exception, DataError)
    assert "holds no analyst labels" in str(empty.exception)

    store = Store()
    cards = world.cards["card_id"].to_list()
    labelled = cards[: int(0.4 * len(cards))]
    n = _label_cards(store, world.transactions, labelled)
    result = runner.invoke(app, ["train-semi", str(csv)])
    assert result.exit_code == 0, result.output
    (run,) = store.runs("semi_model")
    metrics = store.get_run(run["run_id"])["metrics"]
    assert metrics["labelled_transactions"] == n and metrics["labels_not_in_source"] == 0
    assert metrics["frauds"] == int(world.transactions.filter(pl.col("card_id").is_in(labelled))["is_fraud"].sum())

    # On the cards nobody labelled, the semi-supervised probability finds the planted fraud
    # better than the unsupervised score it builds on.
    fraud = FraudModel.load(store.runs("fraud_model")[0]["artifact_path"])
    semi = load_semi(run["artifact_path"])
    frame = fraud.read(world.transactions)
    features = step_features(frame, fraud.counterparty)
    steps = features.frame.join(
        world.transactions.with_row_index("row").select(pl.col("row").cast(pl.Int64), "card_id", "is_fraud"),
        on="row",
        how="left",
        maintain_order="left",
    )
    held = ~steps["card_id"].is_in(labelled).to_numpy()
    truth = steps["is_fraud"].to_numpy()[held]
    ae_ap = average_precision_score(truth, fraud.score_frame(frame)["raw_score"].to_numpy()[held])
    semi_ap = average_precision_score(truth, semi.score(fraud.autoencoder, features)[held])
    print(f"held-out AP: semi {semi_ap:.3f}, autoencoder {ae_ap:.3f}")
    assert semi_ap > ae_ap + 0.05, (semi_ap, ae_ap)


def test_train_semi_with_counterparty_labels_reads_what_was_known_before_each_step(world, tmp_path: Path) -> None:
    csv = _train_fraud(world, tmp_path, epochs=1)
    store = Store()
    cards = world.cards["card_id"].to_list()
    _label_cards(store, world.transactions, cards[: len(cards) // 2], delay=dt.timedelta(days=1))
    result = runner.invoke(app, ["train-semi", str(csv), "--counterparty-labels"])
    assert result.exit_code == 0, result.output
    (run,) = store.runs("semi_model")
    semi = load_semi(run["artifact_path"])
    assert semi.config.use_counterparty_labels
    assert set(COUNTERPARTY_LABEL_INPUTS) <= set(semi.input_names)

    fraud = FraudModel.load(store.runs("fraud_model")[0]["artifact_path"])
    frame = fraud.read(world.transactions)
    features = step_features(frame, fraud.counterparty)
    history = store_label_history(frame, features, read_labels(store))
    last_label = history[:, 0]
    assert (last_label == -1).any() and (last_label == 0).any() and (last_label == 1).any()
    # A step's own label (recorded a day later) is never part of its history.
    own = features.frame.select("row", "ts").with_columns(label_age=history[:, 3])
    assert (own["label_age"].filter(own["label_age"] >= 0) > 1.0 - 1e-9).all()
