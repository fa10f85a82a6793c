"""Evaluation helpers on planted data: perfect vectors score perfectly, random ones score chance."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.evaluate import link_prediction_auc, node_classification, sample_non_edges, split_edges
from embeddings.graph import Graph
from embeddings.vectors import Embeddings


def planted_classes(n_per_class: int = 20, n_classes: int = 3, noise: float = 0.05, seed: int = 0):
    """Keys ``0..n-1`` whose vector is their class's one-hot plus noise; train/test alternate."""
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(n_classes), n_per_class)
    vectors = np.eye(n_classes, 8)[classes] + noise * rng.standard_normal((classes.size, 8))
    keys = list(range(classes.size))
    return Embeddings(keys, vectors), dict(zip(keys, classes.tolist())), keys[0::2], keys[1::2]


def cliques(n_cliques: int = 4, size: int = 10) -> np.ndarray:
    """Edges ``(m, 2)`` of disjoint complete graphs over nodes ``0..n_cliques*size-1``."""
    a, b = np.triu_indices(size, k=1)
    return np.concatenate([np.stack([a, b], axis=1) + c * size for c in range(n_cliques)])


def edge_set(pairs: np.ndarray) -> set[tuple]:
    return {tuple(sorted(pair)) for pair in pairs.tolist()}


# --- node classification ----------------------------------------------------------------
def test_separable_classes_are_classified_perfectly() -> None:
    emb, labels, train, test = planted_classes()
    result = node_classification(emb, labels, train, test)
    assert result == {"accuracy": 1.0, "macro_f1": 1.0, "n_train": 30.0, "n_test": 30.0}


def test_random_vectors_classify_at_chance() -> None:
    rng = np.random.default_rng(1)
    keys = [f"n{i}" for i in range(900)]
    labels = dict(zip(keys, rng.integers(0, 3, size=900).tolist()))
    emb = Embeddings(keys, rng.standard_normal((900, 16)))
    accuracy = node_classification(emb, labels, keys[:450], keys[450:])["accuracy"]
    assert abs(accuracy - 1 / 3) < 0.07


def test_multilabel_uses_each_nodes_true_label_count() -> None:
    rng = np.random.default_rng(2)
    n, n_classes = 200, 5
    first = rng.integers(0, n_classes, size=n)
    second = np.where(rng.random(n) < 0.5, (first + 1 + rng.integers(0, n_classes - 1, size=n)) % n_classes, first)
    indicator = np.zeros((n, n_classes))
    indicator[np.arange(n), first] = indicator[np.arange(n), second] = 1
    labels = {i: {int(first[i]), int(second[i])} for i in range(n)}
    emb = Embeddings(list(range(n)), indicator + 0.02 * rng.standard_normal((n, n_classes)))
    result = node_classification(emb, labels, list(range(0, n, 2)), list(range(1, n, 2)), multilabel=True)
    assert result["micro_f1"] == 1.0 and result["macro_f1"] == 1.0
    shuffled = Embeddings(list(range(n)), emb.vectors[rng.permutation(n)])
    chance = node_classification(shuffled, labels, list(range(0, n, 2)), list(range(1, n, 2)), multilabel=True)
    assert chance["micro_f1"] < 0.5


@pytest.mark.parametrize(
    ("train", "test", "error", "message"),
    [
        ([0, 999], [1], NotFoundError, "train_keys: key 999 (row 1) is not in the embeddings (60 keys)"),
        ([0, 2], [], DataError, "test_keys is empty; at least one key is needed"),
        ([0, 2, 4], [5, 2], DataError, "train_keys and test_keys share key 2; they must be disjoint"),
        ([0, 2], [1], DataError, "labels: train_keys carry a single class (0); at least 2 are needed"),
    ],
)
def test_node_classification_rejects_bad_keys(train, test, error, message) -> None:
    emb, labels, _, _ = planted_classes()
    with pytest.raises(error, match=re.escape(message)):
        node_classification(emb, labels, train, test)


def test_node_classification_rejects_a_bad_regularisation() -> None:
    emb, labels, train, test = planted_classes()
    with pytest.raises(ConfigError, match=re.escape("C must be a finite number > 0, got 0")):
        node_classification(emb, labels, train, test, C=0)


def test_node_classification_names_an_unlabelled_key() -> None:
    emb, labels, train, test = planted_classes()
    del labels[7]
    with pytest.raises(DataError, match=re.escape("labels: test_keys key 7 (row 3) has no label")):
        node_classification(emb, labels, train, test)
    with pytest.raises(
        DataError, match=re.escape("labels: train_keys row 0 has label 0; multilabel needs a collection")
    ):
        node_classification(emb, {k: 0 for k in range(60)}, train, test, multilabel=True)


# --- split_edges / sample_non_edges -----------------------------------------------------
def test_split_keeps_every_component_connected_and_partitions_the_edges() -> None:
    rng = np.random.default_rng(3)
    edges = np.concatenate([cliques(2, 12), rng.integers(0, 12, size=(30, 2)), [[3, 3], [5, 1]]])  # loops, repeats
    train, held, negatives = split_edges(edges, test_fraction=0.5, seed=4)
    full = edge_set(cliques(2, 12))
    assert len(full) == 132 and len(held) == 66 and len(train) == 66 and len(negatives) == 66
    assert edge_set(train) | edge_set(held) == full and not edge_set(train) & edge_set(held)
    graph = coo_matrix((np.ones(len(train)), tuple(train.T)), shape=(24, 24))
    assert connected_components(graph, directed=False)[0] == 2
    assert np.unique(train).size == 24
    assert len(edge_set(negatives)) == 66 and not edge_set(negatives) & full
    assert np.all(negatives[:, 0] != negatives[:, 1])
    again = split_edges(edges, test_fraction=0.5, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(again, (train, held, negatives)))
    assert not np.array_equal(split_edges(edges, test_fraction=0.5, seed=5)[1], held)


def test_split_reads_a_graph_and_returns_its_node_ids() -> None:
    ring = np.stack([np.arange(8), (np.arange(8) + 1) % 8], axis=1)
    edges = np.array([f"user{i}" for i in range(8)])[np.concatenate([ring, [[0, 4], [1, 5], [2, 6], [3, 7]]])]
    graph, _ = Graph.from_edges(pl.DataFrame({"src": edges[:, 0], "dst": edges[:, 1]}))
    train, held, negatives = split_edges(graph, test_fraction=0.4, seed=0)
    assert len(held) == 5 and len(train) == 7 and set(train.ravel()) == set(edges.ravel())
    assert edge_set(train) | edge_set(held) == edge_set(edges)
    assert len(negatives) == 5 and not edge_set(negatives) & edge_set(edges)
    assert all(
        np.array_equal(x, y) for x, y in zip(split_edges(edges, test_fraction=0.4, seed=0), (train, held, negatives))
    )


def test_split_rejects_bad_fractions_and_impossible_hold_outs() -> None:
    path = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]])
    with pytest.raises(ConfigError, match=re.escape("test_fraction must be a finite number in (0, 1), got 1.5")):
        split_edges(path, test_fraction=1.5)
    with pytest.raises(
        DataError,
        match=re.escape("edges: can hold out at most 1 of 5 edges with every component kept connected, asked for 2"),
    ):
        split_edges(path, test_fraction=0.4)
    with pytest.raises(DataError, match=re.escape("edges must be an array of node pairs (m, 2), got shape (3,)")):
        split_edges(np.array([1, 2, 3]))


def test_sample_non_edges_avoids_edges_and_excluded_pairs() -> None:
    edges = cliques(3, 5)
    first = sample_non_edges(edges, 30, seed=0)
    second = sample_non_edges(edges, 45, seed=1, exclude=first)
    assert len(edge_set(first)) == 30 and len(edge_set(second)) == 45
    assert not edge_set(first) & edge_set(second) and not (edge_set(first) | edge_set(second)) & edge_set(edges)
    with pytest.raises(DataError, match=re.escape("edges: asked for 76 non-edges but the graph has only 75")):
        sample_non_edges(edges, 76)
    with pytest.raises(NotFoundError, match=re.escape("exclude: node 99 is not in the graph")):
        sample_non_edges(edges, 5, exclude=[[0, 99]])


# --- link prediction --------------------------------------------------------------------
def test_cluster_vectors_predict_held_out_edges_perfectly() -> None:
    edges = cliques(4, 10)
    train, held, negatives = split_edges(edges, test_fraction=0.5, seed=0)
    train_negatives = sample_non_edges(edges, len(train), seed=1, exclude=negatives)
    emb = Embeddings(list(range(40)), np.eye(4)[np.arange(40) // 10])
    for operator in ("hadamard", "l1"):
        assert link_prediction_auc(emb, held, negatives, train, train_negatives, operator) == 1.0


def test_random_vectors_predict_links_at_chance() -> None:
    rng = np.random.default_rng(5)
    edges = rng.integers(0, 300, size=(1500, 2))
    train, held, negatives = split_edges(edges, test_fraction=0.4, seed=0)
    train_negatives = sample_non_edges(edges, len(train), seed=1, exclude=negatives)
    emb = Embeddings(list(range(300)), rng.standard_normal((300, 32)))
    assert abs(link_prediction_auc(emb, held, negatives, train, train_negatives) - 0.5) < 0.07


def test_link_prediction_rejects_bad_pairs() -> None:
    emb = Embeddings(["a", "b", "c"], np.eye(3))
    pairs = np.array([["a", "b"]])
    with pytest.raises(NotFoundError, match=re.escape("negatives: key 'z' (row 1) is not in the embeddings (3 keys)")):
        link_prediction_auc(emb, pairs, [["a", "z"]], pairs, [["a", "c"]])
    with pytest.raises(DataError, match=re.escape("train_negatives is empty; at least one node pair is needed")):
        link_prediction_auc(emb, pairs, [["a", "c"]], pairs, np.empty((0, 2)))
    with pytest.raises(ConfigError, match=re.escape("operator must be one of hadamard, average, l1, l2, got 'dot'")):
        link_prediction_auc(emb, pairs, [["a", "c"]], pairs, [["b", "c"]], operator="dot")
