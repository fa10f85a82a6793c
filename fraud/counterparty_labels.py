"""What was known about a step's counterparty (terminal, merchant) before the step: its label history.

A compromised terminal defrauds every card that pays at it until the compromise ends, and to the
card those payments look habitual: nothing in the card's own sequence gives them away. What does
is the counterparty's known labels, read as a sequence in the order they became known. For a step
at time ``t`` with counterparty ``c``, over ``c``'s labelled transactions whose label was known
before ``t`` (``known_at < t``)::

    counterparty_last_label      the latest known label: 1 fraud, 0 genuine, -1 none known
    counterparty_fraud_streak    how many known labels in a row, up to the latest, are fraud (0 if it is genuine)
    counterparty_streak_days     days from the streak's first fraud transaction to t (-1 without a streak)
    counterparty_label_age_days  days from the latest known labelled transaction to t (-1 when none is known)

A long, recent streak says the counterparty is still compromised; a streak that started long ago,
or one fraud among genuine labels, says less (a card compromised elsewhere that paid there once).

Strictly causal: a step reads only labels known before its time, so never its own. When a label
became known is the caller's to say: in the store, when the analyst recorded it; on the Fraud
Detection Handbook data, one week after the transaction (the handbook's feedback delay). A label
cannot be known before its transaction happened: ``known_at`` earlier than ``ts`` counts as ``ts``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from embeddings.errors import DataError

COUNTERPARTY_LABEL_INPUTS = (
    "counterparty_last_label",
    "counterparty_fraud_streak",
    "counterparty_streak_days",
    "counterparty_label_age_days",
)
SECONDS_PER_DAY = 86_400.0


def _checked(labelled: pl.DataFrame) -> pl.DataFrame:
    """``labelled`` with ``is_fraud`` as Int8, or a one-line DataError naming the column and row."""
    missing = [c for c in ("counterparty", "ts", "is_fraud", "known_at") if c not in labelled.columns]
    if missing:
        raise DataError(f"labelled transactions: missing column(s) {missing}")
    for column in ("counterparty", "ts", "is_fraud", "known_at"):
        nulls = labelled[column].is_null()
        if nulls.any():
            raise DataError(f"labelled transactions: column {column!r} is null at row {int(nulls.arg_true()[0])}")
    fraud = labelled["is_fraud"]
    if not (fraud.dtype == pl.Boolean or fraud.dtype.is_integer()):
        raise DataError(f"labelled transactions: column 'is_fraud' must hold 0 / 1 or booleans, got {fraud.dtype}")
    fraud = fraud.cast(pl.Int8)
    bad = ~fraud.is_in([0, 1])
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataError(f"labelled transactions: column 'is_fraud' must be 0 or 1, got {fraud[row]} at row {row}")
    return labelled.with_columns(is_fraud=fraud)


def _days_since(column: str) -> pl.Expr:
    return (pl.col("ts") - pl.col(column)).dt.total_seconds() / SECONDS_PER_DAY


def counterparty_label_history(steps: pl.DataFrame, labelled: pl.DataFrame) -> np.ndarray:
    """The four :data:`COUNTERPARTY_LABEL_INPUTS` of every step, float64 ``[steps.height, 4]`` in ``steps``' order.

    ``steps``: ``counterparty``, ``ts`` (one row per step). ``labelled``: the labelled transactions,
    ``counterparty``, ``ts`` (the transaction's time), ``is_fraud`` (0 / 1) and ``known_at`` (when
    its label became known); any transactions, not only the steps'.
    """
    labelled = _checked(labelled)
    ts_type = steps.schema["ts"]
    known = (
        labelled.select(
            pl.col("counterparty").cast(steps.schema["counterparty"]),
            pl.col("ts").cast(ts_type).alias("_labelled_ts"),
            pl.col("is_fraud").alias("_fraud"),
            pl.max_horizontal(pl.col("known_at").cast(ts_type), pl.col("ts").cast(ts_type)).alias("_known_at"),
        )
        .sort("counterparty", "_known_at", "_labelled_ts")
        .with_columns(
            _run=(pl.col("_fraud") != pl.col("_fraud").shift(1).over("counterparty")).fill_null(True).cum_sum()
        )
        .with_columns(
            _streak=pl.int_range(1, pl.len() + 1).over("_run"), _run_start=pl.col("_labelled_ts").first().over("_run")
        )
        .sort("_known_at", "_labelled_ts", maintain_order=True)
    )
    query = steps.select("counterparty", "ts").with_row_index("_step").sort("ts")
    joined = query.join_asof(
        known,
        left_on="ts",
        right_on="_known_at",
        by="counterparty",
        strategy="backward",
        allow_exact_matches=False,  # known at the step's very time is not known before it
        check_sortedness=False,  # both sides are sorted by their key above
    ).sort("_step")
    in_streak = pl.col("_fraud") == 1
    values = (
        pl.col("_fraud").fill_null(-1),
        pl.when(in_streak).then(pl.col("_streak")).otherwise(0).fill_null(0),
        pl.when(in_streak).then(_days_since("_run_start")).otherwise(-1.0).fill_null(-1.0),
        _days_since("_labelled_ts").fill_null(-1.0),
    )
    out = joined.select(v.alias(name) for v, name in zip(values, COUNTERPARTY_LABEL_INPUTS))
    return out.to_numpy().astype(np.float64)
