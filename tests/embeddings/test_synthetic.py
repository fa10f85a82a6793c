from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta

import polars as pl
import pytest

from embeddings.errors import ConfigError
from embeddings.synthetic import World, WorldConfig, make_world

SMALL = WorldConfig(
    seed=7, n_items=200, n_clusters=5, n_users=100, n_sessions=500, n_merchants=60, n_cards=100, n_transactions=2_000
)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def txns(world: World) -> pl.DataFrame:
    return world.transactions


def _kind(txns: pl.DataFrame, kind: str) -> pl.DataFrame:
    return txns.filter(pl.col("fraud_kind") == kind)


# --- determinism and shape ------------------------------------------------------------


def test_same_seed_gives_identical_frames() -> None:
    a, b = make_world(SMALL).frames(), make_world(SMALL).frames()
    assert list(a) == ["items", "users", "events", "merchants", "cards", "transactions", "edges"]
    for name in a:
        assert a[name].equals(b[name]), name


def test_other_seed_gives_other_frames() -> None:
    a, b = make_world(SMALL), make_world(replace(SMALL, seed=8))
    assert not a.events.equals(b.events)
    assert not a.transactions.equals(b.transactions)


def test_shop_does_not_depend_on_card_sizes() -> None:
    a, b = make_world(SMALL), make_world(replace(SMALL, n_cards=150, n_transactions=3_000))
    assert a.events.equals(b.events)
    assert not a.transactions.equals(b.transactions)


def test_sizes_ids_and_types(world: World) -> None:
    cfg = world.config
    assert world.items.height == cfg.n_items and world.items["item_id"][0] == "i0001"
    assert world.users.height == cfg.n_users
    assert world.events["session_id"].n_unique() == cfg.n_sessions
    assert world.merchants.height == cfg.n_merchants and world.cards.height == cfg.n_cards
    assert world.transactions.height == cfg.n_transactions
    for frame, key in [
        (world.items, "item_id"),
        (world.events, "event_id"),
        (world.merchants, "merchant_id"),
        (world.cards, "card_id"),
        (world.transactions, "txn_id"),
    ]:
        assert frame[key].n_unique() == frame.height, key
    assert world.events["ts"].dtype == pl.Datetime("us") and world.transactions["ts"].dtype == pl.Datetime("us")
    assert world.events["item_id"].is_in(world.items["item_id"].implode()).all()
    assert world.transactions["merchant_id"].is_in(world.merchants["merchant_id"].implode()).all()


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        WorldConfig(n_items=5, n_clusters=10)
    assert str(err.value) == "WorldConfig: n_items must be at least n_clusters"
    with pytest.raises(ConfigError) as err:
        WorldConfig(n_cards=100, n_transactions=100_000)
    assert str(err.value) == (
        "WorldConfig: fraud_rate * n_transactions needs more cards (at most half of them defraud)"
    )


# --- shop -----------------------------------------------------------------------------


def test_users_browse_mostly_their_taste_clusters(world: World) -> None:
    joined = world.events.join(world.items, on="item_id").join(world.users, on="user_id")
    in_taste = joined.select(pl.col("taste_clusters").list.contains(pl.col("cluster"))).to_series()
    assert 0.85 < in_taste.mean() < 0.98  # noise = 0.1 leaves some events outside
    assert world.users["taste_clusters"].list.len().is_between(1, 3).all()


def test_consecutive_items_in_a_session_share_a_cluster(world: World) -> None:
    clusters = world.events.join(world.items, on="item_id", maintain_order="left")
    same = clusters.select(
        (pl.col("cluster") == pl.col("cluster").shift()).filter(pl.col("session_id") == pl.col("session_id").shift())
    ).to_series()
    assert same.mean() > 0.75


def test_popularity_is_skewed_within_clusters(world: World) -> None:
    views = world.events.join(world.items, on="item_id").group_by("cluster", "item_id").len()
    skew = views.group_by("cluster").agg(ratio=pl.col("len").max() / pl.col("len").median())
    assert skew["ratio"].min() > 5


def test_thirty_minute_gaps_recover_sessions(world: World) -> None:
    events = world.events
    assert events.equals(events.sort("user_id", "ts"))
    new_session = (pl.col("user_id") != pl.col("user_id").shift()) | (pl.col("ts").diff() > pl.duration(minutes=30))
    recovered = events.select(new_session.fill_null(True).cast(pl.Int64).cum_sum() - 1).to_series()
    assert (recovered == events["session_id"]).all()
    start = datetime.combine(world.config.start, time())
    assert events["ts"].min() >= start
    assert events["ts"].max() < start + timedelta(days=world.config.days)


# --- cards ----------------------------------------------------------------------------


def test_transactions_sorted_per_card_with_ids_in_time_order(txns: pl.DataFrame) -> None:
    assert txns.equals(txns.sort("card_id", "ts"))
    assert txns.sort("ts")["txn_id"].is_sorted()


def test_genuine_spending_is_habitual_and_diurnal(world: World, txns: pl.DataFrame) -> None:
    genuine = txns.filter(~pl.col("is_fraud"))
    habits = world.cards.select("card_id", merchant_id="habitual_merchants").explode("merchant_id")
    at_habit = genuine.join(habits, on=["card_id", "merchant_id"], how="semi").height / genuine.height
    assert at_habit > 0.9
    assert genuine.select((pl.col("ts").dt.hour() < 6).mean()).item() < 0.08
    weekend = genuine.select(pl.col("ts").dt.weekday() >= 6).to_series().mean()
    assert weekend > 2 / 7  # weekends are busier than weekdays


def test_fraud_rate_and_labels(txns: pl.DataFrame) -> None:
    assert 0.02 < txns["is_fraud"].mean() < 0.04  # configured 0.03
    assert (txns["is_fraud"] == txns["fraud_kind"].is_not_null()).all()
    assert set(txns["fraud_kind"].drop_nulls().unique()) == {"account_takeover", "card_testing", "merchant_ring"}
    per_card = txns.filter(pl.col("is_fraud")).group_by("card_id").agg(pl.col("fraud_kind").n_unique())
    assert (per_card["fraud_kind"] == 1).all()  # each defrauded card suffers one kind


def test_account_takeover_is_a_large_burst_away_from_home(world: World, txns: pl.DataFrame) -> None:
    fraud = _kind(txns, "account_takeover")
    burst = fraud.group_by("card_id").agg(
        start=pl.col("ts").min(), span=pl.col("ts").max() - pl.col("ts").min(), fraud_median=pl.col("amount").median()
    )
    genuine = txns.filter(~pl.col("is_fraud")).join(burst, on="card_id")
    before = genuine.group_by("card_id").agg(
        n_before=(pl.col("ts") < pl.col("start")).sum(), genuine_median=pl.col("amount").median()
    )
    cards = burst.join(before, on="card_id")
    assert cards.height == burst.height > 50
    assert (cards["n_before"] > 0).all()
    assert (cards["span"] < timedelta(hours=12)).all()
    assert (cards["fraud_median"] > 3 * cards["genuine_median"]).mean() > 0.9
    regions = fraud.join(world.merchants, on="merchant_id").join(world.cards, on="card_id", suffix="_card")
    assert (regions["region"] != regions["region_card"]).all()
    assert regions["category_right"].is_in(["electronics", "jewelry", "online", "travel"]).all()
    assert fraud.select((pl.col("ts").dt.hour() < 6).mean()).item() > 0.4


def test_card_testing_is_tiny_amounts_minutes_apart_online(txns: pl.DataFrame) -> None:
    fraud = _kind(txns, "card_testing")
    tiny = fraud.filter(pl.col("amount") <= 2.0)
    assert tiny.height / fraud.height > 0.8
    assert tiny["amount"].min() >= 0.5
    assert (tiny["channel"] == "online").all()
    runs = tiny.group_by("card_id").agg(n=pl.len(), span=pl.col("ts").max() - pl.col("ts").min())
    assert (runs["n"] >= 5).all()
    assert (runs["span"] < timedelta(hours=1)).all()
    assert (fraud.filter(pl.col("amount") > 2.0)["amount"] > 50).all()  # the purchase after the test


def test_ring_merchants_see_mostly_fraud(world: World, txns: pl.DataFrame) -> None:
    ring = _kind(txns, "merchant_ring")["merchant_id"].unique()
    assert ring.len() == world.config.n_ring_merchants
    at_ring = txns.filter(pl.col("merchant_id").is_in(ring.implode()))
    share = at_ring.group_by("merchant_id").agg(pl.col("is_fraud").mean())["is_fraud"]
    assert share.min() > 0.8
    assert not world.cards["habitual_merchants"].explode().is_in(ring.implode()).any()
    rest = txns.filter(~pl.col("merchant_id").is_in(ring.implode()))
    assert rest["is_fraud"].mean() < 0.03


def test_edges_aggregate_transactions_exactly(world: World, txns: pl.DataFrame) -> None:
    edges = world.edges
    assert edges.select("card_id", "merchant_id").n_unique() == edges.height
    assert edges["n_transactions"].sum() == txns.height
    assert edges["total_amount"].sum() == pytest.approx(txns["amount"].sum())
    expected = (
        txns.group_by("card_id", "merchant_id")
        .agg(n_transactions=pl.len().cast(pl.Int64), total_amount=pl.col("amount").sum())
        .sort("card_id", "merchant_id")
    )
    assert edges.equals(expected)


# --- output ---------------------------------------------------------------------------


def test_write_parquet_round_trips(tmp_path) -> None:
    small = make_world(SMALL)
    paths = small.write(tmp_path / "world")
    assert set(paths) == set(small.frames())
    for name, frame in small.frames().items():
        assert pl.read_parquet(paths[name]).equals(frame), name


def test_to_store_writes_each_row_once(tmp_path) -> None:
    from embeddings.store import Store

    small = make_world(SMALL)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    expected = {
        "items": small.items.height,
        "events": small.events.height,
        "merchants": small.merchants.height,
        "cards": small.cards.height,
        "transactions": small.transactions.height,
    }
    assert small.to_store(store) == expected
    assert small.to_store(store) == dict.fromkeys(expected, 0)
    stored = store.read("transactions").sort("card_id", "ts")
    assert stored.select(small.transactions.columns).equals(small.transactions)
    merchants = store.read("merchants").sort("merchant_id")
    assert merchants["cluster"].equals(small.merchants["region"], check_names=False)
    store.close()
