from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from embeddings.errors import ConfigError
from fraud.calibrate import Calibration, threshold_for_budget


@pytest.fixture(scope="module")
def genuine():
    """Heavy-tailed 'reconstruction errors' of genuine steps: validation and fresh ones."""
    rng = np.random.default_rng(0)
    return rng.lognormal(0.0, 1.0, 20_000), rng.lognormal(0.0, 1.0, 20_000)


def test_calibrated_genuine_scores_are_uniform(genuine):
    validation, fresh = genuine
    cal = Calibration.fit(validation)
    assert cal.quantiles.size == 1001 and cal.n_fitted == validation.size
    for scores in (validation, fresh):
        u = cal.calibrate(scores)
        assert u.min() >= 0.0 and u.max() <= 1.0
        # Kolmogorov distance to U(0, 1): small for 20,000 draws.
        s = np.sort(u)
        grid = np.arange(1, s.size + 1) / s.size
        assert np.abs(s - grid).max() < 0.02
    # Monotone, clipped to [0, 1] outside the fitted range, NaN passes through.
    raw = np.linspace(-1.0, 200.0, 5000)
    assert (np.diff(cal.calibrate(raw)) >= 0).all()
    assert cal.calibrate(-5.0) == 0.0 and cal.calibrate(1e9) == 1.0
    assert np.isnan(cal.calibrate([np.nan]))[0]
    assert cal.calibrate(np.median(validation)) == pytest.approx(0.5, abs=0.002)


def test_threshold_for_fpr_gives_target_on_fresh_scores(genuine):
    validation, fresh = genuine
    cal = Calibration.fit(validation)
    for target in (0.001, 0.01, 0.05, 0.2):
        t = cal.threshold_for_fpr(target)
        fpr = (fresh > t).mean()
        assert abs(fpr - target) < max(0.25 * target, 0.003), (target, fpr)
        assert cal.calibrate(t) == pytest.approx(1.0 - target, abs=1e-9)
    assert cal.threshold_for_fpr(0.01) > cal.threshold_for_fpr(0.1)
    for bad in (0.0, 1.0, -0.1, "0.1", True):
        with pytest.raises(ConfigError):
            cal.threshold_for_fpr(bad)


def test_budget_picks_exactly_k_cards_per_day():
    rng = np.random.default_rng(1)
    n = 5000
    start = datetime(2026, 1, 1)
    ts = pl.Series([start + timedelta(minutes=int(m)) for m in rng.integers(0, 7 * 24 * 60, n)])
    cards = rng.integers(0, 60, n)
    scores = rng.exponential(size=n)
    budget = threshold_for_budget(scores, ts, cards, per_day=5)
    day = ts.dt.date().to_numpy()
    assert budget.thresholds.height == 7 and (budget.thresholds["n_alerts"] == 5).all()
    alerts = budget.alerts
    assert alerts.height == 35 and alerts.select(pl.struct("day", "entity").is_unique().all()).item()
    assert budget.selected.sum() == 35
    # Brute force: per day, each card's max score; the alerted cards are the top 5.
    for d in np.unique(day):
        on = day == d
        best = {c: scores[on & (cards == c)].max() for c in np.unique(cards[on])}
        want = sorted(best, key=lambda c: -best[c])[:5]
        got = alerts.filter(pl.col("day") == d)
        assert got["entity"].to_list() == want
        np.testing.assert_allclose(got["score"].to_numpy(), [best[c] for c in want])
        assert (scores[got["step"].to_numpy()] == got["score"].to_numpy()).all()
    assert budget.thresholds["threshold"].min() <= budget.threshold <= budget.thresholds["threshold"].max()
    # A day with fewer cards than the budget alerts all of them; ties are broken deterministically.
    small = threshold_for_budget([1.0, 1.0, 0.5], [0, 0, 1], ["b", "a", "a"], per_day=3)
    assert small.alerts["entity"].to_list() == ["a", "b", "a"]
    tied = threshold_for_budget([1.0, 1.0], [0, 0], ["b", "a"], per_day=1)
    assert tied.alerts["entity"].to_list() == ["a"]


def test_round_trip_and_errors(genuine):
    cal = Calibration.fit(genuine[0], points=101)
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(back.quantiles, cal.quantiles)
    assert back.n_fitted == cal.n_fitted
    np.testing.assert_array_equal(back.calibrate(genuine[1]), cal.calibrate(genuine[1]))
    constant = Calibration.fit([2.0, 2.0, 2.0])
    np.testing.assert_array_equal(constant.calibrate([1.0, 2.0, 3.0]), [0.0, 1.0, 1.0])
    with pytest.raises(ConfigError):
        Calibration.fit([])
    with pytest.raises(ConfigError):
        Calibration.fit([1.0, np.nan])
    with pytest.raises(ConfigError):
        Calibration.fit([1.0, 2.0], points=1)
    with pytest.raises(ConfigError):
        Calibration.from_dict({"quantiles": [2.0, 1.0], "n_fitted": 2})
    with pytest.raises(ConfigError):
        Calibration.from_dict({"quantiles": [1.0, 2.0]})
    with pytest.raises(ConfigError):
        threshold_for_budget([1.0, 2.0], [0], [0, 1], per_day=1)
    with pytest.raises(ConfigError):
        threshold_for_budget([1.0], [0], [0], per_day=0)
