"""How edge lists become CSR arrays for :class:`embeddings.graph.Graph` (its module doc states the rules):
node lists read and checked, edge ids mapped to node rows, PyG / scipy arcs paired into edges,
self-loops, duplicates and zero weights dropped. Whole-column numpy / polars work throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from embeddings.data import bad_row, check_ids, check_nulls, check_weights
from embeddings.errors import DataError, missing_column
from embeddings.sources import describe_source, read_table
from embeddings.vectors import as_key_list


def read_nodes(nodes: Any, node_column: str, type_column: str) -> tuple[pl.Series, pl.Series | None]:
    """Node ids (checked unique) and their types from a list, a Series or a node table."""
    if isinstance(nodes, (str, pl.DataFrame)) or hasattr(nodes, "__fspath__"):
        name = describe_source(nodes)
        frame = read_table(nodes, text_columns=(node_column,))
        if frame.height == 0:
            raise DataError(f"{name}: no rows")
        if node_column not in frame.columns:
            raise missing_column(name, node_column, frame.columns)
        ids = check_ids(name, node_column, frame[node_column])
        types = None
        if type_column in frame.columns:
            check_nulls(name, type_column, frame[type_column])
            types = frame[type_column].cast(pl.String)
    else:
        name, node_column = "nodes", "node"
        series = nodes if isinstance(nodes, pl.Series) else pl.Series(node_column, as_key_list(nodes, "nodes"))
        ids, types = check_ids(name, node_column, series), None
    repeated = ~ids.is_first_distinct()
    if repeated.any():
        row = int(repeated.arg_max())
        raise bad_row(name, node_column, row, f"node {ids[row]!r} is listed more than once")
    return ids.rename("node"), None if types is None else types.rename("type")


def edge_rows(
    name: str,
    frame: pl.DataFrame,
    src: str,
    dst: str,
    weight: str | None,
    node_ids: pl.Series | None,
    unknown: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, pl.Series, int]:
    """Check an edge table and map its ids to node rows: ``(src rows, dst rows, weights or None,
    node ids, edges dropped for naming an unknown node)``; without ``node_ids`` the nodes are the
    ids seen, sorted."""
    if frame.height == 0:
        raise DataError(f"{name}: no rows")
    missing = [c for c in (src, dst, weight) if c is not None and c not in frame.columns]
    if missing:
        raise missing_column(name, missing[0], frame.columns)
    s_ids, d_ids = check_ids(name, src, frame[src]), check_ids(name, dst, frame[dst])
    w = None if weight is None else check_weights(name, weight, frame[weight]).to_numpy()
    if s_ids.dtype != d_ids.dtype:
        raise DataError(f"{name}: column {src!r} holds {s_ids.dtype} ids but column {dst!r} holds {d_ids.dtype}")
    if node_ids is None:
        node_ids = pl.concat([s_ids, d_ids]).unique().sort().rename("node")
    elif len(s_ids) and node_ids.dtype != s_ids.dtype:
        raise DataError(f"{name}: the edges hold {s_ids.dtype} ids but the nodes are {node_ids.dtype}")
    rows = pl.int_range(0, len(node_ids), dtype=pl.Int64, eager=True)
    s_row = s_ids.replace_strict(node_ids, rows, default=-1, return_dtype=pl.Int64).to_numpy()
    d_row = d_ids.replace_strict(node_ids, rows, default=-1, return_dtype=pl.Int64).to_numpy()
    unknown_edge = (s_row < 0) | (d_row < 0)
    n_unknown = int(np.count_nonzero(unknown_edge))
    if n_unknown and unknown == "error":
        row = int(np.argmax(unknown_edge))
        column, ids = (src, s_ids) if s_row[row] < 0 else (dst, d_ids)
        raise bad_row(name, column, row, f"node {ids[row]!r} is not in the node list")
    if n_unknown:
        keep = ~unknown_edge
        s_row, d_row, w = s_row[keep], d_row[keep], None if w is None else w[keep]
    return s_row, d_row, w, node_ids, n_unknown


def arc_edges(
    name: str, src: np.ndarray, dst: np.ndarray, w: np.ndarray | None, n: int, directed: bool | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool, int, int]:
    """Edges from arcs in row numbers (PyG / scipy convention: an undirected edge is two arcs):
    ``(src rows, dst rows, weights or None, directed, duplicate arcs merged, self-loops dropped)``;
    ``directed=None`` reads the arcs as undirected when they (and their weights) are symmetric."""
    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    for label, ends in (("source", src), ("target", dst)):
        bad = np.flatnonzero((ends < 0) | (ends >= n))
        if bad.size:
            raise DataError(f"{name}: arc {bad[0]} has {label} node {ends[bad[0]]}, outside [0, {n})")
    if w is not None:
        w = check_weights(name, "edge_weight", pl.Series(np.asarray(w, dtype=np.float64))).to_numpy()
    loops = src == dst
    n_loops = int(np.count_nonzero(loops))
    src, dst, w = src[~loops], dst[~loops], None if w is None else w[~loops]
    # Merge repeated arcs first: duplicates in the arc list, reported as such.
    keys, inverse = np.unique(src * n + dst, return_inverse=True)
    duplicates = src.size - keys.size
    if w is not None:
        w = np.bincount(inverse, weights=w, minlength=keys.size)
    a, b = keys // n, keys % n
    reverse = np.isin(b * n + a, keys)
    symmetric = bool(reverse.all())
    if w is not None and symmetric:
        # Weight of each arc's reverse: keys are sorted, so searchsorted finds it.
        symmetric = bool(np.array_equal(w, w[np.searchsorted(keys, b * n + a)]))
    if directed is None:
        directed = not symmetric
    if not directed:
        # One edge per unordered pair; both arcs present must carry the same weight.
        lower = a < b
        one_way = ~reverse
        take = lower | one_way
        if w is not None:
            rev_w = np.where(reverse, w[np.minimum(np.searchsorted(keys, b * n + a), keys.size - 1)], w)
            differ = reverse & (w != rev_w)
            if differ.any():
                i = int(np.argmax(differ))
                raise DataError(
                    f"{name}: arcs {a[i]}->{b[i]} and {b[i]}->{a[i]} weigh {w[i]} and {rev_w[i]}; "
                    "an undirected graph needs equal weights both ways"
                )
        a, b, w = a[take], b[take], None if w is None else w[take]
    return a, b, w, bool(directed), duplicates, n_loops


def csr(
    src: np.ndarray, dst: np.ndarray, w: np.ndarray | None, n: int, directed: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, int]]:
    """CSR ``(indptr, indices, weights or None, counts)`` from edges given as row numbers: drop
    self-loops, merge duplicates, drop zero weights; ``counts`` says how many of each."""
    if n >= 2**31 - 1:
        raise DataError(f"graph: {n} nodes is more than int32 node indices hold")
    loops = src == dst
    src, dst = src[~loops], dst[~loops]
    if w is not None:
        w = w[~loops]
    if not directed:
        src, dst = np.minimum(src, dst), np.maximum(src, dst)
    keys, inverse = np.unique(src * n + dst, return_inverse=True)
    counts = {"self_loops": int(np.count_nonzero(loops)), "duplicates": int(src.size - keys.size), "zero_weight": 0}
    weights = None
    if w is not None:
        weights = np.bincount(inverse, weights=w, minlength=keys.size)
        positive = weights > 0
        counts["zero_weight"] = int(keys.size - np.count_nonzero(positive))
        keys, weights = keys[positive], weights[positive]
        if weights.size and not np.isfinite(weights.astype(np.float32)).all():
            raise DataError("graph: summed edge weights exceed the float32 range; rescale the weights")
    a, b = keys // n, keys % n
    if not directed:
        order = np.argsort(np.concatenate([a * n + b, b * n + a]), kind="stable")
        a, b = np.concatenate([a, b])[order], np.concatenate([b, a])[order]
        weights = None if weights is None else np.concatenate([weights, weights])[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=indptr[1:])
    return indptr, b, weights, counts
