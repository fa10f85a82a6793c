"""Graphs in CSR form, built once from edge tables, PyG ``Data``, networkx or scipy.

A :class:`Graph` over ``n`` nodes stores its arcs row by row: the out-neighbours of node
``i`` are ``indices[indptr[i]:indptr[i + 1]]`` (int32, sorted ascending within a row) with
``weights`` (float32, > 0) alongside, or ``weights=None`` for an unweighted graph.
``indptr`` is int64 of shape ``(n + 1,)``. Row ``i`` is the node ``nodes[i]`` (a polars
Series of Int64 or String ids); ``node_types`` (String, optional) types each node.

How edges become arcs, the same for every constructor:

- An undirected graph stores each edge in both directions; ``n_edges`` counts it once.
- Self-loops are dropped and counted: a walk that stays in place adds nothing to a
  node's context, and dropping them keeps "undirected = symmetric CSR" exact.
- Duplicate edges are merged and counted: their weights are summed in a weighted graph; in
  an unweighted graph they collapse into one edge. In an edge table (:meth:`Graph.from_edges`,
  :meth:`Graph.from_networkx`) an undirected edge listed as both ``(a, b)`` and ``(b, a)`` is a
  duplicate. PyG and scipy store undirected graphs as both arcs, so there (:meth:`Graph.from_pyg`,
  :meth:`Graph.from_scipy`) the two arcs are one edge; their weights must agree.
- Edges whose merged weight is 0 can never be walked: they are dropped and counted.
- With a node list, an edge naming a node not in it is an error by default (a node table and
  an edge table that disagree are usually a join gone wrong); ``unknown="drop"`` drops such
  edges and counts them instead.

Every constructor returns the graph with a :class:`GraphReport` of what it kept and dropped.
Building is numpy / polars over whole columns: sort, unique, bincount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.graph.arcs import arc_edges, csr, edge_rows, read_nodes
from embeddings.sources import Source, describe_source, read_table
from embeddings.vectors import as_key_list

if TYPE_CHECKING:
    import networkx as nx
    import scipy.sparse

UNKNOWN_POLICIES = ("error", "drop")


@dataclass(frozen=True)
class GraphReport:
    """What a constructor built and dropped.

    ``edges`` counts undirected edges once; ``isolated`` counts nodes without any edge;
    ``duplicates`` the edges merged into an earlier one; ``self_loops_dropped``,
    ``zero_weight_dropped`` and ``unknown_dropped`` the edges removed for those reasons.
    """

    source: str
    nodes: int
    edges: int
    directed: bool
    weighted: bool
    isolated: int
    duplicates: int
    self_loops_dropped: int
    zero_weight_dropped: int
    unknown_dropped: int

    def __str__(self) -> str:
        kind = ("directed" if self.directed else "undirected") + (", weighted" if self.weighted else "")
        return (
            f"{self.source}: {self.nodes} nodes, {self.edges} edges ({kind}), {self.isolated} isolated nodes; "
            f"merged {self.duplicates} duplicate edges; dropped {self.self_loops_dropped} self-loops, "
            f"{self.zero_weight_dropped} zero-weight edges, {self.unknown_dropped} edges to unknown nodes"
        )


class Graph:
    """A graph in CSR form; see the module docstring for the layout and the building rules.

    ``indptr`` int64 ``(n + 1,)``, ``indices`` int32 ``(nnz,)`` sorted within each row,
    ``weights`` float32 ``(nnz,)`` > 0 or ``None``, ``nodes`` ``(n,)`` ids, ``node_types``
    ``(n,)`` strings or ``None``. Undirected graphs are symmetric (weights included) and
    have no self-loops. The constructor checks shapes and dtypes, not those invariants:
    build through the ``from_*`` constructors unless the arrays come from one.
    """

    def __init__(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        weights: np.ndarray | None,
        nodes: pl.Series | Sequence[Any],
        directed: bool,
        node_types: pl.Series | Sequence[str] | None = None,
    ) -> None:
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        self.weights = None if weights is None else np.ascontiguousarray(weights, dtype=np.float32)
        self.nodes = nodes.rename("node") if isinstance(nodes, pl.Series) else pl.Series("node", nodes)
        self.directed = bool(directed)
        self.node_types = None if node_types is None else pl.Series("type", node_types, dtype=pl.String)
        n = len(self.nodes)
        if self.indptr.shape != (n + 1,) or self.indptr[0] != 0 or self.indptr[-1] != self.indices.size:
            raise ValueError(f"indptr must have {n + 1} entries from 0 to len(indices) = {self.indices.size}")
        if self.weights is not None and self.weights.shape != self.indices.shape:
            raise ValueError(f"weights has shape {self.weights.shape}; expected {self.indices.shape}")
        if self.node_types is not None and len(self.node_types) != n:
            raise ValueError(f"node_types has {len(self.node_types)} entries; expected {n}")

    def __repr__(self) -> str:
        kind = "directed" if self.directed else "undirected"
        weighted = ", weighted" if self.weights is not None else ""
        return f"Graph({self.n_nodes} nodes, {self.n_edges} edges, {kind}{weighted})"

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        """Edges: arcs for a directed graph, arcs / 2 for an undirected one (no self-loops)."""
        return int(self.indices.size if self.directed else self.indices.size // 2)

    @property
    def weighted(self) -> bool:
        return self.weights is not None

    def degree(self, weighted: bool = False) -> np.ndarray:
        """Out-degree per node, int64 ``(n,)``; with ``weighted=True`` the summed out-weights, float64."""
        if not weighted or self.weights is None:
            counts = np.diff(self.indptr)
            return counts.astype(np.float64) if weighted else counts
        return self.row_weight.copy()

    @cached_property
    def row_weight(self) -> np.ndarray:
        """Summed out-weight of each node, float64 ``(n,)`` (the out-degree when unweighted)."""
        if self.weights is None:
            return np.diff(self.indptr).astype(np.float64)
        sums = np.concatenate([[0.0], np.cumsum(self.weights, dtype=np.float64)])
        return sums[self.indptr[1:]] - sums[self.indptr[:-1]]

    @cached_property
    def _lookup(self) -> dict[Any, int]:
        # Built on the first single-node query; bulk work goes through indices_of().
        return dict(zip(self.nodes.to_list(), range(self.n_nodes), strict=True))

    def index_of(self, node: Any) -> int:
        """Row of ``node``; :class:`NotFoundError` when the graph has no such node."""
        try:
            return self._lookup[node]
        except (KeyError, TypeError):
            raise NotFoundError(f"node {node!r} is not in the graph ({self.n_nodes} nodes)") from None

    def indices_of(self, nodes: pl.Series | Sequence[Any]) -> np.ndarray:
        """Rows of many nodes at once, int64 ``(len(nodes),)``; -1 for nodes not in the graph."""
        s = nodes if isinstance(nodes, pl.Series) else pl.Series("node", nodes)
        s = s.cast(self.nodes.dtype, strict=False)
        rows = pl.int_range(0, self.n_nodes, dtype=pl.Int64, eager=True)
        return s.replace_strict(self.nodes, rows, default=-1, return_dtype=pl.Int64).to_numpy()

    def neighbours(self, node: Any) -> list[Any]:
        """Ids of the out-neighbours of ``node``, in row order."""
        i = self.index_of(node)
        return self.nodes.gather(self.indices[self.indptr[i] : self.indptr[i + 1]]).to_list()

    def edge_weights(self, node: Any) -> np.ndarray:
        """Weights of the arcs out of ``node``, float32, aligned with :meth:`neighbours` (1 when unweighted)."""
        i = self.index_of(node)
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return np.ones(hi - lo, dtype=np.float32) if self.weights is None else self.weights[lo:hi].copy()

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def from_edges(
        cls,
        source: Source,
        *,
        src: str = "src",
        dst: str = "dst",
        weight: str | None = None,
        directed: bool = False,
        table: str | None = None,
        query: str | None = None,
        nodes: Source | pl.Series | Sequence[Any] | None = None,
        node_column: str = "node",
        type_column: str = "type",
        unknown: str = "error",
    ) -> tuple[Graph, GraphReport]:
        """Build from an edge table (a path, a SQL URL with ``table=``/``query=``, or a DataFrame).

        Columns ``src`` and ``dst`` hold integer or string node ids (text when read from CSV, unless ``nodes`` are integers); ``weight`` (optional)
        non-negative numbers. ``nodes`` lists every node, isolated ones included: a list or
        Series of ids, or a table whose ``node_column`` holds the ids and whose
        ``type_column``, when present, types them. Without ``nodes`` the graph's nodes are the
        ids seen in the edges, sorted. ``unknown``: what to do with an edge whose endpoint is
        not in ``nodes`` ("error" or "drop").
        """
        if unknown not in UNKNOWN_POLICIES:
            raise ConfigError(f"unknown must be 'error' or 'drop', got {unknown!r}")
        name = describe_source(source, table=table, query=query)
        node_ids, node_types = (None, None) if nodes is None else read_nodes(nodes, node_column, type_column)
        # CSV ids are text (leading zeros kept) unless the given nodes say they are integers.
        text = () if node_ids is not None and node_ids.dtype.is_integer() else (src, dst)
        frame = read_table(source, table=table, query=query, text_columns=text)
        return _from_frame(name, frame, src, dst, weight, directed, node_ids, node_types, unknown)

    @classmethod
    def from_networkx(cls, g: nx.Graph, weight: str = "weight") -> tuple[Graph, GraphReport]:
        """Build from a networkx (Di/Multi)Graph; its nodes (int or str ids) keep their order.

        The graph is weighted when any edge carries the ``weight`` attribute (an edge
        without it weighs 1, as in networkx); multigraph edges between the same pair are
        duplicates, merged. Node attribute ``type``, when every node has it, gives ``node_types``.
        """
        node_ids = pl.Series("node", as_key_list(list(g.nodes), "networkx graph nodes"))
        types = [data.get("type") for _, data in g.nodes(data=True)]
        node_types = pl.Series("type", types, dtype=pl.String) if types and None not in types else None
        edges = list(g.edges(data=weight))
        columns: dict[str, Any] = {
            "src": pl.Series([e[0] for e in edges], dtype=node_ids.dtype),
            "dst": pl.Series([e[1] for e in edges], dtype=node_ids.dtype),
        }
        weighted = any(e[2] is not None for e in edges)
        if weighted:
            columns["weight"] = pl.Series([1.0 if e[2] is None else e[2] for e in edges], strict=False)
        frame = pl.DataFrame(columns)
        return _from_frame(
            "networkx graph", frame, "src", "dst", "weight" if weighted else None,
            g.is_directed(), node_ids, node_types, "error",
        )  # fmt: skip

    @classmethod
    def from_pyg(cls, data: Any, directed: bool | None = None) -> tuple[Graph, GraphReport]:
        """Build from a ``torch_geometric.data.Data``: ``edge_index`` (2, E), optional
        ``edge_weight`` (E,), ``num_nodes`` (nodes ``0 .. num_nodes - 1``, isolated ones kept).

        PyG stores an undirected graph as both arcs. ``directed=None`` reads the graph as
        undirected when its arcs (and weights) are symmetric; ``directed=False`` adds the
        missing reverse arcs.
        """
        edge_index = data.edge_index.detach().cpu().numpy()
        if edge_index.ndim != 2 or edge_index.shape[0] != 2:
            raise DataError(f"pyg data: edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
        weight = getattr(data, "edge_weight", None)
        weights = None if weight is None else weight.detach().cpu().numpy().reshape(-1)
        return _from_arcs("pyg data", edge_index[0], edge_index[1], weights, int(data.num_nodes), directed)

    @classmethod
    def from_scipy(
        cls,
        matrix: scipy.sparse.sparray | scipy.sparse.spmatrix,
        *,
        directed: bool | None = None,
        weighted: bool | None = None,
        nodes: pl.Series | Sequence[Any] | None = None,
    ) -> tuple[Graph, GraphReport]:
        """Build from a square scipy sparse adjacency matrix (entry ``[i, j]`` = arc i -> j).

        ``directed=None``: undirected when the matrix is symmetric. ``weighted=None``: weighted
        unless every stored value is 1. ``nodes`` names the rows (default ``0 .. n - 1``).
        """
        coo = matrix.tocoo()
        n = coo.shape[0]
        if coo.shape != (n, n):
            raise DataError(f"scipy matrix: adjacency must be square, got shape {coo.shape}")
        values = np.asarray(coo.data, dtype=np.float64)
        if weighted is None:
            weighted = not np.all(values == 1.0)
        graph, report = _from_arcs("scipy matrix", coo.row, coo.col, values if weighted else None, n, directed)
        if nodes is not None:
            ids = pl.Series("node", as_key_list(nodes, "nodes"))
            if len(ids) != n:
                raise DataError(f"nodes: {len(ids)} ids for a {n} x {n} matrix")
            graph = Graph(graph.indptr, graph.indices, graph.weights, ids, graph.directed)
        return graph, report


# -- building -------------------------------------------------------------------------------


def _from_frame(
    name: str,
    frame: pl.DataFrame,
    src: str,
    dst: str,
    weight: str | None,
    directed: bool,
    node_ids: pl.Series | None,
    node_types: pl.Series | None,
    unknown: str,
) -> tuple[Graph, GraphReport]:
    """Check an edge table, map ids to rows and build the graph."""
    s_row, d_row, w, node_ids, n_unknown = edge_rows(name, frame, src, dst, weight, node_ids, unknown)
    graph, counts = _build(s_row, d_row, w, directed, node_ids, node_types)
    return graph, _report(name, graph, counts, n_unknown)


def _from_arcs(
    name: str, src: np.ndarray, dst: np.ndarray, w: np.ndarray | None, n: int, directed: bool | None
) -> tuple[Graph, GraphReport]:
    """Build from arcs in row numbers (PyG / scipy convention: an undirected edge is two arcs)."""
    a, b, w, directed, duplicates, n_loops = arc_edges(name, src, dst, w, n, directed)
    ids = pl.int_range(0, n, dtype=pl.Int64, eager=True).rename("node")
    graph, counts = _build(a, b, w, directed, ids, None)
    counts["duplicates"] += duplicates
    counts["self_loops"] += n_loops
    return graph, _report(name, graph, counts, 0)


def _build(
    src: np.ndarray,
    dst: np.ndarray,
    w: np.ndarray | None,
    directed: bool,
    nodes: pl.Series,
    node_types: pl.Series | None,
) -> tuple[Graph, dict[str, int]]:
    indptr, indices, weights, counts = csr(src, dst, w, len(nodes), directed)
    return Graph(indptr, indices, weights, nodes, directed, node_types), counts


def _report(name: str, graph: Graph, counts: dict[str, int], unknown: int) -> GraphReport:
    touched = np.diff(graph.indptr) > 0
    if graph.directed:
        touched |= np.bincount(graph.indices, minlength=graph.n_nodes) > 0
    return GraphReport(
        source=name,
        nodes=graph.n_nodes,
        edges=graph.n_edges,
        directed=graph.directed,
        weighted=graph.weighted,
        isolated=int(graph.n_nodes - np.count_nonzero(touched)),
        duplicates=counts["duplicates"],
        self_loops_dropped=counts["self_loops"],
        zero_weight_dropped=counts["zero_weight"],
        unknown_dropped=unknown,
    )
