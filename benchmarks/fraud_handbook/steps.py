"""Per-step inputs of the autoencoder on the Fraud Detection Handbook data, and row slicing."""

from __future__ import annotations

import numpy as np
import polars as pl

from benchmarks.fraud_handbook.data import INPUT_FEATURES, PATH
from fraud.config import TransactionSchema
from fraud.features import Features, read_transactions, step_features

HANDBOOK_STEP_FEATURES = [f for f in INPUT_FEATURES if f != "TX_AMOUNT"]  # log_amount is a base feature


def slice_rows(features: Features, keep: np.ndarray) -> Features:
    """The steps ``keep`` (bool per row, rows stay in order) as a Features of their own."""
    rows = np.flatnonzero(keep)
    frame = features.frame[rows]
    entity = frame["entity"]
    starts = np.flatnonzero(entity.ne_missing(entity.shift(1)).to_numpy())
    offsets = np.append(starts, rows.size).astype(np.int64)
    return Features(frame, np.ascontiguousarray(features.matrix[rows]), list(features.names), offsets)


def scoring_rows(features: Features, target: np.ndarray, window: int) -> np.ndarray:
    """Rows needed to score the ``target`` rows exactly: each entity's target rows plus the
    ``window - 1`` steps before its first one (the windows then see the same steps)."""
    n = features.n_steps
    counts = np.diff(features.offsets)
    first = np.repeat(features.offsets[:-1], counts)
    entity_index = np.repeat(np.arange(counts.size), counts)
    big = np.iinfo(np.int64).max
    first_target = np.full(counts.size, big)
    np.minimum.at(first_target, entity_index[target], np.flatnonzero(target))
    last_target = np.full(counts.size, -1)
    np.maximum.at(last_target, entity_index[target], np.flatnonzero(target))
    position = np.arange(n)
    lo = np.maximum(first, first_target[entity_index] - (window - 1))
    return (position >= lo) & (position <= last_target[entity_index])


def with_handbook(features: Features, tx: pl.DataFrame, log: bool) -> Features:
    """``features`` with the handbook's 14 baseline features (weekend, night, customer spending
    windows, delayed terminal-risk windows) of the same transaction appended to every step;
    aligned by transaction id (``frame["row"]`` = ``TRANSACTION_ID``). With ``log``, counts and
    mean amounts enter as ``log(1 + x)``. Labels enter only through the 7-day-delayed risk."""
    ids = tx["TRANSACTION_ID"].to_numpy()
    assert np.all(np.diff(ids) > 0), "baseline_features returns transactions in id order"
    rows = features.frame["row"].to_numpy()
    at = np.searchsorted(ids, rows)
    assert np.array_equal(ids[at], rows), "every step has its transaction's baseline features"
    extra = tx.select(HANDBOOK_STEP_FEATURES).to_numpy().astype(np.float64)[at]
    names = list(HANDBOOK_STEP_FEATURES)
    if log:
        for j, name in enumerate(names):
            if "NB_TX" in name or "AVG_AMOUNT" in name:
                extra[:, j] = np.log1p(extra[:, j])
                names[j] = f"log1p_{name}"
    matrix = np.hstack([features.matrix, extra.astype(features.matrix.dtype)])
    return Features(features.frame, np.ascontiguousarray(matrix), list(features.names) + names, features.offsets)


def ae_features(tx: pl.DataFrame, variant: str) -> Features:
    schema = TransactionSchema(
        entity="CUSTOMER_ID", counterparty="TERMINAL_ID", amount="TX_AMOUNT", timestamp="TX_DATETIME", label="TX_FRAUD"
    )
    features = step_features(read_transactions(PATH, schema))
    if variant == "base":
        return features
    return with_handbook(features, tx, log=variant != "handbook")
