"""Why an alert: which steps and features carried the reconstruction error, and which past
confirmed frauds its window resembles.

With ``x_{i,f}`` the standardised feature ``f`` of step ``i`` of a window and ``y_{i,f}`` its
reconstruction by the :class:`~fraud.autoencoder.SequenceAutoencoder`, the per-feature error is
``d_{i,f} = (y_{i,f} - x_{i,f})^2`` and the model's per-step error is ``e_i = mean_f d_{i,f}``
(the step score is ``e_L`` of the window ending at the step). :func:`feature_errors` returns
``d`` for windows ending at given rows; :func:`explain` ranks the window's steps by ``e_i`` and
the alerted step's features by ``d_{L,f}`` (a feature's *share* is ``d_{L,f} / (F e_L)``, so the
shares of a step sum to 1).

:class:`FraudNeighbours` indexes the bottleneck vectors ``z`` of the windows ending at confirmed
fraud steps (a cosine :class:`~embeddings.index.VectorIndex`) and finds, for a new alert, the
confirmed frauds whose windows the encoder summarised most alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embeddings.checks import check_int
from embeddings.errors import ConfigError
from embeddings.index import VectorIndex
from fraud.autoencoder import SequenceAutoencoder, window_batches
from fraud.features import VECTOR_PREFIX, Features

VECTOR_FEATURE = "counterparty_vector"  # the counterparty vector columns, named as one feature in explanations


def _rows(features: Features, rows: object) -> np.ndarray:
    """Rows as int64 ``(m,)`` within ``0 .. n_steps - 1``."""
    values = np.atleast_1d(np.asarray(rows))
    if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
        raise ConfigError(f"rows must be integer step rows of the features, got {values.dtype} {values.shape}")
    values = values.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() >= features.n_steps):
        bad = int(values[(values < 0) | (values >= features.n_steps)][0])
        raise ConfigError(f"row {bad} is outside the features (0 .. {features.n_steps - 1})")
    return values


@torch.no_grad()
def feature_errors(model: SequenceAutoencoder, features: Features, rows: object) -> np.ndarray:
    """Per-step, per-feature squared errors ``d_{i,f}`` of the windows ending at ``rows``.

    float32 ``[len(rows), L, n_features]``; position ``L - 1`` is the row itself, ``L - 1 - k``
    the step ``k`` before it; NaN on padding (before the entity's first step). Weighted by the
    model's ``weights`` (``d @ model.weights``) they give :func:`~fraud.autoencoder.window_errors` of those rows.
    """
    rows = _rows(features, rows)
    out = np.empty((rows.size, model.config.window, model.n_features), dtype=np.float32)
    for part, _, x, mask in window_batches(model, features, rows):
        d = (model(x, mask) - x) ** 2
        out[part] = torch.where(mask.unsqueeze(-1) > 0, d, torch.nan).cpu().numpy()
    return out


@torch.no_grad()
def embed_rows(model: SequenceAutoencoder, features: Features, rows: object) -> np.ndarray:
    """Bottleneck vectors of the windows ending at ``rows``, float32 ``[len(rows), bottleneck]``
    (the rows of :func:`~fraud.autoencoder.embed_windows`, without embedding every step)."""
    rows = _rows(features, rows)
    out = np.empty((rows.size, model.config.bottleneck), dtype=np.float32)
    for part, _, x, mask in window_batches(model, features, rows):
        out[part] = model.encode(x, mask).cpu().numpy()
    return out


@dataclass(frozen=True)
class StepContribution:
    """One step of an explained window: ``row`` (features row), ``source_row`` (the
    transaction's row in its source), ``lag`` (0 = the alerted step, ``k`` = ``k`` steps
    before), ``error`` (``e_i``), ``share`` (of the window's total error) and the step's
    top ``features`` as ``(name, d_{i,f}, share of the step's error)``."""

    row: int
    source_row: int
    lag: int
    error: float
    share: float
    features: list[tuple[str, float, float]]


@dataclass(frozen=True)
class Explanation:
    """Why the step at ``row`` scored ``score``.

    - ``entity``: its entity; ``window_rows`` / ``source_rows``: the window's real steps
      (features rows / source rows), oldest first, ending at ``row``;
    - ``step_errors`` ``(w,)`` and ``errors`` ``(w, n_features)``: ``e_i`` and ``d_{i,f}`` of
      those steps; ``feature_names``: the columns of ``errors``;
    - ``steps``: the ``top_steps`` steps with the largest ``e_i``, largest first;
    - ``features``: the alerted step's ``top_features`` features as ``(name, d, share)``: the
      features whose weighted errors ``w_f d_f`` carry the largest shares of ``e`` (the
      counterparty vector's columns together as :data:`VECTOR_FEATURE`).
    """

    row: int
    entity: Any
    score: float
    window_rows: np.ndarray
    source_rows: np.ndarray
    step_errors: np.ndarray
    errors: np.ndarray
    feature_names: list[str]
    steps: list[StepContribution]
    features: list[tuple[str, float, float]]

    @property
    def top_feature_names(self) -> list[str]:
        return [name for name, _, _ in self.features]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no matrices)."""
        entity = self.entity.item() if isinstance(self.entity, np.generic) else self.entity
        return {
            "row": self.row,
            "entity": entity,
            "score": self.score,
            "window_rows": self.window_rows.tolist(),
            "source_rows": self.source_rows.tolist(),
            "step_errors": self.step_errors.tolist(),
            "steps": [
                {
                    "row": s.row,
                    "source_row": s.source_row,
                    "lag": s.lag,
                    "error": s.error,
                    "share": s.share,
                    "features": [list(f) for f in s.features],
                }
                for s in self.steps
            ],
            "features": [list(f) for f in self.features],
        }


def _top_features(names: list[str], d: np.ndarray, weights: np.ndarray, k: int) -> list[tuple[str, float, float]]:
    """The ``k`` features carrying most of a step's error ``e = sum_f w_f d_f``: ``(name, d, share)``,
    share ``= w_f d_f / e``. The counterparty vector's columns count as one feature,
    :data:`VECTOR_FEATURE`, with ``d`` their mean (as they count once in the error)."""
    vector = np.array([name.startswith(VECTOR_PREFIX) for name in names], dtype=bool)
    labels = [name for name, v in zip(names, vector) if not v]
    squared = d[~vector]
    carried = weights[~vector] * squared
    if vector.any():
        labels.append(VECTOR_FEATURE)
        squared = np.append(squared, d[vector].mean())
        carried = np.append(carried, (weights[vector] * d[vector]).sum())
    total = float(carried.sum())
    order = np.argsort(-carried, kind="stable")[:k]
    return [(labels[j], float(squared[j]), float(carried[j]) / total if total > 0 else 0.0) for j in order]


def explain(
    model: SequenceAutoencoder, features: Features, row: int, top_steps: int = 3, top_features: int = 3
) -> Explanation:
    """Explain the score of the step at features row ``row`` (see the module doc)."""
    check_int("top_steps", top_steps)
    check_int("top_features", top_features)
    if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
        raise ConfigError(f"row must be an integer step row, got {row!r}")
    row = int(_rows(features, [row])[0])
    d = feature_errors(model, features, [row])[0]  # [L, F]
    length = d.shape[0]
    real = np.isfinite(d[:, 0])
    d = d[real].astype(np.float64)
    lags = (length - 1 - np.flatnonzero(real)).astype(np.int64)
    window_rows = row - lags
    source = features.frame["row"].to_numpy()[window_rows]
    weights = model.weights.cpu().numpy().astype(np.float64)
    step_errors = d @ weights
    total = float(step_errors.sum())
    names = list(features.names)
    steps = []
    for i in np.argsort(-step_errors, kind="stable")[:top_steps]:
        steps.append(
            StepContribution(
                row=int(window_rows[i]),
                source_row=int(source[i]),
                lag=int(lags[i]),
                error=float(step_errors[i]),
                share=float(step_errors[i]) / total if total > 0 else 0.0,
                features=_top_features(names, d[i], weights, top_features),
            )
        )
    return Explanation(
        row=row,
        entity=features.frame["entity"][row],
        score=float(step_errors[-1]),
        window_rows=window_rows,
        source_rows=source,
        step_errors=step_errors,
        errors=d,
        feature_names=names,
        steps=steps,
        features=_top_features(names, d[-1], weights, top_features),
    )


class FraudNeighbours:
    """A cosine :class:`VectorIndex` over the window embeddings of confirmed fraud steps.

    Keys are the ``keys`` given at :meth:`build` (by default the features rows of the frauds;
    pass stable ids such as source rows or transaction ids when queries come from other
    :class:`Features`).
    """

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    @classmethod
    def build(
        cls,
        model: SequenceAutoencoder,
        features: Features,
        rows: object,
        keys: Iterable[Any] | np.ndarray | None = None,
        kind: str = "exact",
        device: str = "auto",
    ) -> FraudNeighbours:
        """Index the windows ending at confirmed fraud ``rows`` (features rows, at least one)."""
        rows = _rows(features, rows)
        if rows.size == 0:
            raise ConfigError("FraudNeighbours needs at least one confirmed fraud row")
        keys = rows if keys is None else keys
        vectors = embed_rows(model, features, rows)
        return cls(VectorIndex.build(keys, vectors, kind=kind, metric="cosine", device=device))

    def __len__(self) -> int:
        return len(self.index)

    def nearest(
        self, model: SequenceAutoencoder, features: Features, rows: object, k: int = 5
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` confirmed frauds most similar to the windows ending at ``rows``.

        Returns ``keys`` (object ``[len(rows), k]``, ``None`` past the index size) and cosine
        ``similarity`` (float32 ``[len(rows), k]``, best first, ``-inf`` for padding).
        """
        check_int("k", k)
        vectors = embed_rows(model, features, rows)
        if vectors.shape[0] == 0:
            return np.empty((0, k), dtype=object), np.empty((0, k), dtype=np.float32)
        return self.index.search(vectors, k)
