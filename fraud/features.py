"""Transactions -> checked polars frame -> per-entity, time-ordered, strictly causal step features.

A transaction is one row: an *entity* (card, customer) paid a *counterparty* (merchant,
terminal) an *amount* at time *ts*, optionally with a *category*, a *channel* and a fraud
*label*. :func:`read_transactions` reads any source of :mod:`embeddings.sources`, checks it
with the data layer's rules and renames the caller's columns to canonical ones.
:func:`step_features` turns the frame into one feature row per transaction, grouped into
per-entity sequences (CSR ``offsets``) for a sequence model.

Causality is the contract: the features of step ``t`` of an entity are a function of that
entity's steps ``0..t`` only (the step itself and the earlier ones), so appending later
transactions never changes an earlier row, bit for bit. Every running statistic is a
per-entity window (``cum_sum().shift(1).over("entity")``) or an exact integer (fixed-point)
prefix sum, never a floating-point global cumulative sum minus an offset, whose rounding would
depend on other entities' rows. Labels are never
features. Everything works on whole columns (polars windows, numpy), no Python loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from embeddings.data import bad_row, check_ids, check_nulls, check_timestamps, check_weights, id_check, read_checked
from embeddings.errors import ConfigError, DataError
from embeddings.sources import Source
from embeddings.vectors import Embeddings, unit_rows
from fraud.config import TransactionSchema

_US_PER_S = 1_000_000.0
_TWO_PI = 2.0 * np.pi
FIXED_POINT = float(2**20)  # resolution of the running counterparty-vector sums (shared with fraud.stream)

# Base features, in matrix column order; counterparty features follow when vectors are given.
BASE_FEATURES = (
    "log_amount",  # log(1 + amount)
    "amount_ratio",  # log((amount + 1) / (mean of the entity's earlier amounts + 1)); 0 at the first step
    "log_gap",  # log(1 + seconds since the entity's previous transaction); 0 at the first step
    "first_step",  # 1 at the entity's first transaction, else 0
    "hour_sin",  # sin / cos of 2 pi * (fractional hour of day) / 24
    "hour_cos",
    "weekday_sin",  # sin / cos of 2 pi * (weekday, Monday = 0) / 7
    "weekday_cos",
)
COUNTERPARTY_FEATURES = (
    "unknown_counterparty",  # 1 where the counterparty has no vector (its vector columns are then 0)
    "counterparty_cosine",  # cosine(u(v_t), mean of u(v_s) over the entity's earlier steps s < t); 0 if undefined
)
VECTOR_PREFIX = "cp_"  # columns cp_0 .. cp_{d-1}: the counterparty's unit vector


def _amounts(name: str, column: str, s: pl.Series) -> pl.Series:
    """Float64 amounts, finite and >= 0; numbers written as text are parsed."""
    check_nulls(name, column, s)
    if s.dtype == pl.String:
        parsed = s.str.strip_chars().cast(pl.Float64, strict=False)
        if parsed.null_count():
            row = int(parsed.is_null().arg_max())
            raise bad_row(name, column, row, f"cannot parse {s[row]!r} as an amount")
        s = parsed
    return check_weights(name, column, s, what="amount")


def _labels(name: str, column: str, s: pl.Series) -> pl.Series:
    """Int8 labels, 1 = fraud, 0 = genuine, from booleans or numbers that are 0 or 1."""
    check_nulls(name, column, s)
    if s.dtype == pl.Boolean:
        return s.cast(pl.Int8)
    if not s.dtype.is_numeric():
        raise DataError(f"{name}: column {column!r} has type {s.dtype}; expected labels 0/1 or true/false")
    bad = ~s.is_in([0, 1])
    if bad.any():
        row = int(bad.arg_max())
        raise bad_row(name, column, row, f"label {s[row]!r} is not 0 or 1")
    return s.cast(pl.Int8)


def _text(name: str, column: str, s: pl.Series) -> pl.Series:
    """Category or channel values as strings (integer codes become their decimals)."""
    return check_ids(name, column, s).cast(pl.String)


_CHECKS = {
    "amount": _amounts,
    "ts": check_timestamps,
    "category": _text,
    "channel": _text,
    "label": _labels,
}


def read_transactions(
    source: Source, schema: TransactionSchema | None = None, *, table: str | None = None, query: str | None = None
) -> pl.DataFrame:
    """Read and check transactions; return them sorted by (entity, ts), stably.

    Columns: ``entity`` and ``counterparty`` (String, or Int64 where the source's column holds
    integers or ``schema.integer_ids``), ``amount`` (Float64, finite,
    >= 0), ``ts`` (Datetime µs, naive UTC; from datetimes, dates, ISO-8601 text or integer unix
    seconds), then ``category`` and ``channel`` (String) and ``label`` (Int8 0/1) when the
    schema names them, and ``row`` (Int64, the 0-based data row in the source). Transactions of
    one entity at the same time keep their source order. A bad value raises :class:`DataError`
    naming the source, the column and the first bad row (0-based, header not counted).
    """
    schema = schema or TransactionSchema()
    ids = id_check(schema.integer_ids)
    checks = {**_CHECKS, "entity": ids, "counterparty": ids}
    _, frame = read_checked(
        source, schema.columns(), checks, table=table, query=query, text_columns=schema.id_columns()
    )
    frame = frame.with_columns(row=pl.int_range(pl.len(), dtype=pl.Int64))
    return frame.sort(["entity", "ts"], maintain_order=True)


@dataclass(frozen=True)
class Features:
    """Per-step features of per-entity sequences, in CSR layout.

    - ``frame``: one row per step, sorted by (entity, ts): ``entity``, ``ts``, ``row`` (source
      row) and ``label`` when the transactions had one (for evaluation only, never a feature).
    - ``matrix``: float32 ``(n_steps, n_features)``; row ``i`` describes ``frame`` row ``i``.
    - ``names``: the ``n_features`` column names of ``matrix``.
    - ``offsets``: int64 ``(n_entities + 1,)``; entity ``e``'s steps, in time order, are rows
      ``offsets[e]:offsets[e + 1]``.
    """

    frame: pl.DataFrame
    matrix: np.ndarray
    names: list[str]
    offsets: np.ndarray

    @property
    def n_entities(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def n_steps(self) -> int:
        return int(self.matrix.shape[0])

    def entities(self) -> pl.Series:
        """The entity of each sequence, ``(n_entities,)``."""
        return self.frame["entity"].gather(self.offsets[:-1])

    def steps_before(self) -> np.ndarray:
        """For each step, how many earlier steps its entity has, int64 ``(n_steps,)`` (0 for a first step)."""
        return np.arange(self.n_steps, dtype=np.int64) - np.repeat(self.offsets[:-1], np.diff(self.offsets))

    def sequence(self, e: int) -> np.ndarray:
        """Entity ``e``'s feature rows, float32 ``(length, n_features)``, a view of ``matrix``."""
        return self.matrix[self.offsets[e] : self.offsets[e + 1]]


def step_features(transactions: pl.DataFrame, counterparty_vectors: Embeddings | None = None) -> Features:
    """Strictly causal per-step features of each entity's time-ordered transactions.

    ``transactions`` is a frame as :func:`read_transactions` returns (sorted by (entity, ts)
    first if it is not). With ``a_t`` the amount and ``ts_t`` the time of an entity's step
    ``t`` (``t = 0, 1, ...``), the features are, in order (see :data:`BASE_FEATURES`):

    - ``log_amount = log(1 + a_t)``;
    - ``amount_ratio = log((a_t + 1) / (mean(a_0..a_{t-1}) + 1))``, 0 at ``t = 0``;
    - ``log_gap = log(1 + seconds(ts_t - ts_{t-1}))``, 0 at ``t = 0``; ``first_step`` flags ``t = 0``;
    - ``hour_sin, hour_cos`` of ``2 pi h / 24`` (``h`` the fractional hour of day) and
      ``weekday_sin, weekday_cos`` of ``2 pi w / 7`` (``w`` = 0 on Monday).

    With ``counterparty_vectors`` (keys = counterparty ids; ids and keys are compared as text,
    so int ids match the decimal keys that the word2vec format gives back), with ``u(v)`` the
    unit-length vector of a counterparty (zeros when unknown):

    - ``unknown_counterparty``: 1 where the counterparty has no vector;
    - ``counterparty_cosine = cos(u(v_t), sum_{s<t} u(v_s))`` — cosine to the mean of the
      entity's earlier counterparties; 0 when ``t = 0``, when ``v_t`` is unknown or when the
      earlier sum is zero;
    - ``cp_0 .. cp_{d-1}``: ``u(v_t)`` (one feature in the error: see :func:`column_weights`).

    Returns :class:`Features` (matrix float32 ``(n_steps, 8)``, or ``(n_steps, 10 + d)`` with
    vectors). Memory: a few float64 columns per step, plus about ``4 d`` 8-byte values per step with vectors.
    """
    required = {"entity", "counterparty", "amount", "ts"}
    if not required <= set(transactions.columns):
        raise ConfigError(
            f"step_features needs columns {sorted(required)} (as read_transactions returns); got {transactions.columns}"
        )
    if transactions.height == 0:
        raise DataError("step_features: no transactions")
    if not transactions.select(pl.struct("entity", "ts")).to_series().is_sorted():
        transactions = transactions.sort(["entity", "ts"], maintain_order=True)
    if "row" not in transactions.columns:
        transactions = transactions.with_columns(row=pl.int_range(pl.len(), dtype=pl.Int64))

    amount, ts = pl.col("amount"), pl.col("ts")
    step = pl.int_range(pl.len()).over("entity")  # 0, 1, ... within each entity
    mean_before = (amount.cum_sum().shift(1) / pl.int_range(pl.len())).over("entity")  # null at step 0
    gap_s = ts.diff().over("entity").dt.total_microseconds() / _US_PER_S  # null at step 0
    hour = ts.dt.hour() + ts.dt.minute() / 60.0 + (ts.dt.second() + ts.dt.microsecond() / 1e6) / 3600.0
    weekday = ts.dt.weekday() - 1  # polars: Monday = 1
    base = transactions.select(
        log_amount=amount.log1p(),
        amount_ratio=((amount + 1.0) / (mean_before + 1.0)).log().fill_null(0.0),
        log_gap=gap_s.log1p().fill_null(0.0),
        first_step=(step == 0).cast(pl.Float64),
        hour_sin=(hour * (_TWO_PI / 24.0)).sin(),
        hour_cos=(hour * (_TWO_PI / 24.0)).cos(),
        weekday_sin=(weekday * (_TWO_PI / 7.0)).sin(),
        weekday_cos=(weekday * (_TWO_PI / 7.0)).cos(),
    )
    entity = transactions["entity"]
    starts = np.flatnonzero(entity.ne_missing(entity.shift(1)).to_numpy())
    offsets = np.append(starts, transactions.height).astype(np.int64)
    names = list(BASE_FEATURES)
    blocks = [base.to_numpy().astype(np.float32)]
    if counterparty_vectors is not None:
        cp_block, cp_names = _counterparty_features(transactions, counterparty_vectors, offsets)
        blocks.append(cp_block)
        names += cp_names

    keep = ["entity", "ts", "row"] + (["label"] if "label" in transactions.columns else [])
    return Features(transactions.select(keep), np.ascontiguousarray(np.hstack(blocks)), names, offsets)


def _counterparty_features(
    transactions: pl.DataFrame, vectors: Embeddings, offsets: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """``[unknown_counterparty, counterparty_cosine, cp_0 .. cp_{d-1}]`` float32 ``(n, 2 + d)`` and names."""
    keys = pl.Series("key", vectors.keys).cast(pl.String)
    index = (
        transactions["counterparty"]
        .cast(pl.String)
        .replace_strict(keys, pl.int_range(len(keys), eager=True), default=-1, return_dtype=pl.Int64)
        .to_numpy()
    )
    known = index >= 0
    unit = unit_rows(vectors.vectors)
    current = np.zeros((index.size, vectors.dim), dtype=np.float32)
    current[known] = unit[index[known]]

    # Sum of the entity's earlier unit vectors, from a cumulative sum in fixed point: integer sums
    # are exact, so "global prefix minus the prefix at the entity's start" depends on the entity's
    # own earlier rows only (exact causality, no rounding carried in from other entities).
    fixed = np.rint(current * FIXED_POINT).astype(np.int64)  # int64 sums are exact (any wrap-around cancels below)
    before = np.cumsum(fixed, axis=0) - fixed  # sum over all rows before each row
    first_row = np.repeat(offsets[:-1], np.diff(offsets))
    earlier = (before - before[first_row]).astype(np.float64) / FIXED_POINT
    dot = np.einsum("ij,ij->i", current.astype(np.float64), earlier)
    norm = np.linalg.norm(current, axis=1).astype(np.float64) * np.linalg.norm(earlier, axis=1)
    cosine = np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)
    block = np.column_stack([(~known).astype(np.float32), cosine.astype(np.float32), current])
    return block, list(COUNTERPARTY_FEATURES) + [f"{VECTOR_PREFIX}{j}" for j in range(vectors.dim)]


def column_weights(names: list[str]) -> np.ndarray:
    """Weight of each feature column in a step's reconstruction error, float32 ``(len(names),)``, summing to 1.

    Every feature counts once: a scalar feature's column weighs 1, and the ``d`` columns
    ``cp_0 .. cp_{d-1}`` of the counterparty vector share one weight (``1 / d`` each), so a
    32-dimensional vector does not drown the amount, time and habit features.
    """
    vector = np.array([name.startswith(VECTOR_PREFIX) for name in names])
    weights = np.where(vector, 1.0 / max(int(vector.sum()), 1), 1.0)
    return (weights / weights.sum()).astype(np.float32)
