"""A trained fraud model in one object and one directory: schema + autoencoder + calibration.

:func:`train_fraud_model` reads transactions, computes strictly causal step features
(:mod:`fraud.features`), trains the :class:`~fraud.autoencoder.SequenceAutoencoder` on the
genuine windows of the first 80 % of the time span, and fits the
:class:`~fraud.calibrate.Calibration` on the raw scores of the genuine steps of the last 20 %
(the validation slice: later in time than everything the autoencoder was fitted on). Because
features and scores are causal, training on the time prefix is the same as training on the
transactions that existed at the cut-off.

Steps whose window is not yet full (an entity's first ``L - 1`` transactions) are read
against their own kind: a card's first transaction has no habits to break, reconstructs
worse than a step with history, and would otherwise flood the alerts of a new portfolio. Each
cold position ``k = 0 .. L - 2`` (``k`` earlier steps) gets its own *cold* calibration, fitted on
every genuine step at that position (the validation slice alone holds too few of them: by then
most entities have a history); a position with fewer than :data:`MIN_COLD_STEPS` genuine steps
keeps the main calibration.

Analysts' labels (:mod:`fraud.labels`) count as known labels: a transaction an analyst
confirmed as fraud leaves the training windows and the calibration sample, one they marked a
false positive stays in both (it is genuine behaviour the model should learn to reconstruct);
an analyst's label overrides the source's label column. :func:`fraud.jobs.run_train_fraud` reads
them from its store.

:meth:`FraudModel.score` gives every transaction a raw score (the reconstruction error of the
step as the last step of its window) and a calibrated one in ``[0, 1]`` (the share of genuine
validation steps that scored lower).

A saved model is a directory: ``fraud_model.json`` (schema, transaction id column, config,
validation cut-off), ``calibration.json``, ``cold_calibration.json`` (one per cold position, null where not fitted), ``autoencoder/`` (config JSON + weights loaded with
``weights_only=True``) and, when the features used counterparty vectors, ``counterparty/``.
:func:`fraud.jobs.run_train_fraud` is the job behind ``seqemb train-fraud``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import polars as pl

from embeddings import ddp
from embeddings.data import bad_row, check_ids
from embeddings.device import resolve_device
from embeddings.errors import ConfigError, DataError, RowError, missing_column
from embeddings.files import atomic_directory, format_tag, read_json, read_manifest
from embeddings.launch import Launch
from embeddings.sources import SOURCE_ROW, Source, describe_source, read_keys, read_table
from embeddings.vectors import Embeddings
from fraud.autoencoder import SequenceAutoencoder, load_autoencoder, save_autoencoder, score_steps, train_autoencoder
from fraud.calibrate import Calibration
from fraud.config import FraudModelConfig, TransactionSchema
from fraud.features import read_transactions, step_features

MODEL_FILE = "fraud_model.json"
CALIBRATION_FILE = "calibration.json"
COLD_CALIBRATION_FILE = "cold_calibration.json"
MIN_COLD_STEPS = 100  # fewer genuine steps at a cold position than this: it keeps the main calibration
AUTOENCODER_DIR = "autoencoder"
COUNTERPARTY_DIR = "counterparty"
FORMAT = format_tag("fraud_model", 1)


def read_scoring_transactions(
    source: Source,
    schema: TransactionSchema,
    transaction_id: str | None = None,
    *,
    table: str | None = None,
    query: str | None = None,
) -> pl.DataFrame:
    """:func:`read_transactions` plus a ``txn_id`` column (String): the ``transaction_id``
    column's values (non-null, unique), else the 0-based source row as text.

    Bad data raises the data layer's one-line :class:`DataError` naming the source, the
    column and the row.
    """
    name = describe_source(source, table=table, query=query)
    raw = read_table(source, table=table, query=query, text_columns=scoring_text_columns(schema, transaction_id))
    frame = _checked(raw, name, schema, transaction_id)
    if transaction_id is not None:
        ids = frame["txn_id"]
        repeated = ids.is_duplicated()
        if repeated.any():
            first = frame.filter(repeated).sort("row")
            raise bad_row(
                name, transaction_id, int(first["row"][0]), f"transaction id {first['txn_id'][0]!r} is repeated"
            )
    return frame


def read_scoring_block(
    source: str | Path,
    schema: TransactionSchema,
    transaction_id: str | None,
    entities: Sequence,
    *,
    table: str | None = None,
) -> pl.DataFrame:
    """The transactions of ``entities`` in ``source`` (a file or a table), checked and shaped as
    :func:`read_scoring_transactions` shapes the whole source: ``row`` and a bad row's number are
    the rows of the whole file. The caller checks that transaction ids are unique across blocks
    (:func:`embeddings.sources.first_repeated`); a table's rows have no order, so a table needs
    ``transaction_id``."""
    name = describe_source(source, table=table)
    if transaction_id is None and table is not None:
        raise ConfigError(
            f"{name}: a table's rows have no order to number them by: train the fraud model with a transaction id column"
        )
    raw = read_keys(
        source, schema.entity, entities, table=table, text_columns=scoring_text_columns(schema, transaction_id)
    )
    if raw.height == 0:
        raise DataError(f"{name}: no rows")
    rows = raw[SOURCE_ROW]
    try:
        frame = _checked(raw.drop(SOURCE_ROW), name, schema, transaction_id)
    except RowError as e:
        raise e.at(name, e.row if table is not None else int(rows[e.row])) from None
    if table is not None:
        return frame
    frame = frame.with_columns(row=rows.gather(frame["row"]))
    return frame if transaction_id is not None else frame.with_columns(txn_id=pl.col("row").cast(pl.String))


def scoring_text_columns(schema: TransactionSchema, transaction_id: str | None) -> list[str]:
    """The columns a CSV reader keeps as text: ids (``0081`` is not 81)."""
    return [*schema.id_columns(), *([] if transaction_id is None else [transaction_id])]


def _checked(raw: pl.DataFrame, name: str, schema: TransactionSchema, transaction_id: str | None) -> pl.DataFrame:
    """``raw`` (the caller's columns) checked by :func:`read_transactions`, with ``txn_id``."""
    try:
        frame = read_transactions(raw, schema)
    except DataError as exc:  # name the caller's source, not the in-memory frame
        if isinstance(exc, RowError):
            raise exc.at(name, exc.row) from None
        message = str(exc)
        if message.startswith("dataframe"):
            message = name + message[len("dataframe") :]
        raise DataError(message) from None
    if transaction_id is None:
        return frame.with_columns(txn_id=pl.col("row").cast(pl.String))
    if transaction_id not in raw.columns:
        raise missing_column(name, transaction_id, raw.columns)
    ids = check_ids(name, transaction_id, raw[transaction_id]).cast(pl.String)
    return frame.with_columns(txn_id=ids.gather(frame["row"]))


@dataclass
class FraudModel:
    """Everything needed to score transactions: read them, featurise, reconstruct, calibrate."""

    schema: TransactionSchema
    config: FraudModelConfig
    autoencoder: SequenceAutoencoder
    calibration: Calibration
    counterparty: Embeddings | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    cold_calibrations: list[Calibration | None] = field(default_factory=list)  # [k]: steps with k earlier steps

    def calibrate(self, raw: np.ndarray, steps_before: np.ndarray) -> np.ndarray:
        """Calibrated scores in ``[0, 1]`` of raw step scores ``[n]`` whose entities had ``steps_before``
        ``[n]`` earlier steps: a step whose window is not full uses its position's cold calibration."""
        raw = np.asarray(raw, dtype=np.float64)
        calibrated = self.calibration.calibrate(raw)
        for at, calibration in self._cold_positions(steps_before):
            calibrated[at] = calibration.calibrate(raw[at])
        return calibrated

    def relative_errors(self, raw: np.ndarray, steps_before: np.ndarray) -> np.ndarray:
        """Raw step scores ``[n]`` over the median genuine score of their calibration (cold or full
        window, as :meth:`calibrate` picks): 1 is a typical genuine step. Unlike the calibrated score
        it does not saturate, and unlike the raw score it compares a card's first steps with the rest."""
        raw = np.asarray(raw, dtype=np.float64)
        relative = raw / max(self.calibration.median, 1e-12)
        for at, calibration in self._cold_positions(steps_before):
            relative[at] = raw[at] / max(calibration.median, 1e-12)
        return relative

    def _cold_positions(self, steps_before: np.ndarray):
        """``(mask, calibration)`` for each fitted cold position that some of the steps are at."""
        steps_before = np.asarray(steps_before)
        for k, calibration in enumerate(self.cold_calibrations):
            at = steps_before == k
            if calibration is not None and at.any():
                yield at, calibration

    @property
    def scoring_schema(self) -> TransactionSchema:
        """The schema without the label: new transactions need not carry one."""
        return dataclasses.replace(self.schema, label=None)

    def read(self, source: Source, *, table: str | None = None, query: str | None = None) -> pl.DataFrame:
        """Checked transactions of ``source`` with ``txn_id`` (see :func:`read_scoring_transactions`)."""
        return read_scoring_transactions(
            source, self.scoring_schema, self.config.transaction_id, table=table, query=query
        )

    def score_frame(self, transactions: pl.DataFrame) -> pl.DataFrame:
        """Score a frame as :meth:`read` returns (each entity with its whole history).

        Returns one row per transaction, sorted by (entity, ts): ``row``, ``txn_id`` (when the
        frame has one), ``entity``, ``ts``, ``raw_score`` (reconstruction error, float64) and
        ``score`` (calibrated, in ``[0, 1]``).
        """
        features = step_features(transactions, self.counterparty)
        raw = score_steps(self.autoencoder, features).astype(np.float64)
        out = features.frame.select("row", "entity", "ts").with_columns(
            raw_score=pl.Series(raw), score=pl.Series(self.calibrate(raw, features.steps_before()))
        )
        if "txn_id" in transactions.columns:
            ids = transactions.select("row", "txn_id")
            out = out.join(ids, on="row", how="left", maintain_order="left").select(
                "row", "txn_id", "entity", "ts", "raw_score", "score"
            )
        return out

    def score(self, transactions: Source, *, table: str | None = None, query: str | None = None) -> pl.DataFrame:
        """Read and score ``transactions`` (a frame in the caller's columns, a file or a URL)."""
        return self.score_frame(self.read(transactions, table=table, query=query))

    # ------------------------------------------------------------------ save / load

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model directory, all or nothing; return its path."""
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            meta = {
                "format": FORMAT,
                "schema": asdict(self.schema),
                "config": {
                    "validation_fraction": self.config.validation_fraction,
                    "transaction_id": self.config.transaction_id,
                },
                "metrics": self.metrics,
            }
            (tmp / MODEL_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
            (tmp / CALIBRATION_FILE).write_text(json.dumps(self.calibration.to_dict()), encoding="utf-8")
            cold = [None if c is None else c.to_dict() for c in self.cold_calibrations]
            (tmp / COLD_CALIBRATION_FILE).write_text(json.dumps(cold), encoding="utf-8")
            save_autoencoder(self.autoencoder, tmp / AUTOENCODER_DIR)
            if self.counterparty is not None:
                self.counterparty.save(tmp / COUNTERPARTY_DIR)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "auto") -> FraudModel:
        """Load a directory written by :meth:`save` onto ``device`` (``"auto"``: CUDA when visible, else CPU)."""
        directory = Path(directory)
        meta = read_manifest(directory, MODEL_FILE, FORMAT, "a fraud model")
        schema_fields = {f.name for f in fields(TransactionSchema)}
        schema = TransactionSchema(**{k: v for k, v in meta.get("schema", {}).items() if k in schema_fields})
        autoencoder = load_autoencoder(directory / AUTOENCODER_DIR, device=device)
        stored = meta.get("config", {})
        config = FraudModelConfig(
            autoencoder=autoencoder.config,
            validation_fraction=stored.get("validation_fraction", 0.2),
            transaction_id=stored.get("transaction_id"),
        )
        calibration = Calibration.from_dict(read_json(directory / CALIBRATION_FILE, dict))
        counterparty = (
            Embeddings.load(directory / COUNTERPARTY_DIR) if (directory / COUNTERPARTY_DIR).exists() else None
        )
        cold = directory / COLD_CALIBRATION_FILE
        stored = read_json(cold, list) if cold.exists() else []
        cold_calibrations = [None if c is None else Calibration.from_dict(c) for c in stored]
        return cls(
            schema, config, autoencoder, calibration, counterparty, dict(meta.get("metrics", {})), cold_calibrations
        )


def train_fraud_model(
    transactions: Source,
    schema: TransactionSchema | None = None,
    config: FraudModelConfig | None = None,
    counterparty_vectors: Embeddings | None = None,
    *,
    table: str | None = None,
    query: str | None = None,
    analyst_labels: pl.DataFrame | None = None,
    launch: Launch = Launch(),
) -> FraudModel | None:
    """Train the autoencoder on the first ``1 - validation_fraction`` of the time span and
    calibrate on the genuine steps of the rest (see the module doc). With several workers in
    ``launch`` the autoencoder trains in DDP (:mod:`embeddings.ddp`); on a follower node this
    returns None once it has trained its share.

    Labels (``schema.label``, and ``analyst_labels``: ``txn_id, is_fraud`` as
    :func:`~fraud.labels.read_labels` returns, overriding it) only drop windows with a known
    fraud from training and fraud steps from the calibration sample.
    """
    schema = schema or TransactionSchema()
    config = config or FraudModelConfig()
    frame = read_scoring_transactions(transactions, schema, config.transaction_id, table=table, query=query)
    labelled = 0
    if analyst_labels is not None and analyst_labels.height:
        frame, labelled = _with_analyst_labels(frame, analyst_labels)
    ts = frame["ts"]
    start, end = ts.min(), ts.max()
    cutoff = start + (end - start) * (1.0 - config.validation_fraction)
    train = frame.filter(pl.col("ts") < cutoff)
    if train.height == 0 or train.height == frame.height:
        raise DataError(
            f"{describe_source(transactions, table=table, query=query)}: the transactions span no time "
            f"({start} .. {end}); a validation slice needs later transactions"
        )
    started = perf_counter()
    device = resolve_device(config.autoencoder.device)
    train_features = step_features(train, counterparty_vectors)
    autoencoder = ddp.launch(launch, train_autoencoder, train_features, config.autoencoder, device=device)
    if autoencoder is None:
        return None
    seconds = perf_counter() - started
    # Causal features: the validation steps' scores use their whole history, as at scoring time.
    features = step_features(frame, counterparty_vectors)
    raw = score_steps(autoencoder, features).astype(np.float64)
    genuine = np.ones(features.n_steps, dtype=bool)
    if "label" in features.frame.columns:
        genuine = features.frame["label"].to_numpy() == 0
    steps_before = features.steps_before()
    cold = steps_before < config.autoencoder.window - 1
    validation = (features.frame["ts"] >= cutoff).to_numpy() & genuine & ~cold
    if not validation.any():
        raise DataError("no genuine transactions with a full window in the validation slice to calibrate on")
    calibration = Calibration.fit(raw[validation])
    cold_genuine = cold & genuine
    at = [cold_genuine & (steps_before == k) for k in range(config.autoencoder.window - 1)]
    cold_calibrations = [Calibration.fit(raw[mask]) if mask.sum() >= MIN_COLD_STEPS else None for mask in at]
    metrics: dict[str, Any] = {
        "transactions": frame.height,
        "entities": features.n_entities,
        "train_transactions": train.height,
        "validation_genuine": int(validation.sum()),
        "analyst_labels": labelled,
        "cold_genuine": int(cold_genuine.sum()),
        "validation_cutoff": str(cutoff),
        "train_seconds": round(seconds, 3),
    }
    if schema.label is not None:  # the source's labels are complete; analysts' alone are not
        labels = features.frame["label"].to_numpy()
        held = (features.frame["ts"] >= cutoff).to_numpy()
        if 0 < labels[held].sum() < held.sum():
            from sklearn.metrics import roc_auc_score

            metrics["validation_auc"] = round(float(roc_auc_score(labels[held], raw[held])), 4)
    return FraudModel(schema, config, autoencoder, calibration, counterparty_vectors, metrics, cold_calibrations)


def _with_analyst_labels(frame: pl.DataFrame, labels: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """``frame`` with its ``label`` column (0/1, created when absent, 0 where unlabelled) overridden by the analysts'
    ``is_fraud`` where their ``txn_id`` matches; and how many transactions matched."""
    analyst = labels.select(pl.col("txn_id").cast(pl.String), pl.col("is_fraud").cast(pl.Int8).alias("analyst"))
    joined = frame.join(analyst, on="txn_id", how="left", maintain_order="left")
    current = pl.col("label") if "label" in frame.columns else pl.lit(None, dtype=pl.Int8)
    matched = int(joined["analyst"].is_not_null().sum())
    # Unlabelled is "not known to be fraud" (0), as the source's label column means it.
    label = pl.coalesce("analyst", current).fill_null(0).cast(pl.Int8)
    return joined.with_columns(label=label).drop("analyst"), matched
