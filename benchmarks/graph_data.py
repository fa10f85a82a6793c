"""Loaders for the node2vec benchmark graphs, read in place from the shared data folder.

- Cora and CiteSeer, the Planetoid files (Yang, Cohen, Salakhutdinov, ICML 2016), with the
  public split used by GCN and PyG: train = nodes ``0 .. len(y) - 1`` (140 / 120 nodes, 20
  per class), validation = the next 500, test = the 1,000 ids of
  ``test.index``. Row ``j`` of ``ty`` is the label of node ``test.index[j]``. CiteSeer's
  test ids span 2312..3326 but 15 of those nodes have no features or labels: as in PyG
  they stay in the graph with their edges, labelled -1 here and in no split. CiteSeer also
  has 48 isolated nodes (12 of them test nodes, 6 validation nodes): nodes of the graph
  without an edge.
- BlogCatalog (Tang and Liu, KDD 2009) as in DeepWalk and node2vec: ``network``, the
  symmetric adjacency, and ``group``, 39 multi-label memberships.

The Planetoid files are Python 2 pickles. They are read with an unpickler that resolves
only the globals those files use (numpy arrays and dtypes, ``defaultdict``, ``list``) and
refuses any other, so a tampered file cannot run code.
"""

from __future__ import annotations

import collections
import itertools
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import scipy.io
import scipy.sparse

from benchmarks._common import DATA
from embeddings.graph import Graph, GraphReport


@dataclass(frozen=True)
class NodeDataset:
    """An undirected graph over nodes ``0 .. n_nodes - 1`` with node labels and a split.

    ``edges`` int64 ``(m, 2)``: each undirected edge once, ``u < v``, no self-loops.
    ``labels``: int64 ``(n,)`` with -1 for unlabelled nodes (single-label), or a bool
    ``(n, c)`` indicator matrix (multi-label). ``train`` / ``val`` / ``test``: int64 node
    ids of the public split (empty when the data set has none).
    """

    name: str
    n_nodes: int
    edges: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    def graph(self) -> tuple[Graph, GraphReport]:
        """The :class:`Graph` (isolated nodes kept), node ids ``0 .. n_nodes - 1``."""
        edges = pl.DataFrame({"src": self.edges[:, 0], "dst": self.edges[:, 1]})
        return Graph.from_edges(edges, nodes=pl.Series("node", np.arange(self.n_nodes)))

    def label_map(self) -> dict[int, object]:
        """``{node: class}`` for labelled nodes, or ``{node: array of classes}`` when multi-label."""
        if self.multilabel:
            rows = scipy.sparse.csr_matrix(self.labels)
            return dict(zip(range(self.n_nodes), np.split(rows.indices, rows.indptr[1:-1])))
        known = np.flatnonzero(self.labels >= 0)
        return dict(zip(known.tolist(), self.labels[known].tolist()))


def _undirected(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """Unique ``u < v`` pairs ``(m, 2)`` of the arcs, self-loops dropped."""
    keep = src != dst
    codes = np.unique(np.minimum(src, dst)[keep] * n + np.maximum(src, dst)[keep])
    return np.stack([codes // n, codes % n], axis=1)


# --- Planetoid --------------------------------------------------------------------------
class _PlanetoidUnpickler(pickle.Unpickler):
    """Resolves only the globals the Planetoid label and graph pickles name."""

    _allowed: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # The array rebuilder numpy's pickles name (numpy.core in 1.x, numpy._core in 2.x).
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
        ("collections", "defaultdict"): collections.defaultdict,
        ("__builtin__", "list"): list,  # Python 2's name, as written in the files
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _unpickle(path: Path) -> object:
    with open(path, "rb") as f:
        return _PlanetoidUnpickler(f, encoding="latin1").load()


def load_planetoid(name: str, root: Path = DATA) -> NodeDataset:
    """Cora (``"cora"``) or CiteSeer (``"citeseer"``) with the public Planetoid split."""
    folder = root / name
    y, ally, ty = (np.asarray(_unpickle(folder / f"ind.{name}.{part}")) for part in ("y", "ally", "ty"))
    adjacency = _unpickle(folder / f"ind.{name}.graph")
    test_index = np.loadtxt(folder / f"ind.{name}.test.index", dtype=np.int64)
    lengths = np.fromiter(map(len, adjacency.values()), dtype=np.int64, count=len(adjacency))
    src = np.repeat(np.fromiter(adjacency.keys(), dtype=np.int64, count=len(adjacency)), lengths)
    dst = np.fromiter(itertools.chain.from_iterable(adjacency.values()), dtype=np.int64, count=int(lengths.sum()))
    n = int(max(src.max(), dst.max(), test_index.max())) + 1

    def classes(one_hot: np.ndarray) -> np.ndarray:
        return np.where(one_hot.any(axis=1), one_hot.argmax(axis=1), -1)

    labels = np.full(n, -1, dtype=np.int64)
    labels[: len(ally)] = classes(ally)
    labels[test_index] = classes(ty)
    return NodeDataset(
        name=name,
        n_nodes=n,
        edges=_undirected(src, dst, n),
        labels=labels,
        train=np.arange(len(y), dtype=np.int64),
        val=np.arange(len(y), len(y) + 500, dtype=np.int64),
        test=np.sort(test_index),
    )


def load_cora(root: Path = DATA) -> NodeDataset:
    return load_planetoid("cora", root)


def load_citeseer(root: Path = DATA) -> NodeDataset:
    return load_planetoid("citeseer", root)


# --- BlogCatalog ------------------------------------------------------------------------
def load_blogcatalog_mat(root: Path = DATA) -> tuple[scipy.sparse.csc_matrix, scipy.sparse.csc_matrix]:
    """The raw ``network`` ``(n, n)`` and ``group`` ``(n, 39)`` sparse matrices."""
    mat = scipy.io.loadmat(root / "blogcatalog" / "blogcatalog.mat")
    return mat["network"], mat["group"]


def load_blogcatalog(root: Path = DATA) -> NodeDataset:
    """BlogCatalog: 10,312 nodes, 333,983 edges, 39 overlapping groups; no fixed split."""
    network, group = load_blogcatalog_mat(root)
    coo = network.tocoo()
    n = network.shape[0]
    empty = np.zeros(0, dtype=np.int64)
    return NodeDataset(
        name="blogcatalog",
        n_nodes=n,
        edges=_undirected(coo.row.astype(np.int64), coo.col.astype(np.int64), n),
        labels=group.toarray() > 0,
        train=empty,
        val=empty,
        test=empty,
    )
