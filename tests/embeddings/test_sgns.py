from __future__ import annotations

import numpy as np
import pytest

from embeddings.errors import ConfigError, DataError
from embeddings.sequences import Sequences
from embeddings.sgns import keep_probabilities, noise_distribution, train_sgns
from embeddings.sgns_config import SGNSConfig

N_CLUSTERS, CLUSTER_SIZE = 10, 10


def planted_corpus(seed: int = 0, n_seqs: int = 600, length: int = 10) -> tuple[Sequences, np.ndarray]:
    """Sequences that each stay inside one of 10 clusters of 10 tokens (tokens 1..100), with padding 0s."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, N_CLUSTERS, n_seqs)
    tokens = 1 + cluster[:, None] * CLUSTER_SIZE + rng.integers(0, CLUSTER_SIZE, (n_seqs, length))
    tokens[rng.random(tokens.shape) < 0.1] = 0
    counts = np.bincount(tokens.ravel(), minlength=1 + N_CLUSTERS * CLUSTER_SIZE)
    counts[0] = 0
    return Sequences.from_lengths(np.full(n_seqs, length), tokens.ravel().astype(np.int32)), counts


def same_cluster_share(vectors: np.ndarray, k: int = 5) -> float:
    """Share of each token's top-k cosine neighbours that lie in its own cluster."""
    v = vectors[1:] / np.linalg.norm(vectors[1:], axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    cluster = np.arange(v.shape[0]) // CLUSTER_SIZE
    return float((cluster[top] == cluster[:, None]).mean())


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_planted_clusters_are_nearest_neighbours(mode: str, backend: str) -> None:
    seqs, counts = planted_corpus()
    config = SGNSConfig(mode=mode, backend=backend, device="cpu", dim=16, epochs=5, sample=0, batch_size=64, workers=2)
    result = train_sgns(seqs, counts, config, progress=False)
    assert result.input_vectors.shape == (101, 16) and result.input_vectors.dtype == np.float32
    assert result.output_vectors.shape == (101, 16)
    assert same_cluster_share(result.input_vectors) >= 0.9
    assert len(result.epoch_loss) == 5 and result.epoch_loss[-1] < result.epoch_loss[0]
    assert result.backend == backend and result.items_per_s > 0


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_token_zero_and_unseen_tokens_are_never_trained(mode: str, backend: str) -> None:
    seqs, counts = planted_corpus(n_seqs=100)
    counts = np.append(counts, 0)  # token 101 occurs nowhere: it may not be drawn as a negative either
    tokens = seqs.tokens.copy()
    tokens[::7] = 0
    config = SGNSConfig(mode=mode, backend=backend, device="cpu", dim=8, epochs=2, sample=0, batch_size=32)
    result = train_sgns(Sequences(seqs.offsets, tokens), counts, config, progress=False)
    for row in (0, 101):
        np.testing.assert_array_equal(result.output_vectors[row], 0.0)
    np.testing.assert_array_equal(result.input_vectors[0], 0.0)
    assert np.all(result.output_vectors[1:101].any(axis=1))


def test_same_seed_same_vectors_with_one_worker() -> None:
    seqs, counts = planted_corpus(n_seqs=200)
    runs = [
        train_sgns(seqs, counts, SGNSConfig(dim=8, epochs=2, seed=seed, workers=1, chunk_tokens=256), progress=False)
        for seed in (3, 3, 4)
    ]
    np.testing.assert_array_equal(runs[0].input_vectors, runs[1].input_vectors)
    np.testing.assert_array_equal(runs[0].output_vectors, runs[1].output_vectors)
    assert not np.array_equal(runs[0].input_vectors, runs[2].input_vectors)


def test_keep_probabilities_follow_the_word2vec_formula() -> None:
    counts = np.array([0, 1000, 100, 10, 0])
    total = counts.sum()
    keep = keep_probabilities(counts, sample=0.01)
    t = 0.01 * total
    expected = np.minimum((np.sqrt(counts[1:4] / t) + 1) * t / counts[1:4], 1.0)
    np.testing.assert_allclose(keep[1:4], expected)
    assert keep[1] < 0.5 and keep[3] == 1.0 and keep[0] == 0.0 and keep[4] == 0.0
    np.testing.assert_array_equal(keep_probabilities(counts, sample=0), [0, 1, 1, 1, 0])


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_subsampling_keeps_tokens_at_the_formula_rate(backend: str) -> None:
    rng = np.random.default_rng(0)
    tokens = np.where(rng.random(20_000) < 0.9, 1, rng.integers(2, 12, 20_000)).astype(np.int32)
    counts = np.bincount(tokens, minlength=12)
    keep = keep_probabilities(counts, 1e-2)
    assert keep[1] < 0.2 and keep[2] == 1.0
    config = SGNSConfig(backend=backend, device="cpu", dim=4, epochs=3, sample=1e-2, workers=1)
    result = train_sgns(Sequences.from_lengths(np.full(1000, 20), tokens), counts, config, progress=False)
    expected = (counts * keep).sum()  # about 5,500 of 20,000
    assert len(result.kept_tokens) == 3
    for kept in result.kept_tokens:
        assert abs(kept - expected) < 4 * np.sqrt(expected)


def test_noise_distribution_is_count_to_the_power() -> None:
    counts = np.array([7, 16, 1, 0, 81])
    probs = noise_distribution(counts, 0.75)
    weights = np.array([0, 8, 1, 0, 27], dtype=float)
    np.testing.assert_allclose(probs, weights / weights.sum())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "glove"}, "mode must be one of 'skipgram', 'cbow', got 'glove'"),
        ({"backend": "jax"}, "backend must be one of 'auto', 'numba', 'torch', got 'jax'"),
        ({"dim": 0}, "dim must be an integer >= 1, got 0"),
        ({"window": -1}, "window must be an integer >= 1, got -1"),
        ({"negative": 2.5}, "negative must be an integer >= 1, got 2.5"),
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"workers": -1}, "workers must be an integer >= 0 (0 = every core), got -1"),
        ({"seed": -5}, "seed must be an integer >= 0, got -5"),
        ({"shuffle": "yes"}, "shuffle must be true or false, got 'yes'"),
        ({"sample": -1e-3}, "sample must be a finite number >= 0 (0 disables subsampling), got -0.001"),
        ({"alpha": 0.0}, "alpha must be a finite number > 0, got 0.0"),
        ({"min_alpha": 0.5}, "min_alpha must be a finite number in [0, 0.025], got 0.5"),
        ({"ns_exponent": float("nan")}, "ns_exponent must be a finite number, got nan"),
    ],
)
def test_bad_config_values_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        SGNSConfig(**kwargs)
    assert str(info.value) == message


def test_bad_inputs_raise_data_error() -> None:
    seqs = Sequences.from_lists([[1, 2, 5]])
    with pytest.raises(DataError) as info:
        train_sgns(seqs, np.array([0, 1, 1]), SGNSConfig(), progress=False)
    assert str(info.value) == "sequences: token 5 at position 2 is outside the vocabulary [0, 3)"
    with pytest.raises(DataError) as info:
        train_sgns(seqs, np.array([0, 1, -1, 0, 0, 1]), SGNSConfig(), progress=False)
    assert str(info.value) == "counts must be finite and >= 0; token 2 has count -1"
    with pytest.raises(DataError) as info:
        train_sgns(seqs, np.array([3, 0, 0, 0, 0, 0]), SGNSConfig(), progress=False)
    assert str(info.value) == "counts: no token other than 0 has a positive count, nothing to train"
    with pytest.raises(ConfigError) as info:
        train_sgns(seqs, np.ones(6), SGNSConfig(backend="numba", device="cuda"), progress=False)
    assert "CUDA" in str(info.value) or "CPU only" in str(info.value)


def test_a_config_that_needs_more_memory_than_the_machine_has_is_one_line(monkeypatch) -> None:
    from embeddings import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * 1024**3)
    seqs, counts = planted_corpus(n_seqs=20)
    with pytest.raises(ConfigError) as info:
        train_sgns(seqs, counts, SGNSConfig(dim=10_000_000, epochs=1), progress=False)
    assert str(info.value) == (
        f"the SGNS matrices (2 x {counts.size:,} x dim 10000000 float32) need "
        f"{2 * counts.size * 10_000_000 * 4 / 1024**3:,.1f} GiB; this machine has 2.0 GiB available: "
        "lower the dimension or the vocabulary (min_count)"
    )
