"""node2vec walks: transition frequencies follow the p/q formula, seeds repeat, shapes hold."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import chi2

from embeddings.errors import ConfigError
from embeddings.graph import Graph
from embeddings.graph import walks as walks_module
from embeddings.graph.walks import random_walks
from embeddings.sequences import Sequences

# Triangles (0-1-2, 1-2-3, 4-5-6) next to open paths, uneven weights, degrees 2 to 4.
WEIGHTED_EDGES = pl.DataFrame(
    [(0, 1, 1.0), (0, 2, 2.0), (1, 2, 1.0), (1, 3, 3.0), (2, 3, 1.0), (3, 4, 2.0),
     (4, 5, 1.0), (4, 6, 1.0), (5, 6, 2.0), (6, 7, 1.0), (7, 0, 1.5)],
    schema=["src", "dst", "w"], orient="row",
)  # fmt: skip
# Directed: some arcs have a reverse, some not; node 4 is a dead end.
DIRECTED_ARCS = pl.DataFrame(
    [(0, 1), (1, 0), (1, 2), (2, 0), (0, 2), (2, 3), (3, 1), (1, 3), (3, 0), (2, 4)],
    schema=["src", "dst"], orient="row",
)  # fmt: skip


def transition_triples(walks: Sequences) -> np.ndarray:
    """Every (t, v, x) of consecutive tokens within one walk, as node indices, shape (m, 3)."""
    owner = np.repeat(np.arange(len(walks)), walks.lengths)
    j = np.flatnonzero(owner[:-2] == owner[2:])
    return np.stack([walks.tokens[j], walks.tokens[j + 1], walks.tokens[j + 2]], axis=1) - 1


def node2vec_probabilities(graph: Graph, t: int, v: int, p: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours x of v and P(x | t, v) ∝ α(t, x) · w_vx straight from the definition."""
    lo, hi = graph.indptr[v], graph.indptr[v + 1]
    xs = graph.indices[lo:hi]
    w = np.ones(xs.size) if graph.weights is None else graph.weights[lo:hi].astype(np.float64)
    out_t = set(graph.indices[graph.indptr[t] : graph.indptr[t + 1]].tolist())
    alpha = np.array([1 / p if x == t else (1.0 if x in out_t else 1 / q) for x in xs.tolist()])
    probs = alpha * w
    return xs, probs / probs.sum()


def chi_square_p_value(graph: Graph, triples: np.ndarray, p: float, q: float) -> float:
    """One chi-square test over all (t, v): observed x counts against the p/q formula."""
    stat, dof = 0.0, 0
    pairs, inverse = np.unique(triples[:, :2], axis=0, return_inverse=True)
    for k, (t, v) in enumerate(pairs.tolist()):
        xs, probs = node2vec_probabilities(graph, t, v, p, q)
        observed = triples[inverse.ravel() == k, 2]
        counts = np.array([np.count_nonzero(observed == x) for x in xs.tolist()])
        assert counts.sum() == observed.size, "a walk stepped to a non-neighbour"
        expected = probs * observed.size
        if observed.size < 50 or xs.size < 2:
            continue
        stat += float(((counts - expected) ** 2 / expected).sum())
        dof += xs.size - 1
    assert dof > 0
    return float(chi2.sf(stat, dof))


def no_hubs(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    return np.full(graph.n_nodes, -1, dtype=np.int32), np.zeros((0, 1), dtype=np.uint64)


@pytest.mark.parametrize("hubs", [True, False], ids=["bitmaps", "binary-search"])
@pytest.mark.parametrize(
    ("edges", "weight", "directed"),
    [(WEIGHTED_EDGES, "w", False), (WEIGHTED_EDGES, None, False), (DIRECTED_ARCS, None, True)],
    ids=["weighted", "unweighted", "directed"],
)
@pytest.mark.parametrize(("p", "q"), [(0.25, 4.0), (4.0, 0.25), (2.0, 1.0)])
def test_second_order_transitions_follow_p_and_q(monkeypatch, edges, weight, directed, p, q, hubs):
    if not hubs:
        monkeypatch.setattr(walks_module, "hub_bitmaps", no_hubs)
    graph, _ = Graph.from_edges(edges, weight=weight, directed=directed)
    walks = random_walks(graph, walk_length=60, walks_per_node=150, p=p, q=q, seed=3, progress=False)
    triples = transition_triples(walks)
    assert chi_square_p_value(graph, triples, p, q) > 1e-3
    if p != q:  # the test has the power to see p and q swapped
        assert chi_square_p_value(graph, triples, q, p) < 1e-8


def test_first_order_steps_follow_the_weights():
    graph, _ = Graph.from_edges(WEIGHTED_EDGES, weight="w")
    walks = random_walks(graph, walk_length=30, walks_per_node=200, seed=1, progress=False)
    owner = np.repeat(np.arange(len(walks)), walks.lengths)
    j = np.flatnonzero(owner[:-1] == owner[1:])
    v, x = walks.tokens[j] - 1, walks.tokens[j + 1] - 1
    stat, dof = 0.0, 0
    for node in range(graph.n_nodes):
        lo, hi = graph.indptr[node], graph.indptr[node + 1]
        probs = graph.weights[lo:hi] / graph.weights[lo:hi].sum()
        counts = np.array([np.count_nonzero(x[v == node] == nb) for nb in graph.indices[lo:hi]])
        expected = probs * counts.sum()
        stat += float(((counts - expected) ** 2 / expected).sum())
        dof += hi - lo - 1
    assert chi2.sf(stat, dof) > 1e-3
    # ...and not uniform: node 1's heaviest edge (to 3, weight 3 of 5) wins most of its steps
    assert np.mean(x[v == 1] == 3) == pytest.approx(0.6, abs=0.02)


def test_every_connected_node_starts_walks_per_node_walks_and_tokens_are_shifted():
    edges = pl.DataFrame({"src": ["a", "b"], "dst": ["b", "c"]})
    graph, _ = Graph.from_edges(edges, nodes=["a", "b", "c", "lonely"])
    walks = random_walks(graph, walk_length=7, walks_per_node=4, seed=0, progress=False)
    assert len(walks) == 12 and set(walks.lengths.tolist()) == {7}
    starts = walks.tokens[walks.offsets[:-1]]
    assert np.bincount(starts, minlength=5).tolist() == [0, 4, 4, 4, 0]  # token = index + 1
    # each round of 3 walks visits the 3 start nodes once, in its own order
    assert all(sorted(starts[r * 3 : r * 3 + 3].tolist()) == [1, 2, 3] for r in range(4))
    assert walks.tokens.min() >= 1 and 4 not in walks.tokens  # "lonely" (index 3) never appears


def test_walks_stop_at_a_dead_end():
    graph, _ = Graph.from_edges(pl.DataFrame({"src": [0, 1], "dst": [1, 2]}), directed=True)
    walks = random_walks(graph, walk_length=10, walks_per_node=2, p=0.5, q=2.0, progress=False)
    assert sorted(map(tuple, walks.to_lists())) == [(1, 2, 3), (1, 2, 3), (2, 3), (2, 3)]


def test_walks_repeat_for_a_seed_whatever_the_thread_count():
    graph, _ = Graph.from_edges(WEIGHTED_EDGES, weight="w")
    first = random_walks(graph, walk_length=20, walks_per_node=500, p=0.5, q=2.0, seed=7, workers=1, progress=False)
    again = random_walks(graph, walk_length=20, walks_per_node=500, p=0.5, q=2.0, seed=7, workers=2, progress=False)
    other = random_walks(graph, walk_length=20, walks_per_node=500, p=0.5, q=2.0, seed=8, workers=2, progress=False)
    np.testing.assert_array_equal(first.tokens, again.tokens)
    np.testing.assert_array_equal(first.offsets, again.offsets)
    assert not np.array_equal(first.tokens, other.tokens)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 0.0}, "p must be a finite number > 0, got 0.0"),
        ({"q": float("inf")}, "q must be a finite number > 0, got inf"),
        ({"walk_length": 0}, "walk_length must be an integer >= 1, got 0"),
        ({"walks_per_node": 2.5}, "walks_per_node must be an integer >= 1, got 2.5"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_bad_walk_parameters(kwargs, message):
    graph, _ = Graph.from_edges(WEIGHTED_EDGES, weight="w")
    with pytest.raises(ConfigError, match=f"^{message}"):
        random_walks(graph, progress=False, **kwargs)
