"""The Recommender on the synthetic shop: planted taste clusters, cold start, fallbacks, save/load."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from embeddings.data import EventSchema
from embeddings.errors import ConfigError, NotFoundError
from embeddings.synthetic import WorldConfig, make_world
from recsys.config import EncoderConfig, FitConfig, NeuMFConfig, RecommenderConfig, TowerConfig
from recsys.data import read_interactions
from recsys.recommender import Recommender
from recsys.train import train_recommender

WORLD = WorldConfig(seed=3, n_items=400, n_clusters=8, n_users=300, n_sessions=1500)
CONFIG = RecommenderConfig(
    encoder=EncoderConfig(dim=32, hidden=32, dropout=0.1),
    fit=FitConfig(epochs=8, lr=3e-3, tokens_per_batch=512),
    tower=TowerConfig(dim=32, attribute_dim=8, id_dropout=0.3),
    tower_fit=FitConfig(epochs=3, lr=3e-3, tokens_per_batch=512),
    neumf=NeuMFConfig(dim=16, mlp=(32, 16), epochs=2),
    candidates=50,
    rerank_positions=3000,
    device="cpu",
)


@pytest.fixture(scope="module")
def shop():
    world = make_world(WORLD)
    # One item per cluster never appears in events: attributes only, the cold-start items.
    cold = world.items.group_by("cluster").agg(pl.col("item_id").sort().last()).sort("cluster")["item_id"]
    events = world.events.filter(~pl.col("item_id").is_in(cold.implode()))
    interactions = read_interactions(events, EventSchema(entity="user_id", item="item_id", timestamp="ts"))
    recommender = train_recommender(
        interactions, CONFIG, item_attributes=world.items.select("item_id", "category", "price"), progress=False
    )
    return world, cold.to_list(), recommender


def _cluster_of(world):
    return dict(zip(world.items["item_id"].to_list(), world.items["cluster"].to_list()))


def test_users_get_items_from_their_taste_clusters(shop):
    world, _, recommender = shop
    cluster = _cluster_of(world)
    taste = dict(zip(world.users["user_id"].to_list(), world.users["taste_clusters"].to_list()))
    top = recommender.recommend_users(recommender.user_ids, k=10)
    assert top["user_id"].n_unique() == recommender.n_users
    in_taste = np.mean([cluster[i] in taste[u] for u, i in zip(top["user_id"], top["item_id"])])
    # Users like 1-3 of 8 clusters (chance about 0.25); seen items are excluded.
    assert in_taste >= 0.8
    seen = {
        (u, recommender.catalogue[int(t)])
        for u, history in zip(recommender.user_ids, recommender.histories)
        for t in history
    }
    assert not any((u, i) in seen for u, i in zip(top["user_id"], top["item_id"]))


def test_anonymous_session_stays_in_its_cluster_and_reports_unknown_ids(shop):
    world, _, recommender = shop
    cluster = _cluster_of(world)
    members = world.items.filter(pl.col("cluster") == 2)["item_id"].to_list()
    session = [i for i in members if i in set(recommender.item_ids)][:3]
    result = recommender.recommend_session([*session, "no-such-item"], k=10)
    assert result.unknown == ["no-such-item"] and result.fallback is None
    assert np.mean([cluster[i] == 2 for i in result.items]) >= 0.8
    assert not set(session) & set(result.items)


def test_similar_items_and_cold_start_items_share_a_cluster(shop):
    world, cold, recommender = shop
    cluster = _cluster_of(world)
    warm = [i for i in recommender.item_ids if i not in cold][:20]
    agreement = np.mean([cluster[j] == cluster[i] for i in warm for j in recommender.similar_items(i, 10).items])
    assert agreement >= 0.8
    # Cold items have no events: their vectors come from category and price through the item tower.
    assert set(cold) <= set(recommender.item_ids)
    cold_agreement = np.mean([cluster[j] == cluster[i] for i in cold for j in recommender.similar_items(i, 10).items])
    assert cold_agreement >= 0.6  # chance is 1/8


def test_unknown_user_falls_back_to_popularity(shop):
    _, _, recommender = shop
    result = recommender.recommend("nobody", k=5)
    assert result.fallback == "popularity" and len(result.items) == 5
    counts = dict(zip(recommender.catalogue.to_list(), recommender.popularity))
    assert [counts[i] for i in result.items] == sorted(counts.values(), reverse=True)[:5]
    assert recommender.recommend_session(["nope"], k=3).fallback == "popularity"


def test_bad_arguments_raise_clear_errors(shop):
    _, _, recommender = shop
    for bad in (0, -1, 10_001, 2.5, True):
        with pytest.raises(ConfigError, match="k must be"):
            recommender.recommend(recommender.user_ids[0], k=bad)
    with pytest.raises(NotFoundError, match="unknown item"):
        recommender.similar_items("no-such-item")


def test_save_and_load_give_identical_outputs(shop, tmp_path):
    _, _, recommender = shop
    path = recommender.save(tmp_path / "model")
    loaded = Recommender.load(path)
    users = recommender.user_ids[:50] + ["nobody"]
    before = recommender.recommend_users(users, k=10)
    after = loaded.recommend_users(users, k=10)
    assert before.equals(after)
    session = recommender.item_ids[:4]
    assert loaded.recommend_session(session, 7) == recommender.recommend_session(session, 7)
    assert loaded.similar_items(session[0], 5) == recommender.similar_items(session[0], 5)
    with pytest.raises(NotFoundError, match="not a recommender directory"):
        Recommender.load(tmp_path)


@pytest.mark.parametrize("n_items", [7, 100])
def test_a_small_catalogue_trains_with_the_reranker(n_items):
    # Few items: the two-tower top n reaches the excluded history items, whose scores are -inf;
    # a repeated target among them must still be a finite training case for NeuMF.
    rng = np.random.default_rng(0)
    events = pl.DataFrame(
        {"user": np.repeat(np.arange(60), 8), "item": rng.integers(0, n_items, 480), "t": np.tile(np.arange(8), 60)}
    )
    config = RecommenderConfig(
        encoder=EncoderConfig(dim=8, hidden=8),
        fit=FitConfig(epochs=1),
        tower=TowerConfig(dim=8),
        tower_fit=FitConfig(epochs=1),
        neumf=NeuMFConfig(dim=4, mlp=(8, 4), epochs=1),
        device="cpu",
    )
    model = train_recommender(read_interactions(events, EventSchema("user", "item", "t")), config, progress=False)
    found = model.recommend(0, 5)
    assert len(found.items) == min(5, n_items - events.filter(pl.col("user") == 0)["item"].n_unique())
    assert np.isfinite(found.scores).all()
