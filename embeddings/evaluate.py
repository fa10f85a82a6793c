"""Checks of embedding quality against known labels and held-out edges.

- :func:`neighbour_agreement`: do nearest neighbours share a planted class?
- :func:`node_classification`: logistic regression on the vectors of labelled keys,
  single-label (accuracy) or multi-label (micro/macro-F1), the protocol of the DeepWalk
  and node2vec papers.
- :func:`split_edges`, :func:`sample_non_edges`, :func:`link_prediction_auc`: hold out
  edges while the rest of the graph stays connected, then score node pairs by logistic
  regression on an edge operator of their vectors (node2vec's link prediction).

Features are the rows of :meth:`Embeddings.normalized` (unit L2 norm, zero rows stay
zero): SGNS vector norms grow with a node's frequency in the walks, i.e. its degree,
and the task asks about direction, not degree. The classifiers are scikit-learn's
L2-regularised ``LogisticRegression`` with ``C=1`` unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

from embeddings.checks import check_int, check_number
from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.index import VectorIndex
from embeddings.vectors import Embeddings

EDGE_OPERATORS = ("hadamard", "average", "l1", "l2")


def neighbour_agreement(index: VectorIndex, labels: Mapping[Any, Any], k: int = 10) -> float:
    """Share of each labelled key's ``k`` nearest neighbours that carry the same label.

    ``labels`` maps keys (those in ``index``; others are ignored) to a class such as a
    planted cluster. 1.0 means every neighbour list stays inside its class; a random
    embedding scores about the size of a class over the number of keys.
    """
    keys = [key for key in index.keys if key in labels]
    if not keys:
        raise ValueError("no labelled key is in the index")
    found, _ = index.search_keys(keys, k)
    query_labels = np.array([labels[key] for key in keys], dtype=object)
    neighbour_labels = np.vectorize(lambda key: labels.get(key), otypes=[object])(found)
    return float(np.mean(neighbour_labels == query_labels[:, None]))


# --- node classification ----------------------------------------------------------------
def node_classification(
    embeddings: Embeddings,
    labels: Mapping[Any, Any],
    train_keys: Sequence[Any] | np.ndarray,
    test_keys: Sequence[Any] | np.ndarray,
    *,
    multilabel: bool = False,
    C: float = 1.0,
) -> dict[str, float]:
    """Train logistic regression on the train keys' vectors and score it on the test keys.

    Single-label (``labels[key]`` is one class): multinomial logistic regression (lbfgs);
    returns ``accuracy`` and ``macro_f1``. Multi-label (``labels[key]`` is a collection of
    classes): one-vs-rest logistic regression (liblinear), and each test key is given its
    true number of labels ``k``, predicted as the ``k`` classes of highest probability (as in
    DeepWalk and node2vec); returns ``micro_f1`` and ``macro_f1``. Both also return
    ``n_train`` and ``n_test``. Train and test keys must be distinct, in ``embeddings``
    and in ``labels``. Features are the keys' unit-normalised vectors ``(n, d)``; ``C`` is
    the inverse strength of the L2 penalty (tune it on validation keys, not test keys).
    """
    _check_C(C)
    train_rows = _rows(embeddings, train_keys, "train_keys")
    test_rows = _rows(embeddings, test_keys, "test_keys")
    shared = np.intersect1d(train_rows, test_rows)
    if shared.size:
        raise DataError(f"train_keys and test_keys share key {embeddings.keys[shared[0]]!r}; they must be disjoint")
    train_labels = _labels_of(labels, train_keys, "train_keys")
    test_labels = _labels_of(labels, test_keys, "test_keys")
    features = embeddings.normalized()
    x_train, x_test = features[train_rows], features[test_rows]
    counts = {"n_train": float(train_rows.size), "n_test": float(test_rows.size)}
    if multilabel:
        return _multilabel_f1(x_train, x_test, train_labels, test_labels, C) | counts

    y_train, y_test = np.asarray(train_labels), np.asarray(test_labels)
    if np.unique(y_train).size < 2:
        raise DataError(f"labels: train_keys carry a single class ({train_labels[0]!r}); at least 2 are needed")
    classifier = LogisticRegression(C=C, max_iter=1000).fit(x_train, y_train)
    predicted = classifier.predict(x_test)
    return {
        "accuracy": float(np.mean(predicted == y_test)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
    } | counts


def _multilabel_f1(
    x_train: np.ndarray, x_test: np.ndarray, train_labels: list[Any], test_labels: list[Any], C: float
) -> dict[str, float]:
    for name, sets in (("train_keys", train_labels), ("test_keys", test_labels)):
        bad = next(
            (i for i, s in enumerate(sets) if isinstance(s, (str, bytes)) or not isinstance(s, Collection)), None
        )
        if bad is not None:
            raise DataError(f"labels: {name} row {bad} has label {sets[bad]!r}; multilabel needs a collection per key")
    binarizer = MultiLabelBinarizer().fit([*train_labels, *test_labels])
    y_train, y_test = binarizer.transform(train_labels), binarizer.transform(test_labels)
    if y_train.any(axis=0).sum() < 2:
        raise DataError("labels: train_keys carry fewer than 2 classes; at least 2 are needed")
    classifier = OneVsRestClassifier(LogisticRegression(C=C, solver="liblinear")).fit(x_train, y_train)
    scores = classifier.predict_proba(x_test)
    # Each test key gets as many predicted classes as it truly has: its top-k scores.
    n_true = y_test.sum(axis=1)
    ranked = np.argsort(-scores, axis=1, kind="stable")
    take = np.arange(scores.shape[1])[None, :] < n_true[:, None]
    predicted = np.zeros_like(y_test)
    predicted[np.nonzero(take)[0], ranked[take]] = 1
    return {
        "micro_f1": float(f1_score(y_test, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
    }


# --- link prediction --------------------------------------------------------------------
class _GraphLike(Protocol):
    indptr: np.ndarray
    indices: np.ndarray
    nodes: Any


def split_edges(
    graph_or_edges: _GraphLike | np.ndarray | Sequence[Sequence[Any]], test_fraction: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a share of the edges, keeping every connected component connected.

    Takes a graph (anything with CSR ``indptr``/``indices`` and ``nodes`` ids, such as
    :class:`embeddings.graph.Graph`) or an ``(m, 2)`` array of node-id pairs. Edges are
    undirected pairs here: direction, duplicates and self-loops are dropped. A random
    spanning forest (minimum spanning tree under random weights) is kept in the training
    graph, so it has the original components and no node loses all its edges, as in the
    node2vec paper; ``round(test_fraction * m)`` of the other edges are held out uniformly.

    Returns, as node-id arrays of shape ``(·, 2)``: the training edges ``(m - k, 2)``, the
    held-out edges ``(k, 2)`` and ``k`` sampled non-edges of the whole graph (distinct
    pairs of distinct nodes, no edge between them).
    """
    check_number("test_fraction", test_fraction, above=0, below=1)
    ids, pairs = _undirected_pairs(graph_or_edges)
    n, m = ids.size, pairs.shape[0]
    k = round(test_fraction * m)
    if k < 1:
        raise DataError(f"edges: {m} edges, test_fraction {test_fraction} holds out none")
    rng = np.random.default_rng(seed)
    weights = coo_matrix((1.0 + rng.random(m), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    forest = minimum_spanning_tree(weights).tocoo()
    forest_codes = np.minimum(forest.row, forest.col).astype(np.int64) * n + np.maximum(forest.row, forest.col)
    codes = pairs[:, 0] * n + pairs[:, 1]
    spare = np.flatnonzero(~np.isin(codes, forest_codes))
    if k > spare.size:
        raise DataError(
            f"edges: can hold out at most {spare.size} of {m} edges with every component kept connected, asked for {k}"
        )
    held = np.zeros(m, dtype=bool)
    held[rng.choice(spare, size=k, replace=False)] = True
    negatives = _non_edge_pairs(n, np.sort(codes), k, rng)
    return ids[pairs[~held]], ids[pairs[held]], ids[negatives]


def sample_non_edges(
    graph_or_edges: _GraphLike | np.ndarray | Sequence[Sequence[Any]],
    count: int,
    seed: int = 0,
    *,
    exclude: np.ndarray | Sequence[Sequence[Any]] = (),
) -> np.ndarray:
    """``count`` distinct node pairs ``(count, 2)`` with no edge between them (either direction).

    Nodes are those of the graph or edge array; pairs in ``exclude`` (ids, e.g. the
    held-out non-edges of :func:`split_edges`) are avoided too, so training and test
    negatives can be kept apart.
    """
    check_int("count", count)
    ids, pairs = _undirected_pairs(graph_or_edges)
    n = ids.size
    codes = pairs[:, 0] * n + pairs[:, 1]
    excluded = np.asarray(exclude)
    if excluded.size:
        if excluded.ndim != 2 or excluded.shape[1] != 2:
            raise DataError(f"exclude must be an array of node pairs (k, 2), got shape {excluded.shape}")
        rows = _id_rows(ids, excluded.ravel(), "exclude").reshape(-1, 2)
        codes = np.concatenate([codes, rows.min(axis=1) * n + rows.max(axis=1)])
    return ids[_non_edge_pairs(n, np.unique(codes), int(count), np.random.default_rng(seed))]


def link_prediction_auc(
    embeddings: Embeddings,
    positives: np.ndarray | Sequence[Sequence[Any]],
    negatives: np.ndarray | Sequence[Sequence[Any]],
    train_positives: np.ndarray | Sequence[Sequence[Any]],
    train_negatives: np.ndarray | Sequence[Sequence[Any]],
    operator: str = "hadamard",
    *,
    C: float = 1.0,
) -> float:
    """ROC-AUC of logistic regression on edge features, trained on the train pairs, scored on the test pairs.

    Each of the four pair arguments is a ``(k, 2)`` array of node keys. A pair ``(a, b)`` becomes the
    ``(d,)`` feature ``f(u_a, u_b)`` of the unit vectors, with ``f`` one of node2vec's
    operators: ``"hadamard"`` ``u_a * u_b``, ``"average"`` ``(u_a + u_b) / 2``, ``"l1"``
    ``|u_a - u_b|``, ``"l2"`` ``(u_a - u_b)²``; ``C`` is the inverse L2 strength. 1.0 means
    every held-out edge outranks every non-edge; random vectors score about 0.5.
    """
    _check_C(C)
    if operator not in EDGE_OPERATORS:
        raise ConfigError(f"operator must be one of {', '.join(EDGE_OPERATORS)}, got {operator!r}")
    features = embeddings.normalized()

    def edge_features(pairs: Any, source: str) -> np.ndarray:
        array = np.asarray(pairs, dtype=object)
        if array.size == 0:
            raise DataError(f"{source} is empty; at least one node pair is needed")
        if array.ndim != 2 or array.shape[1] != 2:
            raise DataError(f"{source} must be an array of node pairs (k, 2), got shape {array.shape}")
        rows = _rows(embeddings, array.ravel(), source).reshape(-1, 2)
        a, b = features[rows[:, 0]], features[rows[:, 1]]
        if operator == "hadamard":
            return a * b
        if operator == "average":
            return (a + b) / 2
        return np.abs(a - b) if operator == "l1" else (a - b) ** 2

    x_train = np.concatenate(
        [edge_features(train_positives, "train_positives"), edge_features(train_negatives, "train_negatives")]
    )
    x_test = np.concatenate([edge_features(positives, "positives"), edge_features(negatives, "negatives")])
    y_train = np.repeat([1, 0], [len(train_positives), len(train_negatives)])
    y_test = np.repeat([1, 0], [len(positives), len(negatives)])
    classifier = LogisticRegression(C=C, max_iter=1000).fit(x_train, y_train)
    return float(roc_auc_score(y_test, classifier.decision_function(x_test)))


# --- helpers ----------------------------------------------------------------------------
def _check_C(C: object) -> None:
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not (np.isfinite(C) and C > 0):
        raise ConfigError(f"C must be a finite number > 0, got {C!r}")


def _rows(embeddings: Embeddings, keys: Iterable[Any], source: str) -> np.ndarray:
    """Rows of ``keys`` in ``embeddings`` (int64); the first unknown key raises NotFoundError."""
    key_list = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
    if not key_list:
        raise DataError(f"{source} is empty; at least one key is needed")
    try:
        return np.fromiter(map(embeddings.index_of, key_list), dtype=np.int64, count=len(key_list))
    except NotFoundError:
        bad = next(i for i, key in enumerate(key_list) if key not in embeddings)
        raise NotFoundError(
            f"{source}: key {key_list[bad]!r} (row {bad}) is not in the embeddings ({len(embeddings)} keys)"
        ) from None


def _labels_of(labels: Mapping[Any, Any], keys: Iterable[Any], source: str) -> list[Any]:
    key_list = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
    found = [labels.get(key, _MISSING) for key in key_list]
    bad = next((i for i, label in enumerate(found) if label is _MISSING), None)
    if bad is not None:
        raise DataError(f"labels: {source} key {key_list[bad]!r} (row {bad}) has no label")
    return found


_MISSING = object()


def _undirected_pairs(graph_or_edges: Any) -> tuple[np.ndarray, np.ndarray]:
    """Node ids ``(n,)`` and the unique undirected edges as sorted index pairs ``(m, 2)`` int64, ``u < v``."""
    if hasattr(graph_or_edges, "indptr") and hasattr(graph_or_edges, "indices"):
        indptr = np.asarray(graph_or_edges.indptr, dtype=np.int64)
        ids = np.asarray(graph_or_edges.nodes)
        src = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
        dst = np.asarray(graph_or_edges.indices, dtype=np.int64)
        source = "graph"
    else:
        edges = np.asarray(graph_or_edges)
        if edges.ndim != 2 or edges.shape[1] != 2:
            raise DataError(f"edges must be an array of node pairs (m, 2), got shape {edges.shape}")
        ids, inverse = np.unique(edges.ravel(), return_inverse=True)
        src, dst = inverse.reshape(-1, 2).astype(np.int64).T
        source = "edges"
    n = ids.size
    keep = src != dst
    codes = np.unique(np.minimum(src, dst)[keep] * n + np.maximum(src, dst)[keep])
    if codes.size == 0:
        raise DataError(f"{source} has no edge between two distinct nodes")
    return ids, np.stack([codes // n, codes % n], axis=1)


def _id_rows(ids: np.ndarray, values: np.ndarray, source: str) -> np.ndarray:
    """Index of each id in ``ids``; an unknown id raises NotFoundError."""
    order = np.argsort(ids, kind="stable")
    pos = np.clip(np.searchsorted(ids[order], values), 0, ids.size - 1)
    found = ids[order][pos] == values
    if not found.all():
        bad = int(np.argmin(found))
        raise NotFoundError(f"{source}: node {values[bad : bad + 1].tolist()[0]!r} is not in the graph")
    return order[pos].astype(np.int64)


def _non_edge_pairs(n: int, sorted_codes: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct index pairs ``(count, 2)``, ``u < v``, whose codes ``u * n + v`` are not in ``sorted_codes``."""
    available = n * (n - 1) // 2 - sorted_codes.size
    if count > available:
        raise DataError(f"edges: asked for {count} non-edges but the graph has only {available}")
    chosen = np.zeros(0, dtype=np.int64)
    while chosen.size < count:
        # Rejection sampling in batches: draw pairs, drop self-pairs, edges and repeats.
        batch = 2 * (count - chosen.size) + 64
        a, b = rng.integers(0, n, size=(2, batch), dtype=np.int64)
        a, b = a[a != b], b[a != b]
        codes = np.minimum(a, b) * n + np.maximum(a, b)
        pos = np.clip(np.searchsorted(sorted_codes, codes), 0, sorted_codes.size - 1)
        codes = codes[sorted_codes[pos] != codes]
        codes = np.concatenate([chosen, codes])
        _, first = np.unique(codes, return_index=True)
        chosen = codes[np.sort(first)][:count]
    return np.stack([chosen // n, chosen % n], axis=1)
