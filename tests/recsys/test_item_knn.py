"""item2vec item-kNN on planted clusters: a history's own cluster ranks on top, the latest items weigh most."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.errors import ConfigError, DataError
from embeddings.sequences import Sequences
from embeddings.vectors import Embeddings
from embeddings.vocab import Vocabulary
from recsys.data import EvalCases
from recsys.item_knn import ItemKNN
from recsys.metrics import evaluate

N_ITEMS, N_CLUSTERS, DIM = 200, 5, 16


def planted_vectors(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vectors ``[N_ITEMS + 1, DIM]`` (row 0 = PAD) near one of 5 cluster directions; token t is in cluster (t - 1) % 5."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(N_CLUSTERS, DIM))
    cluster = np.arange(N_ITEMS) % N_CLUSTERS
    vectors = np.zeros((N_ITEMS + 1, DIM), dtype=np.float32)
    vectors[1:] = directions[cluster] + 0.4 * rng.normal(size=(N_ITEMS, DIM))
    vectors[1:] *= rng.uniform(0.5, 3.0, size=(N_ITEMS, 1))  # lengths must not matter: scores are cosines
    return vectors, np.concatenate([[-1], cluster])


def cluster_histories(clusters: np.ndarray, length: int, seed: int) -> Sequences:
    """One history per entry of ``clusters``: ``length`` random items of that cluster."""
    rng = np.random.default_rng(seed)
    tokens = 1 + clusters[:, None] + N_CLUSTERS * rng.integers(0, N_ITEMS // N_CLUSTERS, (len(clusters), length))
    return Sequences.from_lengths(np.full(len(clusters), length), tokens.ravel())


def test_same_cluster_items_rank_on_top():
    vectors, cluster = planted_vectors()
    clusters = np.random.default_rng(1).integers(0, N_CLUSTERS, 300)
    histories = cluster_histories(clusters, 6, seed=2)
    scores = ItemKNN(vectors, window=5, decay=0.8)(histories, np.arange(300))
    assert scores.shape == (300, N_ITEMS + 1) and scores.dtype == np.float32
    top = np.argsort(-scores[:, 1:], axis=1)[:, :20] + 1
    assert (cluster[top] == clusters[:, None]).mean() > 0.95
    # The next item of a user who stays in the cluster is found among the top 10 of 200 items far above chance.
    targets = 1 + clusters + N_CLUSTERS * np.random.default_rng(3).integers(0, N_ITEMS // N_CLUSTERS, 300)
    cases = EvalCases(histories, targets, np.arange(300))
    result = evaluate(ItemKNN(vectors), cases, protocol="full", ks=(10,))
    assert result["hr@10"] > 0.15  # ~0.25 (10 of the 40 cluster items), against 0.05 for a random ranking


def test_recent_items_outweigh_older_ones_and_window_cuts_the_past():
    vectors, cluster = planted_vectors()
    old = cluster_histories(np.zeros(50, dtype=np.int64), 4, seed=4)
    new = cluster_histories(np.ones(50, dtype=np.int64), 2, seed=5)
    lengths = np.full(50, 6)
    tokens = np.concatenate([old.tokens.reshape(50, 4), new.tokens.reshape(50, 2)], axis=1).ravel()
    histories = Sequences.from_lengths(lengths, tokens)  # 4 items of cluster 0, then 2 of cluster 1

    def top_cluster(model: ItemKNN) -> np.ndarray:
        return cluster[np.argmax(model(histories, np.arange(50))[:, 1:], axis=1) + 1]

    assert (top_cluster(ItemKNN(vectors, window=6, decay=1.0)) == 0).mean() > 0.9  # plain mean: the majority wins
    assert (top_cluster(ItemKNN(vectors, window=6, decay=0.3)) == 1).mean() > 0.9  # steep decay: the recent items
    assert (top_cluster(ItemKNN(vectors, window=2, decay=1.0)) == 1).all()  # the old items are outside the window


def test_window_one_is_the_last_items_neighbours_and_empty_history_is_flat():
    vectors, _ = planted_vectors()
    histories = Sequences.from_lists([[3, 8, 17], [], [17]])
    scores = ItemKNN(vectors, window=1)(histories, np.array([0, 1, 2]))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(scores[0], unit @ unit[17], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scores[0], scores[2])
    assert np.all(scores[1] == 0)


def test_from_embeddings_aligns_keys_to_tokens():
    vectors, _ = planted_vectors()
    vocab = Vocabulary([f"m{t}" for t in range(1, N_ITEMS + 1)])
    order = np.random.default_rng(6).permutation(N_ITEMS)[:-3]  # shuffled, and three items have no vector
    embeddings = Embeddings([f"m{t + 1}" for t in order], vectors[order + 1])
    aligned = ItemKNN.from_embeddings(embeddings, vocab, window=3)
    direct = ItemKNN(vectors, window=3)
    missing = np.setdiff1d(np.arange(1, N_ITEMS + 1), order + 1)
    np.testing.assert_allclose(aligned.unit[order + 1], direct.unit[order + 1], rtol=1e-6)
    assert np.all(aligned.unit[missing] == 0) and np.all(aligned.unit[0] == 0)


def test_bad_settings_and_tokens_raise_seqemb_errors():
    vectors, _ = planted_vectors()
    with pytest.raises(ConfigError):
        ItemKNN(vectors, window=0)
    with pytest.raises(ConfigError):
        ItemKNN(vectors, decay=1.5)
    with pytest.raises(DataError):
        ItemKNN(vectors)(Sequences.from_lists([[1, N_ITEMS + 1]]), np.array([0]))
