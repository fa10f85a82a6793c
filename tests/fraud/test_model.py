"""The fraud model: trained on a time prefix, calibrated on the later genuine slice, one directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import roc_auc_score

from embeddings.errors import DataError, NotFoundError
from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from fraud.config import AutoencoderConfig, FraudJob, FraudModelConfig, TransactionSchema
from fraud.jobs import run_train_fraud
from fraud.labels import record_label
from fraud.model import FraudModel, train_fraud_model

torch.set_num_threads(1)

SCHEMA = TransactionSchema(label="is_fraud")
CONFIG = FraudModelConfig(AutoencoderConfig(epochs=4, device="cpu"), transaction_id="txn_id")


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(seed=0).scaled(0.2))


@pytest.fixture(scope="module")
def model(world) -> FraudModel:
    return train_fraud_model(world.transactions, SCHEMA, CONFIG)


def test_scores_rank_planted_fraud_and_calibrate_genuine_validation(world, model: FraudModel) -> None:
    scored = model.score(world.transactions.drop("is_fraud"))  # scoring needs no label
    assert scored.columns == ["row", "txn_id", "entity", "ts", "raw_score", "score"]
    assert scored.height == world.transactions.height
    truth = scored.join(world.transactions.select("txn_id", "is_fraud"), on="txn_id")
    assert roc_auc_score(truth["is_fraud"], truth["raw_score"]) >= 0.9
    assert truth["score"].is_between(0.0, 1.0).all()
    # Calibrated genuine validation scores are about uniform: about 1 % of them reach 0.99.
    cutoff = pl.Series([model.metrics["validation_cutoff"]]).str.to_datetime()[0]
    genuine = truth.filter((pl.col("ts") >= cutoff) & ~pl.col("is_fraud"))["score"]
    assert 0.4 <= genuine.median() <= 0.6
    assert (genuine >= 0.99).mean() <= 0.02
    assert model.metrics["train_transactions"] < world.transactions.height
    assert model.metrics["validation_auc"] >= 0.9


def test_save_load_round_trip(tmp_path: Path, world, model: FraudModel) -> None:
    path = model.save(tmp_path / "fm")
    loaded = FraudModel.load(path)
    assert loaded.schema == model.schema and loaded.config == model.config
    sample = world.transactions.head(3000)
    a, b = model.score(sample), loaded.score(sample)
    assert a.equals(b)
    with pytest.raises(NotFoundError, match="not a fraud model directory"):
        FraudModel.load(tmp_path)


def test_row_numbers_name_transactions_without_an_id_column(world) -> None:
    config = FraudModelConfig(AutoencoderConfig(epochs=1, device="cpu"))
    small = world.transactions.head(4000)
    scored = train_fraud_model(small, TransactionSchema(), config).score(small)
    assert sorted(scored["txn_id"].cast(pl.Int64).to_list()) == list(range(small.height))


def test_bad_transactions_raise_the_data_layer_error(tmp_path: Path, world, model: FraudModel) -> None:
    csv = tmp_path / "tx.csv"
    bad = world.transactions.head(50).with_columns(pl.col("amount").cast(pl.String))
    bad = bad.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("lots")).otherwise("amount").alias("amount")
    )
    bad.write_csv(csv)
    with pytest.raises(DataError, match=rf"^{csv}: column 'amount' row 7 \(0-based data row\): cannot parse 'lots'"):
        model.score(csv)
    repeated = world.transactions.head(50).with_columns(txn_id=pl.lit("t1"))
    with pytest.raises(DataError, match="column 'txn_id' row 0 .*'t1' is repeated"):
        model.score(repeated)


def test_the_training_job_records_its_run(tmp_path: Path, world) -> None:
    store = Store()
    job = FraudJob(SCHEMA, FraudModelConfig(AutoencoderConfig(epochs=1, device="cpu"), transaction_id="txn_id"))
    result = run_train_fraud(world.transactions.head(4000), job, store=store, out=tmp_path / "m")
    model, run_id, path = result.model, result.run_id, result.path
    run = store.get_run(run_id)
    assert (run["kind"], run["status"], run["artifact_path"]) == ("fraud_model", "succeeded", str(path))
    assert run["metrics"]["transactions"] == 4000
    assert FraudModel.load(path).calibration.n_fitted == model.calibration.n_fitted
    assert np.isfinite(model.calibration.quantiles).all()


def test_analyst_labels_keep_confirmed_frauds_out_of_training_and_calibration(tmp_path: Path, world) -> None:
    """Without a label column the planted frauds are calibrated on as genuine; once analysts
    confirm them they leave the calibration sample, and a false positive stays in it."""
    store = Store()
    head = world.transactions.sort("ts").head(4000)
    config = FraudModelConfig(AutoencoderConfig(epochs=1, device="cpu"), transaction_id="txn_id")
    job = FraudJob(TransactionSchema(), config)
    before = run_train_fraud(head, job, store=store, out=tmp_path / "before").model
    cutoff = pl.Series([before.metrics["validation_cutoff"]]).str.to_datetime()[0]
    cold = pl.int_range(pl.len()).over("card_id") < config.autoencoder.window - 1
    late = head.sort("ts").with_columns(cold=cold).filter((pl.col("ts") >= cutoff) & ~pl.col("cold"))
    frauds = late.filter(pl.col("is_fraud")).head(10)
    genuine = late.filter(~pl.col("is_fraud")).head(5)
    assert frauds.height == 10
    for row in frauds.iter_rows(named=True):
        record_label(store, txn_id=row["txn_id"], card_id=row["card_id"], label="confirmed fraud", analyst="a")
    for row in genuine.iter_rows(named=True):
        record_label(store, txn_id=row["txn_id"], card_id=row["card_id"], label="false positive", analyst="a")
    after = run_train_fraud(head, job, store=store, out=tmp_path / "after").model
    assert after.metrics["analyst_labels"] == 15
    assert after.metrics["validation_genuine"] == before.metrics["validation_genuine"] - 10
    ignored = FraudJob(TransactionSchema(), config, analyst_labels=False)
    assert run_train_fraud(head, ignored, store=store, out=tmp_path / "x").model.metrics["analyst_labels"] == 0
