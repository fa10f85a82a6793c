"""The job behind ``seqemb train-semi``: the semi-supervised model retrained from analysts' labels.

Analysts label alerts in the dashboard (or through :func:`fraud.labels.record_label`); each
label names a transaction. :func:`run_train_semi` reads the labels from the store, joins them to
the steps of a transaction source scored by a trained :class:`~fraud.model.FraudModel` (each
entity with its history, so the autoencoder's inputs are the ones batch scoring sees), fits
:func:`fraud.semi.train_semi` on the labelled steps, saves the model directory and records a run
of kind ``semi_model`` whose metrics say how many labels matched a transaction of the source.

Run it after a day of labelling: the unsupervised score stays what it is, and the semi-supervised
probability learns what the analysts confirmed. With ``SemiConfig(use_counterparty_labels=True)``
(``seqemb train-semi --counterparty-labels``) every step also reads its counterparty's label
history (:mod:`fraud.counterparty_labels`), each label known from the time it was recorded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from embeddings.errors import DataError
from embeddings.settings import models_dir
from embeddings.sources import Source, describe_source
from embeddings.store import Store
from fraud.counterparty_labels import counterparty_label_history
from fraud.features import Features, step_features
from fraud.labels import read_labels
from fraud.model import FraudModel
from fraud.semi import SemiConfig, SemiModel, step_labels, train_semi

SEMI_MODEL_KIND = "semi_model"


@dataclass
class SemiJob:
    """What ``seqemb train-semi`` trains on: the fraud model directory whose autoencoder feeds the
    semi-supervised model, and the classifier's settings."""

    fraud_model: str
    config: SemiConfig = field(default_factory=SemiConfig)


def run_train_semi(
    source: Source,
    job: SemiJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
) -> tuple[SemiModel, str, Path]:
    """Fit the semi-supervised model on the store's labels over ``source``; save it to ``out``
    (default ``$SEQEMB_HOME/models/semi_model-<run id>``); return ``(model, run id, path)``.

    Raises :class:`DataError` (one line, nothing recorded) when the store holds no labels or none
    of them names a transaction of ``source``.
    """
    labels = read_labels(store)
    if labels.height == 0:
        raise DataError(
            f"the store at {store.url} holds no analyst labels: label alerts in the dashboard (seqemb ui) first"
        )
    fraud = FraudModel.load(job.fraud_model)
    frame = fraud.read(source, table=table, query=query)
    features = step_features(frame, fraud.counterparty)
    per_step = step_labels(features, frame.sort("row")["txn_id"], labels)
    matched = int((per_step >= 0).sum())
    if matched == 0:
        raise DataError(
            f"{describe_source(source, table=table, query=query)}: none of the store's {labels.height:,} "
            "labelled transactions is in it (labels name transactions by the fraud model's transaction id)"
        )
    history = store_label_history(frame, features, labels) if job.config.use_counterparty_labels else None
    with store.run(SEMI_MODEL_KIND, asdict(job)) as run:
        model = train_semi(fraud.autoencoder, features, per_step, job.config, history)
        path = model.save(out if out is not None else models_dir() / f"{SEMI_MODEL_KIND}-{run.id}")
        run.log_metrics(
            {
                "labels": labels.height,
                "labelled_transactions": matched,
                "labels_not_in_source": labels.height - matched,
                "frauds": model.n_fraud,
                "genuine": model.n_labelled - model.n_fraud,
            }
        )
        run.artifact_path = str(path)
    return model, run.id, path


def store_label_history(frame: pl.DataFrame, features: Features, labels: pl.DataFrame) -> np.ndarray:
    """The counterparty label history (:func:`fraud.counterparty_labels.counterparty_label_history`)
    of every step of ``features``, float64 ``[n_steps, 4]``: ``frame`` is the source as
    :meth:`FraudModel.read` returns it, ``labels`` the store's (:func:`fraud.labels.read_labels`),
    each known from its ``created_at``."""
    steps = frame.select("row", "counterparty", "ts").sort("row")[features.frame["row"].to_numpy()]
    labelled = labels.join(frame.select("txn_id", "counterparty", "ts"), on="txn_id").select(
        "counterparty", "ts", "is_fraud", known_at="created_at"
    )
    return counterparty_label_history(steps, labelled)
