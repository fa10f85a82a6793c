"""Score one new transaction in about a millisecond, from per-entity state carried between calls.

:class:`StreamScorer` wraps a trained :class:`~fraud.model.FraudModel`. :meth:`StreamScorer.warm`
reads each entity's past transactions once (vectorised: :func:`~fraud.features.step_features`
over the whole history) and keeps, per entity, an :class:`EntityState`; :meth:`StreamScorer.score`
then scores one new transaction from that state alone and advances it. The scores are the ones
:meth:`FraudModel.score_frame <fraud.model.FraudModel.score_frame>` gives the same transaction
over the entity's full history (to float32 rounding of the batched GRU kernels).

What the state holds, and why each new transaction costs O(1) in the entity's history length:

- the running aggregates of the causal features: the number of earlier transactions ``n``, the
  float64 sum of their amounts (``amount_ratio = log((a + 1) / (sum / n + 1))``), the previous
  timestamp (``log_gap``), and the fixed-point int64 sum of the earlier unit counterparty
  vectors (``counterparty_cosine``), summed exactly as ``step_features`` sums them;
- the standardised feature rows of the entity's last ``L - 1`` steps (``L`` = the
  autoencoder's window). The autoencoder encodes a *window* from a zero GRU state: the window
  ending at step ``t`` starts at step ``t - L + 1``, so the encoder state reached at step ``t``
  is not the initial state of the next window and cannot be carried over without changing the
  model's scores. Each new transaction therefore re-runs the encoder and decoder GRUs over ``L``
  steps: a constant (``L``, not history length) amount of work, on at most ``(L - 1) x F``
  stored floats per entity.

Per entity that is ``(L - 1) * F`` float32 values, ``d`` int64 values and three scalars
(under 1 KB of arrays with ``L = 8``, 18 features and ``d = 8``). New entities start from an empty state (their
first transaction is a first step, as in batch scoring); an unknown counterparty gets the
``unknown_counterparty`` flag and a zero vector, as in batch scoring.

Bad input (a missing column, a non-finite amount, a timestamp earlier than the entity's last
one) raises the data layer's one-line :class:`DataError` and changes no state: a call's new
states are computed first and stored only when every transaction of the call has scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import polars as pl
import torch

from embeddings.errors import DataError, first_line
from embeddings.sources import Source
from embeddings.vectors import unit_rows
from fraud.features import BASE_FEATURES, COUNTERPARTY_FEATURES, FIXED_POINT, step_features
from fraud.model import FraudModel

_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S
_TWO_PI = 2.0 * math.pi
_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


class _Transaction(NamedTuple):
    """One checked new transaction: ``position`` in the caller's input, canonical values."""

    position: int
    txn_id: str | None
    entity: Any
    counterparty: str
    amount: float
    ts_us: int


@dataclass(frozen=True, slots=True)
class EntityState:
    """What one entity's next transaction needs from its past.

    - ``count``: transactions seen; ``amount_sum``: their amounts summed in time order (float64);
    - ``last_us``: the last transaction's time, microseconds since the unix epoch (naive UTC);
    - ``counterparty_sum``: int64 ``(d,)``, the fixed-point (``x 2^20``) sum of the unit
      counterparty vectors seen (None when the model has no counterparty vectors);
    - ``recent``: float32 ``(min(count, L - 1), F)``, the standardised feature rows of the last
      steps, oldest first.
    """

    count: int
    amount_sum: float
    last_us: int
    counterparty_sum: np.ndarray | None
    recent: np.ndarray


@dataclass(frozen=True, slots=True)
class StreamScore:
    """The score of one streamed transaction.

    ``txn_id`` is the model's transaction id column value (None when the model has none);
    ``raw_score`` the reconstruction error ``e_L`` of the transaction as the last step of its
    window; ``score`` the calibrated score in ``[0, 1]``; ``feature_errors`` the per-feature
    squared errors ``d_{L,f}`` (weighted by the autoencoder's ``weights`` they sum to ``raw_score``), by feature name.
    """

    txn_id: str | None
    entity: Any
    ts: datetime
    raw_score: float
    score: float
    feature_errors: dict[str, float]


class StreamScorer:
    """Scores new transactions one at a time (or a few at a time) from carried per-entity state.

    ``model`` is a trained :class:`~fraud.model.FraudModel`; its autoencoder runs on its own
    device (CPU is the target: one window per transaction). States live in a dict keyed by entity.
    """

    def __init__(self, model: FraudModel) -> None:
        self.model = model
        autoencoder = model.autoencoder.eval()
        self.window = autoencoder.config.window
        self.feature_names = list(autoencoder.feature_names)
        self._device = autoencoder.mean.device
        self._mean = autoencoder.mean.cpu().numpy()
        self._std = autoencoder.std.cpu().numpy()
        self._states: dict[Any, EntityState] = {}
        self._columns = model.scoring_schema.columns()
        if model.config.transaction_id is not None:
            self._columns["txn_id"] = model.config.transaction_id
        self._counterparty_index: dict[str, int] | None = None
        self._unit = None
        expected = list(BASE_FEATURES)
        if model.counterparty is not None:
            vectors = model.counterparty
            self._counterparty_index = {str(key): i for i, key in enumerate(vectors.keys)}
            self._unit = unit_rows(vectors.vectors)
            expected += list(COUNTERPARTY_FEATURES) + [f"cp_{j}" for j in range(vectors.dim)]
        if expected != self.feature_names:
            raise DataError(
                f"the fraud model's autoencoder was trained on features {self.feature_names}, "
                f"but its counterparty vectors give {expected}"
            )

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, entity: object) -> bool:
        return entity in self._states

    def state(self, entity: Any) -> EntityState | None:
        """The carried state of ``entity`` (None for an entity not seen yet)."""
        return self._states.get(entity)

    # ------------------------------------------------------------------ warm-up

    def warm(self, history: Source, *, table: str | None = None, query: str | None = None) -> int:
        """Build the state of every entity in ``history`` (anything :meth:`FraudModel.read` reads).

        ``history`` must hold each of its entities' whole past (the running means start at its
        first transaction). The states of its entities are replaced; other entities keep theirs.
        Vectorised over the history, plus one small object per entity. Returns the number of
        entities warmed.
        """
        frame = self.model.read(history, table=table, query=query)  # sorted by (entity, ts)
        features = step_features(frame, self.model.counterparty)
        if features.names != self.feature_names:
            raise DataError(f"history features {features.names} do not match the model's {self.feature_names}")
        offsets = features.offsets
        last = offsets[1:] - 1
        standardised = (features.matrix - self._mean) / self._std
        sums = frame.select(pl.col("amount").cum_sum().over("entity")).to_series().to_numpy()[last]
        last_us = frame["ts"].dt.epoch("us").to_numpy()[last]
        if self._unit is not None:
            cp_columns = slice(len(BASE_FEATURES) + len(COUNTERPARTY_FEATURES), None)
            fixed = np.rint(features.matrix[:, cp_columns] * FIXED_POINT).astype(np.int64)
            cp_sums = np.add.reduceat(fixed, offsets[:-1], axis=0)
        keep = self.window - 1
        entities = features.entities().to_list()
        for e, entity in enumerate(entities):
            start = max(int(offsets[e]), int(offsets[e + 1]) - keep)
            self._states[entity] = EntityState(
                count=int(offsets[e + 1] - offsets[e]),
                amount_sum=float(sums[e]),
                last_us=int(last_us[e]),
                counterparty_sum=None if self._unit is None else cp_sums[e],
                recent=standardised[start : offsets[e + 1]].copy(),
            )
        return len(entities)

    # ------------------------------------------------------------------ scoring

    def score(self, transaction: Mapping[str, Any] | pl.DataFrame) -> StreamScore:
        """Score one new transaction (a mapping or a one-row frame in the model's source
        columns) and advance its entity's state.

        A mapping with plain values (int or str ids, an int or float amount that is finite and
        >= 0, a naive ``datetime`` in UTC) is taken as it is; anything else (text amounts, ISO
        text or unix-second timestamps, a missing or bad value) goes through
        :meth:`FraudModel.read <fraud.model.FraudModel.read>`, which converts it or raises the
        data layer's one-line :class:`DataError`.
        """
        if isinstance(transaction, pl.DataFrame):
            if transaction.height != 1:
                raise DataError(f"score takes one transaction, got {transaction.height} rows; use score_many")
            return self.score_many(transaction)[0]
        plain = self._plain(transaction) if isinstance(transaction, Mapping) else None
        return self._score([plain])[0] if plain is not None else self.score_many([transaction])[0]

    def score_many(self, transactions: Sequence[Mapping[str, Any]] | pl.DataFrame) -> list[StreamScore]:
        """Score a few new transactions (mappings or a frame), all or nothing; results in input order.

        Read with :meth:`FraudModel.read <fraud.model.FraudModel.read>`; each entity's
        transactions are taken in time order (as batch scoring takes them) and the autoencoder
        runs once over all their windows. Any bad transaction raises a one-line
        :class:`DataError` and leaves every state as it was.
        """
        if not isinstance(transactions, pl.DataFrame) and len(transactions) == 0:
            return []
        frame = self.model.read(_as_frame(transactions))  # checked, sorted by (entity, ts)
        ids = frame["txn_id"].to_list() if self.model.config.transaction_id is not None else [None] * frame.height
        columns = (
            frame["row"].to_list(),
            ids,
            frame["entity"].to_list(),
            frame["counterparty"].cast(pl.String).to_list(),
            frame["amount"].to_list(),
            frame["ts"].dt.epoch("us").to_list(),
        )
        return self._score([_Transaction(*values) for values in zip(*columns)])

    def _plain(self, transaction: Mapping[str, Any]) -> _Transaction | None:
        """``transaction`` as a :class:`_Transaction` when all its values are plain and valid, else None."""
        values = {}
        for canonical, column in self._columns.items():
            value = transaction.get(column)
            if canonical == "amount":
                plain = type(value) in (int, float) and math.isfinite(value) and value >= 0
            elif canonical == "ts":
                plain = type(value) is datetime and value.tzinfo is None
            else:
                plain = type(value) is str or (type(value) is int and -(2**63) <= value < 2**63)
            if not plain:
                return None
            values[canonical] = value
        ts_us = (values["ts"] - _EPOCH) // _MICROSECOND
        txn_id = values.get("txn_id")
        return _Transaction(
            0,
            None if txn_id is None else str(txn_id),
            values["entity"],
            str(values["counterparty"]),
            float(values["amount"]),
            ts_us,
        )

    def _score(self, transactions: list[_Transaction]) -> list[StreamScore]:
        """Score checked transactions (each entity's in time order); store the new states only
        when all have scored. Results are ordered by ``position``."""
        pending: dict[Any, EntityState] = {}
        windows = np.zeros((len(transactions), self.window, len(self.feature_names)), dtype=np.float32)
        masks = np.zeros((len(transactions), self.window), dtype=np.float32)
        for i, t in enumerate(transactions):
            state = pending[t.entity] if t.entity in pending else self._states.get(t.entity)
            if state is not None and t.ts_us < state.last_us:
                name = "the transaction" if t.txn_id is None else f"transaction {t.txn_id!r}"
                raise DataError(
                    f"{name} of entity {t.entity!r} at {_datetime(t.ts_us)} is earlier than that entity's last "
                    f"transaction at {_datetime(state.last_us)}; stream each entity's transactions in time order"
                )
            steps, pending[t.entity] = self._step(state, t.amount, t.ts_us, t.counterparty)
            windows[i, self.window - steps.shape[0] :] = steps
            masks[i, self.window - steps.shape[0] :] = 1.0
        if not transactions:
            return []
        errors = self._last_step_errors(windows, masks)
        raw = (errors @ self.model.autoencoder.weights.cpu().numpy()).astype(np.float64)
        # A window of fewer than L steps means fewer than L - 1 earlier steps: what picks the calibration.
        calibrated = self.model.calibrate(raw, masks.sum(axis=1) - 1)
        self._states.update(pending)
        results = [
            StreamScore(
                t.txn_id,
                t.entity,
                _datetime(t.ts_us),
                float(raw[i]),
                float(calibrated[i]),
                dict(zip(self.feature_names, errors[i].tolist())),
            )
            for i, t in enumerate(transactions)
        ]
        order = sorted(range(len(transactions)), key=lambda i: transactions[i].position)
        return [results[i] for i in order]

    def _step(
        self, state: EntityState | None, amount: float, ts_us: int, counterparty: str
    ) -> tuple[np.ndarray, EntityState]:
        """The window's real steps ending at one new step (standardised float32 ``(k <= L, F)``)
        and the entity's next state: :func:`~fraud.features.step_features`'s formulas, computed
        from the running aggregates instead of the history."""
        first = state is None
        count = 0 if first else state.count
        amount_sum = 0.0 if first else state.amount_sum
        ratio = 0.0 if first else math.log((amount + 1.0) / (amount_sum / count + 1.0))
        gap = 0.0 if first else math.log1p((ts_us - state.last_us) / _US_PER_S)
        of_day = ts_us % _US_PER_DAY
        hour = of_day // 3_600_000_000 + (of_day // 60_000_000 % 60) / 60.0
        hour += (of_day // _US_PER_S % 60 + (of_day % _US_PER_S) / 1e6) / 3600.0
        weekday = (ts_us // _US_PER_DAY + _EPOCH_WEEKDAY) % 7
        hour_angle, weekday_angle = hour * (_TWO_PI / 24.0), weekday * (_TWO_PI / 7.0)
        base = [
            math.log1p(amount),
            ratio,
            gap,
            float(first),
            math.sin(hour_angle),
            math.cos(hour_angle),
            math.sin(weekday_angle),
            math.cos(weekday_angle),
        ]
        row = np.empty(len(self.feature_names), dtype=np.float32)
        row[: len(base)] = base
        counterparty_sum = None
        if self._unit is not None:
            counterparty_sum = np.zeros(self._unit.shape[1], dtype=np.int64) if first else state.counterparty_sum
            index = self._counterparty_index.get(counterparty)
            current = np.zeros(self._unit.shape[1], dtype=np.float32) if index is None else self._unit[index]
            earlier = counterparty_sum.astype(np.float64) / FIXED_POINT
            norm = float(np.linalg.norm(current)) * float(np.linalg.norm(earlier))
            cosine = float(current.astype(np.float64) @ earlier) / norm if norm > 0 else 0.0
            row[len(base)] = float(index is None)
            row[len(base) + 1] = cosine
            row[len(base) + 2 :] = current
            counterparty_sum = counterparty_sum + np.rint(current * FIXED_POINT).astype(np.int64)
        row = (row - self._mean) / self._std
        steps = row[None] if first else np.concatenate([state.recent, row[None]])
        recent = steps[1:] if steps.shape[0] == self.window else steps  # the last L - 1 steps
        return steps, EntityState(count + 1, amount_sum + amount, ts_us, counterparty_sum, recent)

    @torch.inference_mode()
    def _last_step_errors(self, windows: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Per-feature squared errors ``d_{L,f}`` of the last step of each window, float32 ``[B, F]``."""
        x = torch.from_numpy(windows).to(self._device)
        mask = torch.from_numpy(masks).to(self._device)
        return ((self.model.autoencoder(x, mask) - x)[:, -1] ** 2).cpu().numpy()


def _as_frame(transactions: Sequence[Mapping[str, Any]] | Mapping[str, Any] | pl.DataFrame) -> pl.DataFrame:
    if isinstance(transactions, pl.DataFrame):
        return transactions
    if isinstance(transactions, Mapping) or not all(isinstance(t, Mapping) for t in transactions):
        raise DataError("transactions must be a polars DataFrame or a list of mappings (column -> value)")
    try:
        return pl.DataFrame(list(transactions))
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"cannot build a table from the transactions: {first_line(exc)}") from None


def _datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)
