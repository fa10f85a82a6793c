"""Fitted tree ensembles as plain node arrays, evaluated with numpy (nothing pickled).

Two ensembles over raw inputs ``u`` (float64 ``[n, d]``), both exported from scikit-learn and
predicting exactly what its ``predict_proba`` does (fraud class):

- :class:`Forest` (a ``RandomForestClassifier``): ``P(fraud | u) = (1/T) sum_k p_k(leaf_k(u))``,
  the mean over the ``T`` trees of the fraud share of the training samples in the leaf ``u``
  falls into; the input is cast to float32 before the comparisons, as scikit-learn does.
- :class:`Boosted` (a ``HistGradientBoostingClassifier`` with the log loss):
  ``P(fraud | u) = sigmoid(b + sum_k v_k(leaf_k(u)))``, ``b`` the baseline log-odds and ``v_k`` the
  leaf values of the ``k``-th boosting round's tree; comparisons in float64, a NaN input follows
  the node's ``missing_left``.

All trees are concatenated with global node ids: ``roots[k]`` is tree ``k``'s root; at node ``i``,
``feature[i] < 0`` marks a leaf, else the step goes to ``left[i]`` when ``u[feature[i]] <=
threshold[i]`` and to ``right[i]`` otherwise. A child's id is always above its parent's, which
:meth:`Trees.check` enforces (no cycles in a file read back).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from embeddings.errors import DataError

PREDICT_CHUNK = 65536  # rows scored at once (bounds the [rows, trees] node matrix)
INDEX = {"roots": np.int64, "feature": np.int32, "left": np.int64, "right": np.int64}


@dataclass
class Trees:
    """Node arrays shared by both ensembles (see the module doc)."""

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    kind: ClassVar[str] = "trees"

    @classmethod
    def arrays(cls) -> tuple[str, ...]:
        """The names of the arrays a file of this ensemble holds."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def load(cls, path: Path, n_inputs: int) -> Trees:
        """Read the arrays written by :meth:`save` (``allow_pickle=False``) and :meth:`check` them."""
        if not path.is_file():
            raise DataError(f"{path}: missing (a {cls.kind} model keeps its trees there)")
        try:
            with np.load(path, allow_pickle=False) as data:
                trees = cls(**{k: np.asarray(data[k]) for k in cls.arrays()})
        except (KeyError, ValueError, OSError) as exc:
            raise DataError(f"{path}: malformed {cls.kind} ({exc})") from exc
        trees.check(n_inputs, path)
        return trees

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **{k: getattr(self, k) for k in self.arrays()})

    def check(self, n_inputs: int, source: Path) -> None:
        """Raise :class:`DataError` unless the arrays form valid trees over ``n_inputs`` inputs."""
        n = self.feature.size
        nodes = [getattr(self, k) for k in self.arrays() if k not in ("roots", "baseline")]
        if any(a.ndim != 1 for a in nodes + [self.roots]) or any(a.size != n for a in nodes) or not self.roots.size:
            raise DataError(f"{source}: {self.kind} arrays must be 1-D, node arrays of one length, at least one tree")
        if not all(np.issubdtype(getattr(self, k).dtype, np.integer) for k in INDEX):
            raise DataError(f"{source}: {self.kind} node ids and input indices must be integers")
        if (self.feature >= n_inputs).any() or ((self.roots < 0) | (self.roots >= n)).any():
            raise DataError(f"{source}: {self.kind} refers to inputs or nodes that do not exist")
        if not all(np.isfinite(a).all() for a in nodes if np.issubdtype(a.dtype, np.floating)):
            raise DataError(f"{source}: {self.kind} thresholds and leaf values must be finite")
        inner = self.feature >= 0
        parents = np.flatnonzero(inner)
        for child in (self.left[inner], self.right[inner]):  # child ids above the parent's: no cycles
            if ((child <= parents) | (child >= n)).any():
                raise DataError(f"{source}: {self.kind} children must be node ids after their parent's")

    def leaves(self, x: np.ndarray, missing_left: np.ndarray | None = None) -> np.ndarray:
        """The leaf each row of ``x [n, d]`` reaches in each tree, int64 ``[n, trees]``."""
        node = np.broadcast_to(self.roots, (x.shape[0], self.roots.size)).copy()
        rows = np.arange(x.shape[0])[:, None]
        while True:
            feature = self.feature[node]
            inner = feature >= 0
            if not inner.any():
                return node
            value = x[rows, np.maximum(feature, 0)]
            go_left = value <= self.threshold[node]
            if missing_left is not None:
                go_left |= np.isnan(value) & missing_left[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """``P(fraud)`` float64 ``[n]`` for raw inputs ``[n, d]``, in chunks (bounded memory, not a row loop)."""
        out = np.empty(inputs.shape[0], dtype=np.float64)
        for start in range(0, inputs.shape[0], PREDICT_CHUNK):
            chunk = inputs[start : start + PREDICT_CHUNK]
            out[start : start + chunk.shape[0]] = self._predict(chunk)
        return out

    def _predict(self, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _concatenate(trees: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-tree arrays (local node ids, leaves marked ``feature < 0``) -> one set with global node ids."""
    offsets = np.cumsum([0] + [t["feature"].size for t in trees[:-1]])
    out = {"roots": offsets}
    for k in trees[0]:
        if k in ("left", "right"):
            out[k] = np.concatenate([np.where(t["feature"] < 0, -1, t[k] + o) for t, o in zip(trees, offsets)])
        else:
            out[k] = np.concatenate([t[k] for t in trees])
    return {k: v.astype(INDEX.get(k, np.bool_ if v.dtype == np.bool_ else np.float64)) for k, v in out.items()}


@dataclass
class Forest(Trees):
    """A random forest; ``fraud_share[i]``: the fraud share of the training samples in node ``i``."""

    fraud_share: np.ndarray
    kind: ClassVar[str] = "forest"

    @classmethod
    def from_sklearn(cls, forest: RandomForestClassifier) -> Forest:
        fraud = int(np.flatnonzero(forest.classes_ == 1)[0])
        trees = []
        for estimator in forest.estimators_:
            tree = estimator.tree_
            leaf = tree.children_left < 0
            value = tree.value[:, 0, :]
            trees.append({
                "feature": np.where(leaf, -1, tree.feature),
                "threshold": np.where(leaf, 0.0, tree.threshold),
                "left": tree.children_left,
                "right": tree.children_right,
                "fraud_share": value[:, fraud] / value.sum(axis=1),
            })  # fmt: skip
        return cls(**_concatenate(trees))

    def check(self, n_inputs: int, source: Path) -> None:
        super().check(n_inputs, source)
        if not ((self.fraud_share >= 0) & (self.fraud_share <= 1)).all():
            raise DataError(f"{source}: forest fraud shares must be in [0, 1]")

    def _predict(self, inputs: np.ndarray) -> np.ndarray:
        x = inputs.astype(np.float32).astype(np.float64)
        return self.fraud_share[self.leaves(x)].mean(axis=1)


@dataclass
class Boosted(Trees):
    """Gradient-boosted trees; ``value[i]``: leaf ``i``'s log-odds step (0 at inner nodes),
    ``missing_left[i]``: where a NaN input goes, ``baseline``: the initial log-odds (0-d array)."""

    value: np.ndarray
    missing_left: np.ndarray
    baseline: np.ndarray
    kind: ClassVar[str] = "boosted trees"

    @classmethod
    def from_sklearn(cls, model: HistGradientBoostingClassifier) -> Boosted:
        if model.n_trees_per_iteration_ != 1 or list(model.classes_) != [0, 1]:
            raise ValueError("expected a binary HistGradientBoostingClassifier on labels 0 and 1")
        trees = []
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            trees.append({
                "feature": np.where(leaf, -1, nodes["feature_idx"]),
                "threshold": np.where(leaf, 0.0, nodes["num_threshold"]),
                "left": nodes["left"].astype(np.int64),
                "right": nodes["right"].astype(np.int64),
                "value": np.where(leaf, nodes["value"], 0.0),
                "missing_left": nodes["missing_go_to_left"].astype(bool),
            })  # fmt: skip
        baseline = np.asarray(float(model._baseline_prediction.ravel()[0]))
        return cls(**_concatenate(trees), baseline=baseline)

    def check(self, n_inputs: int, source: Path) -> None:
        super().check(n_inputs, source)
        if self.baseline.shape != () or not np.isfinite(self.baseline) or self.missing_left.dtype != np.bool_:
            raise DataError(f"{source}: boosted trees need a finite scalar baseline and boolean missing_left")

    def _predict(self, inputs: np.ndarray) -> np.ndarray:
        values = self.value[self.leaves(inputs.astype(np.float64), self.missing_left)]
        raw = np.full(inputs.shape[0], float(self.baseline))
        for k in range(values.shape[1]):  # round by round, as scikit-learn sums them (a loop over trees)
            raw += values[:, k]
        return expit(raw)
