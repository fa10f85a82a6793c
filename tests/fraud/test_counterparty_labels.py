"""The counterparty's known-label history: exact values, causality, bad input, and its place in the semi model."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from embeddings.errors import ConfigError, DataError
from fraud.config import SemiConfig
from fraud.counterparty_labels import COUNTERPARTY_LABEL_INPUTS, counterparty_label_history
from fraud.semi import load_semi, semi_inputs, train_semi

DAY0 = dt.datetime(2024, 1, 1)


def at(days: float) -> dt.datetime:
    return DAY0 + dt.timedelta(days=days)


def labelled_frame(rows: list[tuple[str, float, int, float]]) -> pl.DataFrame:
    """(counterparty, transaction day, is_fraud, day its label became known)."""
    return pl.DataFrame(
        {
            "counterparty": [r[0] for r in rows],
            "ts": [at(r[1]) for r in rows],
            "is_fraud": [r[2] for r in rows],
            "known_at": [at(r[3]) for r in rows],
        }
    )


LABELLED = labelled_frame(
    [
        ("A", 0, 0, 1),
        ("A", 2, 1, 3),
        ("A", 4, 1, 5),
        ("A", 6, 0, 7),
        ("C", 5, 1, 1),  # "known" before it happened: counts as known at day 5
        ("D", 1, 1, 10),  # known late: after D's day-2 label, so it is the latest known from day 10
        ("D", 2, 0, 3),
    ]
)
# (counterparty, step day) -> last label, fraud streak, streak days, label age days
EXPECTED = {
    ("A", 0.5): [-1, 0, -1, -1],  # nothing known yet
    ("A", 1.0): [-1, 0, -1, -1],  # known at the step's very time is not known before it
    ("A", 1.5): [0, 0, -1, 1.5],
    ("A", 3.5): [1, 1, 1.5, 1.5],
    ("A", 6.0): [1, 2, 4.0, 2.0],  # the streak started with the day-2 fraud
    ("A", 8.0): [0, 0, -1, 2.0],
    ("B", 8.0): [-1, 0, -1, -1],  # a counterparty without labels
    ("C", 3.0): [-1, 0, -1, -1],
    ("C", 5.5): [1, 1, 0.5, 0.5],
    ("D", 4.0): [0, 0, -1, 2.0],
    ("D", 11.0): [1, 1, 10.0, 10.0],
}


def test_history_values_follow_the_order_labels_became_known():
    keys = list(EXPECTED)[::-1]  # any step order; the result follows it
    steps = pl.DataFrame({"counterparty": [k[0] for k in keys], "ts": [at(k[1]) for k in keys]})
    got = counterparty_label_history(steps, LABELLED)
    assert got.shape == (len(keys), len(COUNTERPARTY_LABEL_INPUTS)) and got.dtype == np.float64
    for row, key in zip(got, keys):
        np.testing.assert_allclose(row, EXPECTED[key], err_msg=str(key))


def test_boolean_labels_and_no_labels():
    steps = pl.DataFrame({"counterparty": ["A", "B"], "ts": [at(3.5), at(3.5)]})
    as_bool = LABELLED.with_columns(pl.col("is_fraud").cast(pl.Boolean))
    np.testing.assert_array_equal(
        counterparty_label_history(steps, as_bool), counterparty_label_history(steps, LABELLED)
    )
    none = counterparty_label_history(steps, LABELLED.clear())
    np.testing.assert_array_equal(none, [[-1, 0, -1, -1]] * 2)


def test_labels_known_after_a_step_never_change_it():
    steps = pl.DataFrame({"counterparty": ["A", "A"], "ts": [at(3.5), at(6.0)]})
    before = counterparty_label_history(steps, LABELLED)
    later = labelled_frame([("A", 3.5, 0, 6.0), ("A", 5, 0, 6.0), ("A", 7, 1, 8)])  # known at day 6 or after
    np.testing.assert_array_equal(counterparty_label_history(steps, pl.concat([LABELLED, later])), before)
    sooner = labelled_frame([("A", 3.5, 0, 4.5)])  # known before the day-4 fraud: it breaks the streak
    np.testing.assert_allclose(counterparty_label_history(steps, pl.concat([LABELLED, sooner]))[1], [1, 1, 2.0, 2.0])


@pytest.mark.parametrize(
    "frame, match",
    [
        (LABELLED.drop("known_at"), r"missing column\(s\) \['known_at'\]"),
        (LABELLED.with_columns(is_fraud=pl.lit(2)), "'is_fraud' must be 0 or 1, got 2 at row 0"),
        (LABELLED.with_columns(is_fraud=pl.lit("yes")), "'is_fraud' must hold 0 / 1 or booleans, got String"),
        (
            LABELLED.with_columns(ts=pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise("ts")),
            "'ts' is null at row 3",
        ),
    ],
)
def test_bad_labelled_transactions_are_refused(frame, match):
    steps = pl.DataFrame({"counterparty": ["A"], "ts": [at(1)]})
    with pytest.raises(DataError, match=match):
        counterparty_label_history(steps, frame)


def test_semi_model_reads_the_history_when_asked(tmp_path, model, features, source):
    labels = features.frame["label"].fill_null(0).to_numpy().astype(np.int64)
    config = SemiConfig(n_trees=5, use_counterparty_labels=True)
    with pytest.raises(ConfigError, match="counterparty_labels"):
        semi_inputs(model, features, config)
    with pytest.raises(DataError, match="shape"):
        semi_inputs(model, features, config, np.zeros((3, 4)))
    rows = features.frame["row"].to_numpy()
    steps = source.select(counterparty="merchant_id", ts="ts")[rows]
    labelled = source.select(
        counterparty="merchant_id",
        ts="ts",
        is_fraud=pl.col("is_fraud").cast(pl.Int8),
        known_at=pl.col("ts") + pl.duration(days=1),
    )
    history = counterparty_label_history(steps, labelled)
    inputs, names = semi_inputs(model, features, config, history)
    start = names.index(COUNTERPARTY_LABEL_INPUTS[0])
    np.testing.assert_array_equal(inputs[:, start : start + 4], history)
    semi = train_semi(model, features, labels, config, history)
    loaded = load_semi(semi.save(tmp_path / "semi"))
    assert loaded.config.use_counterparty_labels and loaded.input_names == names
    np.testing.assert_array_equal(loaded.score(model, features, history), semi.score(model, features, history))
