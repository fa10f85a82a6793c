"""Vectorised sampling helpers shared by the synthetic shop and card generators.

Every helper draws for a whole array of rows at once, so generating a world costs
a handful of numpy calls per table and no Python loop per event.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import polars as pl

US_PER_MINUTE = 60_000_000
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR

# Keeps r + u strictly below r + 1 in float64 for any row index r used here.
_BELOW_ONE = 1.0 - 1e-9


def draw_rows(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Draw one column per entry of ``rows`` from the categorical ``probs[row]``.

    ``probs`` is ``(k, m)`` with non-negative rows (zero-padded rows are fine, each row
    needs one positive entry); ``rows`` is ``(n,)`` ints in ``[0, k)``. Returns ``(n,)``
    int64 column indices. The row CDFs are laid end to end, shifted by their row index,
    so a single ``searchsorted`` serves all rows.
    """
    cdf = np.cumsum(probs, axis=1, dtype=np.float64)
    cdf /= cdf[:, -1:]
    flat = (cdf + np.arange(len(probs))[:, None]).ravel()
    rows = np.asarray(rows, dtype=np.int64)
    u = rng.random(rows.size) * _BELOW_ONE
    return np.searchsorted(flat, rows + u, side="right") - rows * probs.shape[1]


def group_cumsum(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``values`` restarting at each group; groups are consecutive runs of ``lengths``."""
    padded = np.concatenate(([0], np.cumsum(values)))
    starts = np.cumsum(lengths) - lengths
    return padded[1:] - np.repeat(padded[starts], lengths)


def run_offsets(step: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Offsets within consecutive runs of ``lengths`` from the gaps ``step``; each run starts at 0.

    ``step`` (one gap per row) is overwritten: each run's first gap is set to 0.
    """
    step[np.cumsum(lengths) - lengths] = 0
    return group_cumsum(step, lengths)


def day_weights(days: int, start: date, weekend_factor: np.ndarray) -> np.ndarray:
    """``(len(weekend_factor), days)`` weights: 1 on weekdays, ``weekend_factor[k]`` on Sat/Sun."""
    weekday = (start.weekday() + np.arange(days)) % 7
    weights = np.ones((weekend_factor.size, days))
    weights[:, weekday >= 5] = weekend_factor[:, None]
    return weights


def bumps(peaks: list[tuple[float, float, float]], size: int = 24, floor: float = 0.02) -> np.ndarray:
    """Circular profile over ``size`` bins: sum of Gaussian bumps ``(centre, width, height)`` plus a floor."""
    x = np.arange(size)
    out = np.full(size, floor)
    for centre, width, height in peaks:
        d = np.minimum(np.abs(x - centre), size - np.abs(x - centre))
        out += height * np.exp(-0.5 * (d / width) ** 2)
    return out


def ids(prefix: str, index: np.ndarray, width: int) -> pl.Series:
    """String ids ``prefix`` + zero-padded ``index + 1``, e.g. ``i0001`` for index 0."""
    digits = pl.Series(np.asarray(index, dtype=np.int64) + 1).cast(pl.String).str.zfill(width)
    return pl.select(pl.lit(prefix) + digits).to_series()


def id_width(n: int) -> int:
    """Digits for ids of ``n`` entities: at least 4, as in ``i0001``."""
    return max(4, len(str(n)))


def epoch_us(day: date) -> int:
    """Microseconds from the Unix epoch to midnight starting ``day``."""
    return (datetime.combine(day, time()) - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def datetimes(us: np.ndarray) -> pl.Series:
    """Naive microsecond ``Datetime`` series from epoch microseconds."""
    return pl.Series(np.asarray(us, dtype=np.int64)).cast(pl.Datetime("us"))
