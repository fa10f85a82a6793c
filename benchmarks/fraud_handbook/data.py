"""The Fraud Detection Handbook's simulated transactions, split, baseline features and Card Precision@k.

Data: ``../shared/data/fraud-handbook/transactions.parquet`` (1,754,155 transactions,
2018-04-01 .. 2018-09-30), read in place with polars. Source: *Reproducible Machine Learning
for Credit Card Fraud Detection — Practical Handbook* (Le Borgne, Siblini, Lebichot,
Bontempi), https://fraud-detection-handbook.github.io/fraud-detection-handbook/ ,
code in https://github.com/Fraud-Detection-Handbook/fraud-detection-handbook .

Everything below follows the handbook's ``shared_functions.py``
(``Chapter_References/shared_functions.py``), vectorised with polars instead of pandas
``apply`` / ``rolling`` per group:

- **Split** (``get_train_test_set``; Chapter 3 "Baseline fraud detection system", reused for
  the test estimate of Chapter 5): training 7 days from 2018-07-25 (2018-07-25 .. 2018-07-31),
  delay period 7 days (2018-08-01 .. 2018-08-07), test 7 days (2018-08-08 .. 2018-08-14).
  Test day ``d`` drops the transactions of every customer *known* to be compromised: those
  with a fraud in the training period, or on any day from the first delay day up to
  ``d - 7`` (the labels a one-week feedback delay has delivered by then).
- **Baseline features** (Chapter 3 "Baseline feature transformation"):
  ``TX_DURING_WEEKEND`` (weekday >= 5), ``TX_DURING_NIGHT`` (hour <= 6);
  customer spending windows ``CUSTOMER_ID_NB_TX_{w}DAY_WINDOW`` and
  ``CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW`` for ``w`` in 1, 7, 30: the count and mean amount of
  the customer's transactions in ``(t - w days, t]`` (the current one included, as pandas'
  time-based ``rolling`` does); terminal risk windows ``TERMINAL_ID_NB_TX_{w}DAY_WINDOW`` and
  ``TERMINAL_ID_RISK_{w}DAY_WINDOW``: the number of the terminal's transactions and their
  fraud rate in ``(t - (7 + w) days, t - 7 days]`` — the window shifted back by the 7-day delay
  (computed as the handbook does: window ``7 + w`` minus window ``7``); risk 0 when the window
  is empty. Model inputs are ``TX_AMOUNT`` plus these 14 (:data:`INPUT_FEATURES`, the
  handbook's 15). Labels feed only the delayed terminal risk, as in the handbook.
  One difference: polars' rolling windows put transactions of the same customer (terminal) at
  the same second in each other's window; pandas' put only the earlier rows. Such ties are rare
  (timestamps have one-second resolution).
- **Counterparty label history** (ours, not the handbook's; :func:`with_counterparty_labels`):
  :func:`fraud.counterparty_labels.counterparty_label_history` of each transaction's terminal,
  with every label known ``DELAY`` days after its transaction (the feedback the terminal risk
  windows assume): the latest known label, the length and age of its fraud streak, the age of the
  latest known label.
- **Card Precision@k** (``card_precision_top_k``, Chapter 4 "Precision top-k metrics"): per
  test day, each card's score is the max of its transactions' scores that day and its label the
  max of theirs; the share of compromised cards among the ``k`` top-scored cards, averaged over
  the test days. The handbook's default (used for all its published figures) removes cards
  already *detected* — compromised cards that were in the top ``k`` on an earlier test day — from
  the later days; :func:`card_precision_top_k` does the same (``remove_detected=True``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks._common import DATA
from fraud.counterparty_labels import COUNTERPARTY_LABEL_INPUTS, counterparty_label_history

PATH = DATA / "fraud-handbook" / "transactions.parquet"
START = dt.date(2018, 4, 1)  # TX_TIME_DAYS = 0
TRAIN_START = dt.date(2018, 7, 25)
DELTA_TRAIN = DELTA_DELAY = DELTA_TEST = 7
WINDOWS = (1, 7, 30)
DELAY = 7

INPUT_FEATURES = (
    ["TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT"]
    + [f"CUSTOMER_ID_{k}_{w}DAY_WINDOW" for w in WINDOWS for k in ("NB_TX", "AVG_AMOUNT")]
    + [f"TERMINAL_ID_{k}_{w}DAY_WINDOW" for w in WINDOWS for k in ("NB_TX", "RISK")]
)


def load(path: Path = PATH) -> pl.DataFrame:
    """The transactions, in file (time) order; ``TX_FRAUD`` / ``TX_FRAUD_SCENARIO`` are labels only."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (see ../shared/data/fraud-handbook/SOURCE.md)")
    return pl.read_parquet(path)


def baseline_features(tx: pl.DataFrame) -> pl.DataFrame:
    """``tx`` plus the handbook's 14 baseline features, in ``TRANSACTION_ID`` order."""
    t = pl.col("TX_DATETIME")
    out = tx.with_columns(
        TX_DURING_WEEKEND=(t.dt.weekday() >= 6).cast(pl.Int8),  # polars: Monday = 1, so Sat/Sun = 6/7
        TX_DURING_NIGHT=(t.dt.hour() <= 6).cast(pl.Int8),
        _one=pl.lit(1.0),
        _fraud=pl.col("TX_FRAUD").cast(pl.Float64),
    )

    out = out.sort(["CUSTOMER_ID", "TX_DATETIME", "TRANSACTION_ID"])
    customer = []
    for w in WINDOWS:
        n = pl.col("_one").rolling_sum_by("TX_DATETIME", f"{w}d").over("CUSTOMER_ID")
        s = pl.col("TX_AMOUNT").rolling_sum_by("TX_DATETIME", f"{w}d").over("CUSTOMER_ID")
        customer += [
            n.alias(f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"),
            (s / n).alias(f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"),
        ]
    out = out.with_columns(customer)

    out = out.sort(["TERMINAL_ID", "TX_DATETIME", "TRANSACTION_ID"])

    def rolled(col: str, days: int) -> pl.Expr:
        return pl.col(col).rolling_sum_by("TX_DATETIME", f"{days}d").over("TERMINAL_ID")

    terminal = []
    for w in WINDOWS:
        n = rolled("_one", DELAY + w) - rolled("_one", DELAY)
        f = rolled("_fraud", DELAY + w) - rolled("_fraud", DELAY)
        risk = pl.when(n > 0).then(f / n).otherwise(0.0)
        terminal += [n.alias(f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"), risk.alias(f"TERMINAL_ID_RISK_{w}DAY_WINDOW")]
    out = out.with_columns(terminal)
    return out.sort("TRANSACTION_ID").drop("_one", "_fraud")


def with_counterparty_labels(tx: pl.DataFrame) -> pl.DataFrame:
    """``tx`` plus the :data:`~fraud.counterparty_labels.COUNTERPARTY_LABEL_INPUTS` of each
    transaction's terminal, every label known ``DELAY`` days after its transaction."""
    steps = tx.select(pl.col("TERMINAL_ID").alias("counterparty"), pl.col("TX_DATETIME").alias("ts"))
    labelled = steps.with_columns(is_fraud=tx["TX_FRAUD"], known_at=pl.col("ts") + pl.duration(days=DELAY))
    history = counterparty_label_history(steps, labelled)
    return tx.with_columns(pl.Series(name, history[:, i]) for i, name in enumerate(COUNTERPARTY_LABEL_INPUTS))


@dataclass(frozen=True)
class Split:
    train_start: dt.date
    train_end: dt.date  # inclusive
    delay_start: dt.date
    delay_end: dt.date
    test_start: dt.date
    test_end: dt.date

    def describe(self) -> dict[str, str]:
        return {
            "train": f"{self.train_start} .. {self.train_end}",
            "delay": f"{self.delay_start} .. {self.delay_end}",
            "test": f"{self.test_start} .. {self.test_end}",
        }


def handbook_split(train_start: dt.date = TRAIN_START) -> Split:
    d = dt.timedelta
    return Split(
        train_start,
        train_start + d(DELTA_TRAIN - 1),
        train_start + d(DELTA_TRAIN),
        train_start + d(DELTA_TRAIN + DELTA_DELAY - 1),
        train_start + d(DELTA_TRAIN + DELTA_DELAY),
        train_start + d(DELTA_TRAIN + DELTA_DELAY + DELTA_TEST - 1),
    )


def day_index(day: dt.date) -> int:
    return (day - START).days


def train_test(tx: pl.DataFrame, split: Split) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The handbook's ``get_train_test_set``: the training week, and the test week minus the
    transactions of customers known compromised by each test day (see the module doc)."""
    days = pl.col("TX_TIME_DAYS")
    t0 = day_index(split.train_start)
    train = tx.filter(days.is_between(t0, t0 + DELTA_TRAIN - 1))
    # First day a customer's compromise becomes known: a fraud on day f in the training period is
    # known for all test days; a fraud on delay/test day f is known from test day f + DELAY on...
    # the handbook adds day (t0 + DELTA_TRAIN + i - 1)'s frauds before test day i, i.e. f + DELTA_DELAY + 1.
    frauds = tx.filter((pl.col("TX_FRAUD") == 1) & (days >= t0))
    known_from = frauds.group_by("CUSTOMER_ID").agg(
        pl.when(days < t0 + DELTA_TRAIN).then(0).otherwise(days + DELTA_DELAY + 1).min().alias("_known_from")
    )
    test = (
        tx.filter(days.is_between(t0 + DELTA_TRAIN + DELTA_DELAY, t0 + DELTA_TRAIN + DELTA_DELAY + DELTA_TEST - 1))
        .join(known_from, on="CUSTOMER_ID", how="left")
        .filter(pl.col("_known_from").is_null() | (days < pl.col("_known_from")))
        .drop("_known_from")
        .sort("TRANSACTION_ID")
    )
    return train, test


def card_precision_top_k(test: pl.DataFrame, scores: np.ndarray, k: int = 100, remove_detected: bool = True) -> float:
    """The handbook's mean Card Precision@k over the test days (``test`` rows <-> ``scores``)."""
    frame = test.select("TX_TIME_DAYS", "CUSTOMER_ID", "TX_FRAUD").with_columns(predictions=pl.Series(scores))
    cards = (
        frame.group_by("TX_TIME_DAYS", "CUSTOMER_ID")
        .agg(pl.col("predictions").max(), pl.col("TX_FRAUD").max())
        .sort(["TX_TIME_DAYS", "predictions", "CUSTOMER_ID"], descending=[False, True, False])
    )
    detected: set[int] = set()
    precisions = []
    for day in sorted(cards["TX_TIME_DAYS"].unique().to_list()):  # 7 days: a loop over days, not rows
        today = cards.filter((pl.col("TX_TIME_DAYS") == day) & ~pl.col("CUSTOMER_ID").is_in(list(detected)))
        top = today.head(k)
        hits = top.filter(pl.col("TX_FRAUD") == 1)["CUSTOMER_ID"].to_list()
        precisions.append(len(hits) / k)
        if remove_detected:
            detected.update(hits)
    return float(np.mean(precisions))


def metrics(test: pl.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """AUC ROC, Average Precision and Card Precision@100 of ``scores`` (one per ``test`` row)."""
    y = test["TX_FRAUD"].to_numpy()
    return {
        "auc": float(roc_auc_score(y, scores)),
        "ap": float(average_precision_score(y, scores)),
        "cp100": card_precision_top_k(test, scores, 100),
    }
