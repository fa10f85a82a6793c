"""Streaming: warm on the past, score new transactions one by one == batch scoring over the full history."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from embeddings.errors import DataError
from fraud.calibrate import Calibration
from fraud.config import FraudModelConfig
from fraud.explain import feature_errors
from fraud.features import read_transactions, step_features
from fraud.model import FraudModel
from fraud.stream import StreamScorer

from .conftest import CONFIG, SCHEMA

RTOL = 1e-5
STREAMED = 300  # the last transactions, scored one at a time


@pytest.fixture(scope="module")
def fraud_model(model, vectors) -> FraudModel:
    """The shared autoencoder and merchant vectors as a FraudModel (txn ids from the txn_id column)."""
    calibration = Calibration.fit(np.linspace(0.0, 3.0, 301))
    return FraudModel(SCHEMA, FraudModelConfig(CONFIG, transaction_id="txn_id"), model, calibration, vectors)


@pytest.fixture(scope="module")
def batch(fraud_model, source) -> pl.DataFrame:
    """score_frame over the whole world, keyed by txn_id."""
    return fraud_model.score_frame(fraud_model.read(source.drop("is_fraud")))


def _expected(batch: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"txn_id": ids}).join(batch, on="txn_id", how="left", maintain_order="left")


def test_warm_then_stream_one_by_one_equals_batch_scores(fraud_model, source, batch) -> None:
    past, new = source.head(source.height - STREAMED), source.tail(STREAMED).drop("is_fraud")
    scorer = StreamScorer(fraud_model)
    assert scorer.warm(past) == past["card_id"].n_unique() == len(scorer)
    results = [scorer.score(t) for t in new.iter_rows(named=True)]
    expected = _expected(batch, new["txn_id"].to_list())
    assert [r.txn_id for r in results] == new["txn_id"].to_list()
    assert [r.entity for r in results] == new["card_id"].to_list()
    assert [r.ts for r in results] == new["ts"].to_list()
    raw = np.array([r.raw_score for r in results])
    np.testing.assert_allclose(raw, expected["raw_score"].to_numpy(), rtol=RTOL, atol=1e-8)
    np.testing.assert_allclose([r.score for r in results], expected["score"].to_numpy(), atol=1e-4)
    # The per-feature errors are explain's d_{L,f} of the same windows; weighted, they sum to the raw score.
    features = step_features(read_transactions(source, SCHEMA), fraud_model.counterparty)
    position = {t: i for i, t in enumerate(features.frame["row"].to_list())}
    rows = [position[r] for r in range(source.height - STREAMED, source.height)]
    d = feature_errors(fraud_model.autoencoder, features, rows)[:, -1]
    got = np.array([[r.feature_errors[name] for name in features.names] for r in results])
    np.testing.assert_allclose(got, d, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got @ fraud_model.autoencoder.weights.numpy(), raw, rtol=RTOL)


def test_score_many_equals_one_by_one_and_keeps_input_order(fraud_model, source, batch) -> None:
    past, new = source.head(source.height - 100), source.tail(100).drop("is_fraud")
    scorer = StreamScorer(fraud_model)
    scorer.warm(past)
    shuffled = new.sample(fraction=1.0, shuffle=True, seed=1)  # entities' own steps may come out of order
    results = scorer.score_many(shuffled)
    assert [r.txn_id for r in results] == shuffled["txn_id"].to_list()
    expected = _expected(batch, shuffled["txn_id"].to_list())
    np.testing.assert_allclose([r.raw_score for r in results], expected["raw_score"].to_numpy(), rtol=RTOL)


def test_plain_mappings_frames_and_text_values_score_alike(fraud_model, source) -> None:
    past, new = source.head(source.height - 20), source.tail(20).drop("is_fraud")
    plain, converted = StreamScorer(fraud_model), StreamScorer(fraud_model)
    plain.warm(past)
    converted.warm(past)
    as_text = new.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"), pl.col("amount").cast(pl.String))
    got = [plain.score(t) for t in new.iter_rows(named=True)]  # plain values: no polars on the way in
    want = [converted.score(as_text.slice(i, 1)) for i in range(as_text.height)]  # parsed by FraudModel.read
    assert got == want
    assert plain.score_many([]) == []


def test_new_entity_with_no_history_and_an_unknown_counterparty(fraud_model, source) -> None:
    card = source.filter(pl.col("card_id") == source["card_id"][0]).drop("is_fraud")
    card = card.head(CONFIG.window + 4)  # short windows (padded) and full ones
    card = card.with_columns(
        merchant_id=pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("never-seen")).otherwise("merchant_id")
    )
    expected = fraud_model.score_frame(fraud_model.read(card))
    scorer = StreamScorer(fraud_model)  # no warm: the card is new
    results = [scorer.score(t) for t in card.iter_rows(named=True)]
    np.testing.assert_allclose([r.raw_score for r in results], expected["raw_score"].to_numpy(), rtol=RTOL)
    assert results[5].feature_errors["unknown_counterparty"] > 0  # the flag is on, and off in training
    state = scorer.state(card["card_id"][0])
    assert state.count == card.height
    assert state.recent.shape == (CONFIG.window - 1, len(scorer.feature_names))  # bounded, not the history


def test_bad_transactions_raise_one_line_errors_and_leave_the_state_unchanged(fraud_model, source, batch) -> None:
    past, new = source.head(source.height - 1), source.tail(1).drop("is_fraud")
    scorer = StreamScorer(fraud_model)
    scorer.warm(past)
    good = new.row(0, named=True)
    entity = good["card_id"]
    before = scorer.state(entity)
    earlier = dict(good, ts=past.filter(pl.col("card_id") == entity)["ts"].min())
    bad = [
        ({k: v for k, v in good.items() if k != "amount"}, "amount"),
        (dict(good, amount=float("inf")), "not a finite number"),
        (dict(good, amount=None), "missing value"),
        (earlier, "earlier than that entity's last transaction"),
    ]
    for transaction, message in bad:
        with pytest.raises(DataError, match=message) as raised:
            scorer.score(transaction)
        assert "\n" not in str(raised.value)
        assert scorer.state(entity) is before
    with pytest.raises(DataError, match="earlier"):  # all or nothing: the good one is not applied either
        scorer.score_many([good, dict(good, txn_id="x", ts=earlier["ts"])])
    assert scorer.state(entity) is before
    result = scorer.score(good)
    np.testing.assert_allclose(result.raw_score, _expected(batch, [good["txn_id"]])["raw_score"][0], rtol=RTOL)
    assert scorer.state(entity).count == before.count + 1
