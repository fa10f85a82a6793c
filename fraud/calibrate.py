"""Readable scores and alert thresholds from raw reconstruction errors.

A raw autoencoder score (a squared error) means little to an analyst. :class:`Calibration` is
fitted on the scores of *genuine* validation steps and keeps their empirical distribution as
``points`` sorted quantiles ``q_0 <= ... <= q_{n-1}`` at probabilities ``p_j = j / (n - 1)``
(1,001 points by default, not every score). Then

- :meth:`Calibration.calibrate` maps a raw score ``s`` to ``F(s)``, the share of genuine
  validation scores below ``s`` (piecewise linear between quantiles, 0 below ``q_0``, 1 above
  ``q_{n-1}``): monotone, in ``[0, 1]``, read as "riskier than ``100 F(s)`` % of genuine
  activity". Calibrated genuine scores are about uniform on ``[0, 1]``.
- :meth:`Calibration.threshold_for_fpr` gives the threshold ``t = F^{-1}(1 - fpr)``: alerting on
  ``score > t`` flags about a share ``fpr`` of genuine steps.

:func:`threshold_for_budget` serves an analyst team that works ``per_day`` cards a day: each
day, every entity's score is its highest step score that day, and the ``per_day`` entities with
the highest such scores are alerted (exactly ``per_day`` when the day has that many entities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from embeddings.checks import check_int, check_number
from embeddings.errors import ConfigError
from embeddings.files import format_tag

FORMAT = format_tag("calibration", 1)
DEFAULT_POINTS = 1001


def _finite_scores(scores: object, what: str) -> np.ndarray:
    try:
        values = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be numbers") from None
    if values.ndim != 1:
        raise ConfigError(f"{what} must be one-dimensional, got shape {values.shape}")
    if values.size == 0:
        raise ConfigError(f"{what} are empty")
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ConfigError(f"{what} must be finite; position {bad} is {values[bad]!r}")
    return values


@dataclass(frozen=True)
class Calibration:
    """The empirical distribution of genuine validation scores, as sorted quantiles.

    ``quantiles``: float64 ``(points,)``, non-decreasing, ``quantiles[j]`` the ``j / (points - 1)``
    quantile of the genuine scores; ``n_fitted``: how many scores they were taken from.
    Make one with :meth:`fit` or :meth:`from_dict`.
    """

    quantiles: np.ndarray
    n_fitted: int

    def __post_init__(self) -> None:
        q = np.asarray(self.quantiles, dtype=np.float64)
        if q.ndim != 1 or q.size < 2:
            raise ConfigError(f"a calibration needs at least 2 quantiles, got shape {q.shape}")
        if not np.isfinite(q).all():
            raise ConfigError("calibration quantiles must be finite")
        if (np.diff(q) < 0).any():
            raise ConfigError("calibration quantiles must be sorted (non-decreasing)")
        check_int("n_fitted", self.n_fitted)
        object.__setattr__(self, "quantiles", q)

    @classmethod
    def fit(cls, genuine_scores: object, points: int = DEFAULT_POINTS) -> Calibration:
        """Fit on the raw scores of genuine validation steps (finite numbers; NaN is an error)."""
        check_int("points", points, minimum=2)
        values = _finite_scores(genuine_scores, "genuine scores")
        return cls(np.quantile(values, np.linspace(0.0, 1.0, points)), int(values.size))

    @property
    def median(self) -> float:
        """The median genuine raw score."""
        return float(np.interp(0.5, self.probabilities, self.quantiles))

    @property
    def probabilities(self) -> np.ndarray:
        """``p_j = j / (points - 1)``, the probability of each quantile."""
        return np.linspace(0.0, 1.0, self.quantiles.size)

    def _cdf_knots(self) -> tuple[np.ndarray, np.ndarray]:
        # Tied quantiles collapse to one knot carrying the highest probability (a right-continuous CDF).
        values, last = np.unique(self.quantiles[::-1], return_index=True)
        return values, self.probabilities[::-1][last]

    def calibrate(self, raw: object) -> np.ndarray:
        """Calibrated scores in ``[0, 1]`` (float64, the shape of ``raw``); NaN stays NaN."""
        values = np.asarray(raw, dtype=np.float64)
        xs, ps = self._cdf_knots()
        if xs.size == 1:  # every genuine score was the same
            return np.where(np.isnan(values), np.nan, (values >= xs[0]).astype(np.float64))
        return np.interp(values, xs, ps, left=0.0, right=1.0)

    def threshold_for_fpr(self, target_fpr: float) -> float:
        """Raw threshold ``t`` such that about ``target_fpr`` of genuine steps score ``> t``.

        ``target_fpr`` in ``(0, 1)``. Resolution is ``1 / (points - 1)``: below it the threshold
        is the highest genuine validation score.
        """
        check_number("target_fpr", target_fpr, above=0, below=1)
        return float(np.interp(1.0 - float(target_fpr), self.probabilities, self.quantiles))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"format", "n_fitted", "quantiles"}``."""
        return {"format": FORMAT, "n_fitted": self.n_fitted, "quantiles": self.quantiles.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or "quantiles" not in data or "n_fitted" not in data:
            raise ConfigError("a calibration dict needs 'quantiles' and 'n_fitted'")
        if data.get("format", FORMAT) != FORMAT:
            raise ConfigError(f"unknown calibration format {data.get('format')!r}; expected {FORMAT}")
        try:
            quantiles = np.asarray(data["quantiles"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError("calibration quantiles must be numbers") from None
        return cls(quantiles, data["n_fitted"])


@dataclass(frozen=True)
class AlertBudget:
    """The alerts that a budget of ``per_day`` entities a day selects.

    - ``alerts``: one row per alerted (day, entity): ``day``, ``entity``, ``score`` (the
      entity's highest step score that day), ``step`` (position, in the input arrays, of that
      step; the first one on ties) and ``rank`` (1 = riskiest of the day); sorted by day, rank.
    - ``thresholds``: per day, ``day`` and ``threshold`` (the lowest alerted score that day)
      and ``n_alerts``.
    - ``threshold``: the median of the daily thresholds, a fixed cut-off that would have
      alerted about ``per_day`` entities on a typical day.
    - ``selected``: boolean ``(n_steps,)``, True at the ``step`` of each alert.
    """

    per_day: int
    alerts: pl.DataFrame
    thresholds: pl.DataFrame
    threshold: float
    selected: np.ndarray


def threshold_for_budget(scores: object, days: object, entities: object, per_day: int) -> AlertBudget:
    """Alert the ``per_day`` entities (cards) with the highest maximum step score each day.

    ``scores``, ``days`` and ``entities`` are aligned per step (numpy arrays, lists or polars
    Series). ``days`` are day labels (dates, ints, strings); datetimes are truncated to their
    date. Ties between entities with equal scores go to the smaller entity id, so each day has
    exactly ``min(per_day, entities that day)`` alerts. Works on whole columns (polars group-by).
    """
    check_int("per_day", per_day)
    values = _finite_scores(scores, "scores")
    day = days if isinstance(days, pl.Series) else pl.Series(np.asarray(days))
    entity = entities if isinstance(entities, pl.Series) else pl.Series(np.asarray(entities))
    if len(day) != values.size or len(entity) != values.size:
        raise ConfigError(f"scores, days and entities must align: lengths {values.size}, {len(day)}, {len(entity)}")
    if day.null_count() or entity.null_count():
        raise ConfigError("days and entities must not be null")
    if day.dtype == pl.Datetime:
        day = day.dt.date()
    frame = pl.DataFrame(
        {"day": day, "entity": entity, "score": values, "step": np.arange(values.size, dtype=np.int64)}
    )
    best = frame.group_by("day", "entity").agg(
        score=pl.col("score").max(), step=pl.col("step").get(pl.col("score").arg_max())
    )
    ranked = best.sort(["day", "score", "entity"], descending=[False, True, False]).with_columns(
        rank=(pl.int_range(pl.len()).over("day") + 1).cast(pl.Int64)
    )
    alerts = ranked.filter(pl.col("rank") <= per_day)
    thresholds = alerts.group_by("day").agg(threshold=pl.col("score").min(), n_alerts=pl.len()).sort("day")
    selected = np.zeros(values.size, dtype=bool)
    selected[alerts["step"].to_numpy()] = True
    return AlertBudget(
        per_day=per_day,
        alerts=alerts,
        thresholds=thresholds,
        threshold=float(np.median(thresholds["threshold"].to_numpy())),
        selected=selected,
    )
