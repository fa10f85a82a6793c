"""An alert's card timeline: each transaction's reconstruction error, what drove the alert, and the
past confirmed frauds its window resembles.

For the card of an alert, the card's newest :data:`HISTORY` transactions are featurised with
the scoring model (causal features, so each step sees only the card's earlier steps) and each
step gets the model's step error ``e_t`` (the reconstruction error of the step as the last step of
its window, as :func:`fraud.autoencoder.score_steps` defines it), shown relative to a typical genuine
step (:meth:`fraud.model.FraudModel.relative_errors`: a card's first steps are compared with other
first steps), and its calibrated score. The
alerted step is explained with :func:`fraud.explain.explain` (its top features by squared error)
and matched against :class:`fraud.explain.FraudNeighbours` built over the windows of known frauds
(analyst-confirmed, or flagged in the data) of other cards.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Lock

import numpy as np
import polars as pl

from embeddings.errors import NotFoundError
from embeddings.store import Store
from fraud.autoencoder import score_steps
from fraud.explain import FraudNeighbours, explain
from fraud.features import Features, step_features
from fraud.model import FraudModel
from ui.dashboard import queries

HISTORY = 2000  # newest transactions of a card shown and featurised
NEIGHBOUR_FRAUDS = 1000  # newest known frauds indexed for the neighbour search


@dataclass(frozen=True)
class Timeline:
    """``steps``: the card's transactions oldest first with ``step`` (0-based), ``error`` (``e_t``
    over a typical genuine step's),
    ``score`` (calibrated), ``status`` ("alert" / "flagged" / "normal"), and ``fraud_kind`` where
    the data has one; ``alert_step``: the alerted transaction's step; ``drivers``: the alerted
    step's top features ``(feature, squared error, share)``; ``neighbours``: similar known frauds."""

    steps: pl.DataFrame
    alert_step: int
    drivers: pl.DataFrame
    neighbours: pl.DataFrame

    def top_steps(self, k: int = 10) -> pl.DataFrame:
        """The ``k`` most anomalous steps, most first: by calibrated score, ties (scores saturate
        at 1) by relative error."""
        return self.steps.sort(["score", "error", "step"], descending=[True, True, False]).head(k)


def _featurise(model: FraudModel, transactions: pl.DataFrame) -> tuple[Features, pl.DataFrame]:
    """Features of ``transactions`` and, per features row, its ``txn_id``."""
    read = model.read(transactions)
    features = step_features(read, model.counterparty)
    ids = features.frame.select("row").join(read.select("row", "txn_id"), on="row", how="left", maintain_order="left")
    return features, ids


def card_timeline(
    store: Store,
    model: FraudModel,
    card_id: str,
    txn_id: str,
    threshold: float,
    neighbours: FraudNeighbours | None = None,
    keys: pl.DataFrame | None = None,
    k: int = 5,
) -> Timeline:
    """The timeline of ``card_id`` around its alerted transaction ``txn_id`` (see the module doc).

    ``neighbours`` / ``keys`` (from :class:`NeighbourCache`) add the ``k`` most similar known
    frauds of other cards: ``txn_id, card_id, fraud_kind, source, similarity``.
    """
    transactions = queries.card_transactions(store, card_id, HISTORY)
    if transactions.height == 0:
        raise NotFoundError(f"card {card_id!r} has no transactions in the store")
    features, ids = _featurise(model, transactions)
    raw = score_steps(model.autoencoder, features).astype(np.float64)
    before = features.steps_before()
    steps = (
        ids.with_columns(
            step=pl.int_range(pl.len()),
            error=pl.Series(model.relative_errors(raw, before)),
            score=pl.Series(model.calibrate(raw, before)),
        )
        .join(
            transactions.select("txn_id", "ts", "merchant_id", "amount", "category", "fraud_kind"),
            on="txn_id",
            how="left",
            maintain_order="left",
        )
        .with_columns(
            status=pl.when(pl.col("txn_id") == txn_id)
            .then(pl.lit("alert"))
            .when(pl.col("score") >= threshold)
            .then(pl.lit("flagged"))
            .otherwise(pl.lit("normal"))
        )
        .select("step", "ts", "txn_id", "merchant_id", "category", "amount", "error", "score", "status", "fraud_kind")
    )
    hits = steps["txn_id"].eq(txn_id).arg_true()
    if hits.len() == 0:
        raise NotFoundError(f"transaction {txn_id!r} is not among card {card_id!r}'s newest {HISTORY} transactions")
    row = int(hits[0])
    why = explain(model.autoencoder, features, row, top_steps=3, top_features=6)
    drivers = pl.DataFrame(why.features, schema=["feature", "squared error", "share"], orient="row")
    similar = _similar_frauds(model, features, row, card_id, neighbours, keys, k)
    return Timeline(steps, row, drivers, similar)


def _similar_frauds(
    model: FraudModel,
    features: Features,
    row: int,
    card_id: str,
    index: FraudNeighbours | None,
    keys: pl.DataFrame | None,
    k: int,
) -> pl.DataFrame:
    empty = pl.DataFrame(
        schema={
            "txn_id": pl.String,
            "card_id": pl.String,
            "fraud_kind": pl.String,
            "source": pl.String,
            "similarity": pl.Float64,
        }
    )
    if index is None or keys is None:
        return empty
    # Ask for extra neighbours: the card's own frauds are left out afterwards.
    own = int(keys["card_id"].eq(card_id).sum())
    found, similarity = index.nearest(model.autoencoder, features, [row], k=min(k + own, len(index)))
    hits = pl.DataFrame(
        {"txn_id": [None if f is None else str(f) for f in found[0]], "similarity": similarity[0].astype(np.float64)}
    ).drop_nulls("txn_id")
    return (
        hits.join(keys, on="txn_id", how="left", maintain_order="left")
        .filter(pl.col("card_id") != card_id)
        .head(k)
        .select("txn_id", "card_id", "fraud_kind", "source", pl.col("similarity").round(4))
    )


class NeighbourCache:
    """:class:`FraudNeighbours` per fraud model, rebuilt when the set of known frauds changes."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._built: dict[str, tuple[int, FraudNeighbours | None, pl.DataFrame]] = {}

    def get(self, store: Store, model: FraudModel, path: str) -> tuple[FraudNeighbours | None, pl.DataFrame]:
        """The index over the newest :data:`NEIGHBOUR_FRAUDS` known frauds and their ``txn_id,
        card_id, fraud_kind, source`` rows (``None`` and an empty frame when there are none)."""
        frauds = queries.confirmed_frauds(store, NEIGHBOUR_FRAUDS)
        stamp = hash(tuple(frauds["txn_id"].to_list()))
        with self._lock:
            cached = self._built.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1], cached[2]
            keys = frauds.select("txn_id", "card_id", "fraud_kind", "source")
            index = None
            if frauds.height:
                history = queries.transactions_of_cards(store, frauds["card_id"].unique().to_list())
                features, ids = _featurise(model, history)
                rows = ids["txn_id"].is_in(frauds["txn_id"].implode()).arg_true().to_numpy()
                if rows.size:
                    index = FraudNeighbours.build(
                        model.autoencoder, features, rows, keys=ids["txn_id"].gather(rows).to_list()
                    )
            self._built[path] = (stamp, index, keys)
            return index, keys
