"""The fraud training jobs: ``seqemb train-fraud`` and ``seqemb train-semi`` (and the demo);
``seqemb score`` is :mod:`fraud.jobs.scoring`.

Each records its run in the store (``with store.run(...)``: failed on any exception, succeeded
at the end) and returns a :class:`~embeddings.store.runs.JobResult`.

:func:`run_train_fraud` trains a :class:`~fraud.model.FraudModel` (the store's analyst labels keep
confirmed frauds out of training) and saves it as the run's model directory.

:func:`run_train_semi` retrains the semi-supervised model from the analysts' labels: it joins
the store's labels to the steps of a transaction source scored by a trained fraud model (each
entity with its history, so the autoencoder's inputs are the ones batch scoring sees) and fits
:func:`fraud.semi.train_semi` on the labelled steps. With
``SemiConfig(use_counterparty_labels=True)`` every step also reads its counterparty's label
history (:mod:`fraud.counterparty_labels`), each label known from the time it was recorded.
"""

from __future__ import annotations

import os
from dataclasses import asdict

import numpy as np
import polars as pl

from embeddings.errors import DataError
from embeddings.files import check_output_dir
from embeddings.model import EmbeddingModel
from embeddings.sources import Source, describe_source
from embeddings.store import Store
from embeddings.store.runs import JobResult
from fraud.config import (
    FRAUD_MODEL_KIND,
    SEMI_MODEL_KIND,
    FraudJob,
    SemiJob,
)
from fraud.counterparty_labels import counterparty_label_history
from fraud.features import Features, step_features
from fraud.labels import read_labels
from fraud.model import FraudModel, train_fraud_model
from fraud.semi import SemiModel, step_labels, train_semi


def run_train_fraud(
    source: Source,
    job: FraudJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
) -> JobResult[FraudModel] | None:
    """Train on ``source``, save to ``out`` (default ``$SEQEMB_HOME/models/fraud_model-<run id>``)
    and record a run of kind ``fraud_model``. On a follower node of a launch across hosts
    (``job.launch``) it reads and trains its share, and records and saves nothing (None)."""
    vectors = None
    if job.counterparty_vectors is not None:
        vectors = EmbeddingModel.load(job.counterparty_vectors).embeddings

    def train() -> FraudModel | None:
        labels = read_labels(store) if job.analyst_labels else None
        return train_fraud_model(
            source, job.schema, job.config, vectors, table=table, query=query, analyst_labels=labels, launch=job.launch
        )

    if job.launch.follower:
        train()
        return None
    check_output_dir(out)
    with store.run(FRAUD_MODEL_KIND, asdict(job)) as run:
        model = train()
        path = run.save_model(model, out)
        run.log_metrics({**model.metrics, "workers": job.launch.workers})
    return JobResult(run.id, store.get_run(run.id)["metrics"], model, path)


def run_train_semi(
    source: Source,
    job: SemiJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
) -> JobResult[SemiModel]:
    """Fit the semi-supervised model on the store's labels over ``source``; save it to ``out``
    (default ``$SEQEMB_HOME/models/semi_model-<run id>``) and record a run of kind ``semi_model``
    whose metrics say how many labels matched a transaction of the source.

    Raises :class:`DataError` (one line, nothing recorded) when the store holds no labels or none
    of them names a transaction of ``source``.
    """
    check_output_dir(out)
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
        path = run.save_model(model, out)
        run.log_metrics(
            {
                "labels": labels.height,
                "labelled_transactions": matched,
                "labels_not_in_source": labels.height - matched,
                "frauds": model.n_fraud,
                "genuine": model.n_labelled - model.n_fraud,
            }
        )
    return JobResult(run.id, store.get_run(run.id)["metrics"], model, path)


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
