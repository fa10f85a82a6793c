"""node2vec end to end: karate factions, stats, model directory, card-merchant graphs and the fallback."""

from __future__ import annotations

import networkx as nx
import numpy as np
import polars as pl
import pytest

from embeddings.errors import ConfigError, DataError
from embeddings.graph import Graph, inductive_vectors, transaction_graph
from embeddings.graph.config import Node2VecConfig, Node2VecJob
from embeddings.graph.node2vec import node2vec, node2vec_with_stats
from embeddings.jobs import run_node2vec
from embeddings.model import EmbeddingModel
from embeddings.sgns_config import SGNSConfig
from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from embeddings.vectors import Embeddings


def small(seed: int = 0) -> Node2VecConfig:
    """A small, single-worker (so repeatable) node2vec config for the karate club."""
    return Node2VecConfig(
        walk_length=20, walks_per_node=20, sgns=SGNSConfig(dim=16, window=5, epochs=5, workers=1, seed=seed)
    )


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def knn_agreement(vectors: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out: share of points whose k nearest others (cosine) mostly share their label."""
    sims = unit(vectors) @ unit(vectors).T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1)[:, :k]
    return float(np.mean((labels[nearest].mean(axis=1) > 0.5) == labels))


def test_karate_club_factions_separate():
    g = nx.karate_club_graph()
    graph, _ = Graph.from_networkx(g)
    embeddings = node2vec(graph, small(0), progress=False)
    assert embeddings.keys == list(range(34)) and embeddings.dim == 16
    hi = np.array([g.nodes[i]["club"] == "Mr. Hi" for i in embeddings.keys])
    assert knn_agreement(embeddings.vectors, hi) >= 0.85
    # and the two clubs are two clusters: each node is closer to its club's centroid
    centroids = np.stack([unit(embeddings.vectors)[hi].mean(0), unit(embeddings.vectors)[~hi].mean(0)])
    closer_to_hi = (unit(embeddings.vectors) @ centroids.T).argmax(axis=1) == 0
    assert np.mean(closer_to_hi == hi) >= 0.85


def test_stats_and_isolated_nodes_without_vectors():
    edges = pl.DataFrame({"src": ["a", "b", "c"], "dst": ["b", "c", "a"]})
    graph, report = Graph.from_edges(edges, nodes=["a", "b", "c", "alone"])
    assert report.isolated == 1
    result = node2vec_with_stats(graph, small(1), progress=False)
    assert sorted(result.embeddings.keys) == ["a", "b", "c"]
    assert result.nodes_without_vector == 1
    assert (result.walks, result.walk_steps) == (3 * 20, 3 * 20 * 19)
    assert result.walk_steps_per_s > 0 and result.train_seconds > 0
    assert result.metrics()["nodes"] == 3


def test_same_seed_same_vectors_with_one_worker():
    graph, _ = Graph.from_networkx(nx.karate_club_graph())
    first = node2vec(graph, small(4), progress=False)
    again = node2vec(graph, small(4), progress=False)
    np.testing.assert_array_equal(first.vectors, again.vectors)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": -1.0}, "p must be a finite number > 0, got -1.0"),
        ({"walk_length": 1}, "walk_length must be an integer >= 2"),
        ({"walks_per_node": 0}, "walks_per_node must be an integer >= 1, got 0"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        Node2VecConfig(**kwargs)


def test_the_paper_defaults_train_the_walks():
    config = Node2VecConfig()
    assert (config.walk_length, config.walks_per_node, config.p, config.q) == (80, 10, 1.0, 1.0)
    assert (config.sgns.dim, config.sgns.window, config.sgns.negative, config.sgns.epochs) == (128, 10, 5, 1)


def test_run_records_a_model_that_loads_in_one_call(tmp_path):
    edges = tmp_path / "karate.csv"
    pl.DataFrame(list(nx.karate_club_graph().edges()), schema=["a", "b"], orient="row").write_csv(edges)
    store = Store()
    job = Node2VecJob(src="a", dst="b", config=small(), index_kind="exact")
    result = run_node2vec(edges, job, store=store, progress=False)
    model, run_id = result.model, result.run_id
    run = store.get_run(run_id)
    assert run["status"] == "succeeded"
    assert run["metrics"]["graph_edges"] == 78 and run["metrics"]["walks"] == 34 * 20
    loaded = EmbeddingModel.load(run["artifact_path"], kind="node2vec")
    assert loaded.embeddings.keys == model.embeddings.keys
    np.testing.assert_array_equal(loaded.embeddings.vectors, model.embeddings.vectors)
    assert loaded.config["config"]["q"] == 1.0
    assert loaded.similar("0", 3) == model.similar("0", 3)  # ids read from CSV are text
    assert store.count("vectors", where={"run_id": run_id}) == 34


def test_transaction_graph_keeps_cards_and_merchants_apart():
    transactions = pl.DataFrame({"card_id": [1, 1, 1, 2], "merchant_id": [1, 1, 5, 5], "amount": [3.0, 4.0, 1.0, 2.0]})
    graph = transaction_graph(transactions)
    assert graph.nodes.to_list() == ["card:1", "card:2", "merchant:1", "merchant:5"]
    assert graph.node_types.to_list() == ["card", "card", "merchant", "merchant"]
    assert graph.neighbours("card:1") == ["merchant:1", "merchant:5"]
    assert graph.edge_weights("card:1").tolist() == [2.0, 1.0]  # transaction counts
    by_amount = transaction_graph(transactions, weight="amount")
    assert by_amount.edge_weights("card:1").tolist() == [7.0, 1.0]
    with pytest.raises(
        DataError, match=r"^dataframe: missing column 'merchant' \(columns: card_id, merchant_id, amount\)$"
    ):
        transaction_graph(transactions, merchant="merchant")


def test_synthetic_world_graph_matches_its_edges():
    world = make_world(WorldConfig())
    graph = transaction_graph(world.transactions)
    edges = world.edges
    assert graph.n_edges == edges.height
    assert graph.n_nodes == edges["card_id"].n_unique() + edges["merchant_id"].n_unique()
    assert graph.weights.sum() / 2 == edges["n_transactions"].sum() == world.transactions.height


def test_fallback_is_the_weighted_mean_of_known_merchants():
    embeddings = Embeddings(["merchant:a", "merchant:b", "card:old"], np.array([[1.0, 0.0], [0.0, 3.0], [5.0, 5.0]]))
    transactions = pl.DataFrame(
        {"card_id": ["new", "new", "new", "lost", "gone"], "merchant_id": ["a", "a", "b", "zz", "a"]}
    )
    vectors = inductive_vectors(embeddings, transactions, ["new", "lost", "never"])
    assert vectors.keys == ["card:new"]  # "lost" paid only an unknown merchant; "never" paid no one
    np.testing.assert_allclose(vectors["card:new"], [2 / 3, 1.0])
    from_graph = inductive_vectors(embeddings, transaction_graph(transactions), ["new"])
    np.testing.assert_allclose(from_graph["card:new"], [2 / 3, 1.0])


def test_fallback_places_unseen_cards_near_cards_of_their_home_region():
    world = make_world(WorldConfig())
    rng = np.random.default_rng(0)
    held = rng.choice(world.cards["card_id"].to_list(), 100, replace=False).tolist()
    is_held = pl.col("card_id").is_in(held)
    graph = transaction_graph(world.transactions.filter(~is_held))
    config = Node2VecConfig(walk_length=20, walks_per_node=5, sgns=SGNSConfig(dim=32, window=5))
    embeddings = node2vec(graph, config, progress=False)
    fallback = inductive_vectors(embeddings, world.transactions.filter(is_held), held)
    assert len(fallback) == 100

    region = dict(zip("card:" + world.cards["card_id"], world.cards["region"]))
    trained = [key for key in embeddings.keys if key.startswith("card:")]
    sims = unit(fallback.vectors) @ unit(np.stack([embeddings[key] for key in trained])).T
    nearest = np.argsort(-sims, axis=1)[:, :10]
    trained_region = np.array([region[key] for key in trained])
    same_region = trained_region[nearest] == np.array([region[key] for key in fallback.keys])[:, None]
    assert same_region.mean() >= 0.6  # chance: 1 in 8 regions
