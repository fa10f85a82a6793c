"""node2vec's biased random walks over a :class:`Graph`, as :class:`Sequences` for SGNS.

A walk of ``walk_length`` nodes starts at a node and moves along out-arcs. From ``v``,
having arrived from ``t``, it steps to ``x`` with probability ∝ ``α(t, x) · w_vx``:
``α = 1/p`` when ``x == t`` (return), ``1`` when ``x`` is an out-neighbour of ``t`` (the
paper's ``d_tx = 1``), ``1/q`` otherwise (outward). ``p = q = 1`` is DeepWalk's weighted
first-order walk. The first step, which has no ``t``, is first-order.

Every node with an out-arc starts ``walks_per_node`` walks; round ``r`` visits those nodes in
its own shuffled order and walk ``r · n_start + i`` starts at the ``i``-th node of round
``r``. A walk stops early at a node without out-arcs (directed graphs). Token = node index +
1, so token 0 stays SGNS's padding. The walks are a pure function of the graph and ``seed``:
each walk draws from its own stream, whatever the number of threads.

The work runs in compiled kernels (:mod:`embeddings.graph.walk_kernels`) on chunks of walks, in
threads that release the GIL. Memory: the graph, 8 bytes an arc of alias tables when
weighted, at most 4 bytes an arc of hub bitmaps when ``q != 1``, and the walks themselves
(4 bytes a node).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from embeddings.graph.config import check_walk_params
from embeddings.graph.graph import Graph
from embeddings.sequences import Sequences

# Steps per kernel call: the unit of work handed to a thread and of progress.
_CHUNK_STEPS = 1 << 16
# Walks a kernel advances in turn (see walk_kernels.walk_chunk); 8 hides most cache misses.
_LANES = 8


def alias_tables(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Per-row alias tables of a weighted graph (float32 and int32, ``(nnz,)``); empty when unweighted."""
    if graph.weights is None:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int32)
    from embeddings.graph.walk_kernels import build_alias

    prob = np.empty(graph.indices.size, dtype=np.float32)
    alias = np.empty(graph.indices.size, dtype=np.int32)
    build_alias(graph.indptr, graph.weights, prob, alias)
    return prob, alias


def hub_bitmaps(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Out-neighbour bitmaps of the highest-degree nodes, for second-order walks.

    A walk tests "is x an out-neighbour of t" at most steps; a bitmap answers with one load
    where a binary search of a hub's row takes a dozen. Hubs are chosen by degree, as many as
    fit in the size of ``graph.indices`` (so memory stays O(E)). Returns hub_slot int32
    ``(n,)`` and hub_bits uint64 ``(hubs, ceil(n / 64))`` (see ``build_hub_bitmaps``).
    """
    from embeddings.graph.walk_kernels import build_hub_bitmaps

    n = graph.n_nodes
    degree = np.diff(graph.indptr)
    max_hubs = min(n, graph.indices.nbytes // (8 * ((n + 63) // 64)))
    min_degree = np.iinfo(np.int64).max
    if max_hubs > 0:
        kth = int(np.partition(degree, n - max_hubs)[n - max_hubs])
        # Ties at the k-th degree may not all fit: then only strictly larger degrees get one.
        min_degree = max(1, kth if np.count_nonzero(degree >= kth) <= max_hubs else kth + 1)
    return build_hub_bitmaps(graph.indptr, graph.indices, min_degree)


def walk_starts(graph: Graph, walks_per_node: int, rng: np.random.Generator) -> np.ndarray:
    """Start node of every walk, int32 ``(walks_per_node · n_start,)``: one shuffled round after another."""
    starters = np.flatnonzero(np.diff(graph.indptr) > 0).astype(np.int32)
    if starters.size == 0:
        return starters
    return np.concatenate([rng.permutation(starters) for _ in range(walks_per_node)])


def random_walks(
    graph: Graph,
    *,
    walk_length: int = 80,
    walks_per_node: int = 10,
    p: float = 1.0,
    q: float = 1.0,
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
) -> Sequences:
    """node2vec walks over ``graph``: one sequence of node index + 1 tokens per walk.

    ``workers=0`` uses every core. Shows a tqdm bar over walks unless ``progress=False``.
    """
    check_walk_params(walk_length, walks_per_node, p, q, seed, workers)
    from embeddings.graph.walk_kernels import walk_chunk

    rng = np.random.default_rng(seed)
    starts = walk_starts(graph, walks_per_node, rng)
    stream_seed = rng.integers(0, 2**63, dtype=np.uint64)
    n_walks = starts.size
    out = np.empty((n_walks, walk_length), dtype=np.int32)
    lengths = np.empty(n_walks, dtype=np.int64)
    prob, alias = alias_tables(graph)
    if q != 1.0:
        hub_slot, hub_bits = hub_bitmaps(graph)
    else:  # α never depends on whether x is a neighbour of t
        hub_slot, hub_bits = np.full(graph.n_nodes, -1, dtype=np.int32), np.zeros((0, 1), dtype=np.uint64)
    weights = graph.weights if graph.weights is not None else np.zeros(0, dtype=np.float32)
    row_weight = graph.row_weight
    per_chunk = max(1, _CHUNK_STEPS // walk_length)
    bounds = list(range(0, n_walks, per_chunk)) + [n_walks]

    def run(chunk: int) -> int:
        first, last = bounds[chunk], bounds[chunk + 1]
        walk_chunk(
            graph.indptr, graph.indices, weights, prob, alias, row_weight, starts[first:last],
            first, stream_seed, walk_length, 1.0 / p, 1.0 / q, graph.directed, hub_slot, hub_bits,
            out[first:last], lengths[first:last], _LANES,
        )  # fmt: skip
        return last - first

    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=n_walks, unit="walk", unit_scale=True, disable=not progress, desc="node2vec walks")
    with bar, ThreadPoolExecutor(max_workers=workers) as pool:
        chunks = range(len(bounds) - 1)
        for done in map(run, chunks) if workers == 1 else pool.map(run, chunks):
            bar.update(done)
    if n_walks and lengths.min() == walk_length:
        return Sequences.from_lengths(lengths, out.reshape(-1))
    keep = np.arange(walk_length)[None, :] < lengths[:, None]
    return Sequences.from_lengths(lengths, out[keep])
