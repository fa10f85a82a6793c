from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from embeddings.errors import ConfigError, DataError
from embeddings.synthetic import WorldConfig, make_world
from embeddings.vectors import Embeddings
from fraud.config import TransactionSchema
from fraud.features import BASE_FEATURES, read_transactions, step_features

SCHEMA = TransactionSchema(category="category", channel="channel", label="is_fraud")


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(seed=0).scaled(0.1))


def region_vectors(world) -> Embeddings:
    """One-hot home region per merchant: cosine 1 between merchants of one region, 0 across."""
    m = world.merchants
    n_regions = world.config.n_regions
    return Embeddings(m["merchant_id"].to_list(), np.eye(n_regions, dtype=np.float32)[m["region"].to_numpy()])


def by_kind(world, features) -> pl.DataFrame:
    """Feature matrix as a frame with each step's planted kind ('genuine' or a fraud kind) and habit flag."""
    kind = world.transactions["fraud_kind"].gather(features.frame["row"]).fill_null("genuine")
    habits = world.cards.explode("habitual_merchants").select(
        card_id="card_id", merchant_id="habitual_merchants", habit=pl.lit(True)
    )
    habit = (
        world.transactions[features.frame["row"]]
        .join(habits, on=["card_id", "merchant_id"], how="left", maintain_order="left")["habit"]
        .fill_null(False)
    )
    return pl.DataFrame(features.matrix, schema=features.names).with_columns(kind=kind, habit=habit)


def test_read_transactions_canonical_sorted(world):
    tx = read_transactions(world.transactions.reverse(), SCHEMA)
    assert tx.columns == ["entity", "counterparty", "amount", "ts", "category", "channel", "label", "row"]
    assert tx.select(pl.struct("entity", "ts")).to_series().is_sorted()
    assert tx["label"].dtype == pl.Int8 and tx["label"].sum() == world.transactions["is_fraud"].sum()
    n = world.transactions.height
    original = world.transactions.reverse()[tx["row"]]  # row points back into the source
    assert (original["amount"] == tx["amount"]).all() and (original["card_id"] == tx["entity"]).all()
    assert sorted(tx["row"].to_list()) == list(range(n))


def test_first_step_conventions_and_values():
    t0 = datetime(2024, 1, 1, 6, 0)  # a Monday, 06:00
    raw = pl.DataFrame(
        {
            "card_id": ["b", "a", "a", "a"],
            "merchant_id": ["x", "x", "y", "x"],
            "amount": [7.0, 10.0, 30.0, 5.0],
            "ts": [t0, t0, t0 + timedelta(seconds=99), t0 + timedelta(days=2, hours=12)],
            "is_fraud": [0, 0, 1, 0],
        }
    )
    f = step_features(read_transactions(raw, TransactionSchema(label="is_fraud")))
    assert f.names == list(BASE_FEATURES) and "label" in f.frame.columns
    assert f.matrix.dtype == np.float32 and f.matrix.shape == (4, len(BASE_FEATURES))
    assert f.offsets.tolist() == [0, 3, 4] and f.entities().to_list() == ["a", "b"]
    x = {name: f.matrix[:, j] for j, name in enumerate(f.names)}
    expect = {
        "log_amount": [math.log1p(10), math.log1p(30), math.log1p(5), math.log1p(7)],
        "amount_ratio": [0, math.log(31 / 11), math.log(6 / 21), 0],
        "log_gap": [0, math.log1p(99), math.log1p(2.5 * 86400 - 99), 0],
        "first_step": [1, 0, 0, 1],
        "hour_sin": [1, math.sin(2 * math.pi * (6 + 99 / 3600) / 24), -1, 1],  # 18:00 -> sin -1, cos 0
        "weekday_sin": [0, 0, math.sin(2 * math.pi * 2 / 7), 0],  # Monday, Monday, Wednesday
        "weekday_cos": [1, 1, math.cos(2 * math.pi * 2 / 7), 1],
    }
    for name, values in expect.items():
        np.testing.assert_allclose(x[name], values, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(x["hour_cos"][[0, 2, 3]], 0, atol=1e-5)


def test_counterparty_features_unknown_and_int_ids():
    raw = pl.DataFrame(
        {
            "card_id": [1, 1, 1, 1],
            "merchant_id": [10, 11, 99, 12],
            "amount": [1.0, 2.0, 3.0, 4.0],
            "ts": [1_700_000_000 + 60 * i for i in range(4)],  # unix seconds
        }
    )
    vectors = Embeddings(["10", "11", "12"], [[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])  # str keys, int ids
    f = step_features(read_transactions(raw), vectors)
    x = {name: f.matrix[:, j] for j, name in enumerate(f.names)}
    assert x["unknown_counterparty"].tolist() == [0, 0, 1, 0]
    np.testing.assert_allclose(np.c_[x["cp_0"], x["cp_1"]], [[1, 0], [0.5**0.5] * 2, [0, 0], [0, 1]], atol=1e-6)
    # step 1: cos(u11, u10) = 0.707; step 3: cos(u12, u10 + u11) = 0.707 / |(1.707, 0.707)|
    np.testing.assert_allclose(
        x["counterparty_cosine"], [0, 0.5**0.5, 0, 0.5**0.5 / math.hypot(1 + 0.5**0.5, 0.5**0.5)], atol=1e-6
    )


def test_causal_appending_future_transactions_changes_no_earlier_row(world):
    tx = world.transactions
    vectors = region_vectors(world)
    rng = np.random.default_rng(1)
    n_new = 500
    later = tx["ts"].max() + timedelta(hours=1)
    future = pl.DataFrame(
        {
            "card_id": rng.choice(tx["card_id"].unique().to_numpy(), n_new).tolist()[:-1] + ["c_new"],
            "merchant_id": rng.choice(vectors.keys + ["m_unknown"], n_new),
            "amount": rng.uniform(0, 2000, n_new).round(2),
            "ts": [later + timedelta(minutes=int(m)) for m in rng.integers(0, 10_000, n_new)],
        }
    )
    columns = ["card_id", "merchant_id", "amount", "ts"]
    before = step_features(read_transactions(tx.select(columns)), vectors)
    after = step_features(read_transactions(pl.concat([tx.select(columns), future])), vectors)
    old = (after.frame["row"] < tx.height).to_numpy()
    assert after.n_steps == before.n_steps + n_new and after.n_entities == before.n_entities + 1
    assert after.frame.filter(pl.Series(old)).equals(before.frame)
    assert np.array_equal(after.matrix[old], before.matrix)  # exact, bit for bit


def test_planted_fraud_breaks_habits(world):
    f = step_features(read_transactions(world.transactions, SCHEMA), region_vectors(world))
    assert "label" not in f.names and f.frame["label"].sum() > 0
    stats = (
        by_kind(world, f)
        .filter(pl.col("first_step") == 0)
        .group_by("kind")
        .agg(pl.col("amount_ratio", "log_gap", "counterparty_cosine").mean())
    )
    s = {row["kind"]: row for row in stats.iter_rows(named=True)}
    genuine, ato, testing, ring = (s[k] for k in ("genuine", "account_takeover", "card_testing", "merchant_ring"))
    # Takeover and ring: amounts far above the card's running mean; card testing: a minute or so apart.
    assert ato["amount_ratio"] > genuine["amount_ratio"] + 1.0
    assert ring["amount_ratio"] > genuine["amount_ratio"] + 1.0
    assert testing["log_gap"] < genuine["log_gap"] - 4.0
    assert ato["log_gap"] < genuine["log_gap"] - 2.0


def test_habitual_merchants_closer_than_fraud_merchants(world):
    f = step_features(read_transactions(world.transactions, SCHEMA), region_vectors(world))
    frame = by_kind(world, f).filter(pl.col("first_step") == 0)
    habitual = frame.filter((pl.col("kind") == "genuine") & pl.col("habit"))["counterparty_cosine"].mean()
    takeover = frame.filter(pl.col("kind") == "account_takeover")["counterparty_cosine"].mean()
    ring = frame.filter(pl.col("kind") == "merchant_ring")["counterparty_cosine"].mean()
    assert habitual > takeover + 0.2 and habitual > ring + 0.2


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-5", "amount -5.0 is not a finite number >= 0"),
        ("abc", "cannot parse 'abc' as an amount"),
        ("", "missing value"),
    ],
)
def test_bad_amount_names_file_column_row(tmp_path, value, problem):
    path = tmp_path / "tx.csv"
    rows = ["card,merchant,amt,when", "c1,m1,1.5,2024-01-01", "c1,m2,2.5,2024-01-02", f"c2,m1,{value},2024-01-03"]
    path.write_text("\n".join(rows) + "\n")
    schema = TransactionSchema(entity="card", counterparty="merchant", amount="amt", timestamp="when")
    with pytest.raises(DataError) as error:
        read_transactions(path, schema)
    message = str(error.value)
    assert "\n" not in message
    assert message == f"{path}: column 'amt' row 2 (0-based data row): {problem}"


def test_missing_column_bad_label_bad_timestamp(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text("card_id,merchant_id,amount,ts,fraud\nc1,m1,1,2024-01-01,0\nc1,m1,2,yesterday,2\n")
    with pytest.raises(
        DataError, match=r"tx\.csv: missing column 'is_fraud' \(columns: card_id, merchant_id, amount, ts, fraud\)$"
    ):
        read_transactions(path, TransactionSchema(label="is_fraud"))
    with pytest.raises(DataError, match=r"column 'fraud' row 1 .*label 2 is not 0 or 1"):
        read_transactions(pl.read_csv(path).with_columns(ts=pl.lit("2024-01-01")), TransactionSchema(label="fraud"))
    with pytest.raises(DataError, match=r"column 'ts' row 1 .*cannot parse 'yesterday'"):
        read_transactions(path)
    with pytest.raises(ConfigError):
        TransactionSchema(entity="x", counterparty="x")
