"""Recall@10 and queries/s of each VectorIndex kind on trained item vectors.

Data: item2vec vectors, not Gaussian noise. Synthetic sessions are drawn from a catalogue
of categories with power-law sizes (grouped ten by ten into departments) and power-law
item popularity inside each category; a session stays in one category and hops to a
sibling category of the same department 15% of the time. gensim's word2vec (skip-gram
with negative sampling, i.e. item2vec) learns 64-d vectors from them, so the index sees what
a trained model gives: anisotropic clusters at several scales, noisier vectors for rare items.
1,000 of the trained items are held out as queries; the other 100,000 are indexed.

Truth is numpy brute-force cosine top-10. For each kind (exact, ivf, hnsw with the library
defaults): recall@10, queries/s for one batch of all queries (best of 3) and for the
queries sent one at a time. A sweep of nprobe / ef_search shows the trade-off behind the
defaults. The bar: approximate kinds reach recall@10 >= 0.95 at >= 5x exact's batch qps.

    python -m benchmarks.index_recall --out results/index_recall.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from gensim.models import Word2Vec

from benchmarks._common import Run
from embeddings.index import VectorIndex
from embeddings.index_config import KIND_PARAMS
from embeddings.vectors import unit_rows

K = 10
KINDS = ("exact", "ivf", "hnsw")
SWEEP = {"ivf": ("nprobe", (1, 2, 4, 8, 16, 32, 64)), "hnsw": ("ef_search", (8, 16, 32, 64, 128, 256))}


def make_sessions(rng: np.random.Generator, n_items: int, n_sessions: int, length: int = 20) -> np.ndarray:
    """Item ids ``(n_sessions, length)`` with planted categories and departments."""
    n_categories = max(10, n_items // 1000 * 10)  # about 100 items each, in departments of ten
    weights = np.arange(1, n_categories + 1) ** -0.9
    sizes = np.maximum(20, np.round(weights / weights.sum() * n_items)).astype(np.int64)
    sizes[0] += n_items - sizes.sum()
    first_item = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    home = rng.choice(n_categories, size=n_sessions, p=sizes / sizes.sum())
    sibling = (home[:, None] // 10) * 10 + rng.integers(0, 10, size=(n_sessions, length))
    category = np.where(rng.random((n_sessions, length)) < 0.15, sibling, home[:, None])
    # u ** 1.5 puts more mass on the first items of a category: power-law popularity.
    rank = np.floor(rng.random((n_sessions, length)) ** 1.5 * sizes[category]).astype(np.int64)
    return first_item[category] + rank


def train_item_vectors(sessions: np.ndarray, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Skip-gram with negative sampling over the sessions: item ids ``(n,)`` and vectors ``(n, dim)``."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "sessions.txt"
        np.savetxt(corpus, sessions, fmt="%d")
        model = Word2Vec(
            corpus_file=str(corpus),
            vector_size=dim,
            window=5,
            negative=5,
            sg=1,
            min_count=1,
            sample=1e-4,
            alpha=0.05,
            epochs=3,
            workers=os.cpu_count() or 1,
            seed=seed,
        )
    return np.asarray(model.wv.index_to_key, dtype=np.int64), model.wv.vectors


def brute_force_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows ``(m, k)`` of the k highest cosine similarities, by numpy in query blocks."""
    base_unit, query_unit = unit_rows(base), unit_rows(queries)
    blocks = []
    for start in range(0, len(queries), 100):
        scores = query_unit[start : start + 100] @ base_unit.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        blocks.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(blocks)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true top-k present in its results."""
    return float((found[:, :, None] == truth[:, None, :]).any(axis=2).mean())


def batch_qps(index: VectorIndex, queries: np.ndarray) -> tuple[float, np.ndarray]:
    """Best-of-3 queries/s for one search call with every query, and its result keys."""
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        keys, _ = index.search(queries, K)
        best = min(best, time.perf_counter() - start)
    return len(queries) / best, keys


def single_qps(index: VectorIndex, queries: np.ndarray) -> float:
    start = time.perf_counter()
    for row in range(len(queries)):
        index.search(queries[row : row + 1], K)
    return len(queries) / (time.perf_counter() - start)


def measure(kind: str, keys: np.ndarray, base: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    """Build one kind with the library defaults, time it, then sweep its search parameter."""
    start = time.perf_counter()
    index = VectorIndex.build(keys, base, kind=kind, metric="cosine")
    build_s = time.perf_counter() - start
    qps_batch, found = batch_qps(index, queries)
    result = {
        f"{kind}_recall10": round(recall_at_k(found, truth), 4),
        f"{kind}_qps_batch": round(qps_batch),
        f"{kind}_qps_single": round(single_qps(index, queries)),
        f"{kind}_build_s": round(build_s, 2),
        f"{kind}_params": {name: getattr(index.config, name) for name in KIND_PARAMS[kind]},
        f"{kind}_device": index.device,
    }
    if kind in SWEEP:
        name, values = SWEEP[kind]
        sweep = []
        for value in values:
            index.set_search_params(**{name: value})
            qps, found = batch_qps(index, queries)
            sweep.append({name: value, "recall10": round(recall_at_k(found, truth), 4), "qps_batch": round(qps)})
        result[f"{kind}_sweep"] = sweep
    return result


def report(results: dict) -> None:
    """Mark which approximate kinds meet the bar and print the table and sweeps."""
    exact_qps = results["exact_qps_batch"]
    print(f"\n{'kind':6} {'recall@10':>9} {'qps batch':>10} {'x exact':>8} {'qps single':>10} {'build s':>8}  params")
    for kind in KINDS:
        qps = results[f"{kind}_qps_batch"]
        print(
            f"{kind:6} {results[f'{kind}_recall10']:9.4f} {qps:10d} {qps / exact_qps:8.1f} "
            f"{results[f'{kind}_qps_single']:10d} {results[f'{kind}_build_s']:8.1f}  {results[f'{kind}_params']}"
        )
    for kind, (name, _) in SWEEP.items():
        results[f"{kind}_meets_bar"] = bool(
            results[f"{kind}_recall10"] >= 0.95 and results[f"{kind}_qps_batch"] >= 5 * exact_qps
        )
        points = [
            f"{point[name]}: {point['recall10']:.3f} @ {point['qps_batch'] / exact_qps:.1f}x"
            for point in results[f"{kind}_sweep"]
        ]
        print(f"\n{kind} sweep ({name}: recall@10 @ batch speed-up over exact): " + "  ".join(points))
    print(
        "\nbar (recall@10 >= 0.95 at >= 5x exact batch qps): "
        + ", ".join(f"{kind} {'met' if results[f'{kind}_meets_bar'] else 'MISSED'}" for kind in SWEEP)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/index_recall.json"))
    parser.add_argument("--n", type=int, default=100_000, help="indexed vectors")
    parser.add_argument("--queries", type=int, default=1_000, help="held-out query vectors")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--sessions", type=int, default=200_000, help="training sessions of 20 items")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run = Run()

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    sessions = make_sessions(rng, args.n + args.queries, args.sessions)
    items, vectors = train_item_vectors(sessions, args.dim, args.seed)
    train_s = time.perf_counter() - start
    if len(items) < args.n + args.queries:
        raise SystemExit(f"only {len(items)} items were seen in training; raise --sessions")
    order = rng.permutation(len(items))
    query_rows, base_rows = order[: args.queries], order[args.queries : args.queries + args.n]
    queries, base, base_keys = vectors[query_rows], vectors[base_rows], items[base_rows]
    truth = base_keys[brute_force_top_k(base, queries, K)]
    print(f"trained {len(items)} item vectors in {train_s:.0f}s; indexing {args.n}, {args.queries} held-out queries")

    results: dict = {
        "n": args.n,
        "queries": args.queries,
        "dim": args.dim,
        "k": K,
        "metric": "cosine",
        "train_s": round(train_s, 1),
        "faiss": faiss.__version__,
        "cpu_threads": faiss.omp_get_max_threads(),
    }
    for kind in KINDS:
        results.update(measure(kind, base_keys, base, queries, truth))
    report(results)
    run.write(args.out, results)


if __name__ == "__main__":
    main()
