"""VectorIndex at catalogue scale: 1M and 10M x 64 item2vec-like vectors, exact against the compressed kinds.

Data. Real item2vec vectors first: the sessions of ``benchmarks/index_recall.py`` (categories of
power-law sizes in departments, power-law popularity) train 64-d skip-gram vectors for 100k
items (gensim). A Gaussian mixture is then fitted to them and sampled: k-means (FAISS, 1,024
cells) on the unit vectors, and per cell the covariance of its members' residuals (cells with
fewer than 128 members share the pooled one). A sampled vector is a cell's centre plus
``L z`` (``L`` the cell's Cholesky factor, ``z`` standard normal), the cell drawn with its share
of the trained items; every vector is then L2-normalised (cosine). So the index sees the
trained vectors' anisotropic clusters at their sizes and spreads, at any catalogue size. 1,000
more samples are the queries; the truth is the exact kind's top 10.

Kinds, per size: ``exact`` (flat inner product), ``ivfpq`` (24-byte OPQ+PQ codes and the 8-byte
id: the 32-byte budget; ``refine=1``: the codes' own top 10), ``ivfpq_refine`` (the same index
re-ranking ``10 k`` candidates with the full vectors, which the index file keeps; loaded
memory-mapped) and ``ivfpq_noopq_refine`` (no rotation, to show what OPQ pays). Per kind and
size: build seconds, bytes per vector of what every search reads (``_bytes_per_vector``) and of
the full vectors on disk for re-ranking (``_refine_bytes_per_vector``), recall@10 (the share of
the true top 10 found), batch queries/s (all queries in one call, best of 3) and the ratio to
exact's (``_speedup``). ``nlist`` is ``4 sqrt(n)`` at 1M and 4,096 at 10M (k-means over 12,649
cells would take most of an hour on two cores). ``nprobe`` and ``refine`` are chosen per index on
1,000 *validation* queries (other samples of the mixture, with their own exact truth): the
fastest setting of the grid ``nprobe`` 16..256 x ``refine`` 10..500 whose validation recall@10
is >= 0.90 (the most accurate one when none is); the measured queries are searched once, with it.
The JSON records the grid's validation results and the choice.

    python -m benchmarks.index_scale --out results/index_scale.json
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks._common import Run, size_label
from benchmarks.index_recall import batch_qps, make_sessions, recall_at_k, train_item_vectors
from embeddings.index import VectorIndex
from embeddings.vectors import unit_rows

K = 10
DIM = 64
CELLS = 1024
MIN_CELL = 128


class ItemMixture:
    """A Gaussian mixture fitted to trained item vectors (see the module doc)."""

    def __init__(self, vectors: np.ndarray, seed: int) -> None:
        unit = unit_rows(vectors.astype(np.float32))
        kmeans = faiss.Kmeans(DIM, CELLS, niter=20, seed=seed)
        kmeans.train(unit)
        _, cell = kmeans.index.search(unit, 1)
        cell = cell[:, 0]
        self.centres = kmeans.centroids
        self.weights = np.bincount(cell, minlength=CELLS) / len(cell)
        residuals = unit - self.centres[cell]
        pooled = np.cov(residuals, rowvar=False)
        self.factors = np.empty((CELLS, DIM, DIM), dtype=np.float32)
        for c in range(CELLS):
            members = residuals[cell == c]
            covariance = np.cov(members, rowvar=False) if len(members) >= MIN_CELL else pooled
            self.factors[c] = np.linalg.cholesky(covariance + 1e-6 * np.eye(DIM))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` unit vectors ``(n, 64)`` float32, in cell order (cells shuffled by the caller's use)."""
        counts = rng.multinomial(n, self.weights)
        out = np.empty((n, DIM), dtype=np.float32)
        at = 0
        for c in np.flatnonzero(counts):
            z = rng.standard_normal((counts[c], DIM), dtype=np.float32)
            out[at : at + counts[c]] = self.centres[c] + z @ self.factors[c].T
            at += counts[c]
        return unit_rows(out[rng.permutation(n)])


def batch_search(index: VectorIndex, queries: np.ndarray) -> tuple[float, np.ndarray]:
    """:func:`benchmarks.index_recall.batch_qps` with the result keys as int64 rows."""
    qps, keys = batch_qps(index, queries)
    return qps, keys.astype(np.int64)


def measure(
    index: VectorIndex, footprint: dict, build_s: float, queries: np.ndarray, truth: np.ndarray | None, n: int
) -> dict[str, Any]:
    qps, found = batch_search(index, queries)
    return {
        "build_s": round(build_s, 1),
        "bytes_per_vector": round(footprint["search"] / n, 2),
        "refine_bytes_per_vector": round(footprint["refine"] / n, 2),
        "recall10": None if truth is None else round(recall_at_k(found, truth), 4),
        "qps_batch": round(qps, 1),
        "params": {key: getattr(index.config, key) for key in ("nlist", "nprobe", "pq_m", "opq", "refine")},
        "found": found,
    }


NPROBES = (16, 32, 64, 128, 256)
REFINES = (10, 20, 50, 100, 200, 500)
TARGET_RECALL = 0.90


def choose_search(index: VectorIndex, queries: np.ndarray, truth: np.ndarray, refines: tuple[int, ...]) -> dict:
    """Sweep ``nprobe`` x ``refine`` on validation queries; set and return the chosen setting."""
    grid = []
    for nprobe in NPROBES:
        for refine in refines:
            index.set_search_params(nprobe=nprobe, refine=refine)
            qps, found = batch_search(index, queries)
            grid.append(
                {"nprobe": nprobe, "refine": refine, "recall10": round(recall_at_k(found, truth), 4), "qps": round(qps)}
            )
    passing = [row for row in grid if row["recall10"] >= TARGET_RECALL]
    chosen = max(passing, key=lambda row: row["qps"]) if passing else max(grid, key=lambda row: row["recall10"])
    index.set_search_params(nprobe=chosen["nprobe"], refine=chosen["refine"])
    return {"split": "validation queries", "target_recall10": TARGET_RECALL, "chosen": chosen, "grid": grid}


def run_size(n: int, mixture: ItemMixture, folder: Path, seed: int, nlist: int) -> dict[str, dict]:
    rng = np.random.default_rng(seed + n)
    base = mixture.sample(n, rng)
    valid, queries = mixture.sample(1000, rng), mixture.sample(1000, rng)
    keys = np.arange(n)
    out: dict[str, dict] = {}
    start = time.perf_counter()
    exact = VectorIndex.build(keys, base, kind="exact", device="cpu")
    out["exact"] = measure(exact, exact.footprint(), time.perf_counter() - start, queries, None, n)
    truth = out["exact"]["found"]
    valid_truth = batch_search(exact, valid)[1]
    out["exact"]["recall10"] = 1.0
    del exact
    for name, opq in (("ivfpq_refine", True), ("ivfpq_noopq_refine", False)):
        start = time.perf_counter()
        built = VectorIndex.build(keys, base, kind="ivfpq", nlist=nlist, opq=opq, device="cpu")
        build_s = time.perf_counter() - start
        footprint = built.footprint()
        path = built.save(folder / name)
        del built
        loaded = VectorIndex.load(path, device="cpu", mmap=True)  # serves from the mapped file
        selection = choose_search(loaded, valid, valid_truth, REFINES)
        out[name] = {**measure(loaded, footprint, build_s, queries, truth, n), "selection": selection}
        if opq:  # the codes' own top 10 (refine=1 re-scores them only), nprobe chosen the same way
            out["ivfpq"] = {"selection": choose_search(loaded, valid, valid_truth, (1,))}
            out["ivfpq"].update(measure(loaded, footprint, build_s, queries, truth, n))
            out["ivfpq"]["refine_bytes_per_vector"] = 0.0  # not read for the codes' own ranking
        del loaded
    for name, row in out.items():
        row.pop("found")
        row["speedup"] = round(row["qps_batch"] / out["exact"]["qps_batch"], 1)
        print(
            f"{n:>11,} {name:20} recall@10 {row['recall10']:.3f}  {row['bytes_per_vector']:7.1f} B/vector "
            f"(+{row['refine_bytes_per_vector']:.0f} on disk)  {row['qps_batch']:9.0f} q/s  x{row['speedup']}  "
            f"build {row['build_s']} s"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="FAISS threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    run = Run()
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "out"}}
    rng = np.random.default_rng(args.seed)
    with run.stage("train_item_vectors"):
        _, trained = train_item_vectors(make_sessions(rng, 100_000, 400_000), DIM, args.seed)
    with run.stage("fit_mixture"):
        mixture = ItemMixture(trained, args.seed)
    with tempfile.TemporaryDirectory(prefix="index_scale-") as tmp:
        for n in args.sizes:
            nlist = 4096 if n > 2_000_000 else round(4 * np.sqrt(n))
            with run.stage(f"size_{n}"):
                measured = run_size(n, mixture, Path(tmp), args.seed, nlist)
            label = size_label(n)
            results[label] = measured
            for kind, row in measured.items():
                for key in ("recall10", "bytes_per_vector", "speedup"):
                    results[f"{kind}_{label}_{key}"] = row[key]
    results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.out:
        run.write(args.out, results)


if __name__ == "__main__":
    main()
