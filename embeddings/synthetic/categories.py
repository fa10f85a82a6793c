"""The merchant categories of the synthetic card world: share of merchants, habit weight, amounts, rhythm."""

from __future__ import annotations

from typing import NamedTuple


class Category(NamedTuple):
    """Merchant category: population share, habit weight, amount median and spread, weekly and daily rhythm."""

    share: float
    habit: float
    median: float
    sigma: float
    weekend: float
    hours: list[tuple[float, float, float]]  # (centre hour, width, height) bumps


CATEGORIES: dict[str, Category] = {
    "grocery": Category(0.22, 1.0, 45.0, 0.6, 1.3, [(10, 2, 1.0), (18, 2, 1.2)]),
    "fuel": Category(0.12, 1.0, 50.0, 0.35, 1.0, [(8, 1.5, 1.0), (17, 2, 1.0)]),
    "restaurant": Category(0.18, 1.0, 30.0, 0.5, 1.4, [(12.5, 1, 1.5), (20, 1.5, 1.5)]),
    "pharmacy": Category(0.06, 0.6, 20.0, 0.6, 0.8, [(11, 2.5, 1.0), (17, 2, 0.8)]),
    "apparel": Category(0.10, 0.5, 70.0, 0.6, 1.5, [(15, 3, 1.0)]),
    "entertainment": Category(0.07, 0.5, 35.0, 0.5, 1.8, [(20.5, 2, 1.5)]),
    "online": Category(0.12, 0.7, 55.0, 0.8, 1.0, [(13, 3, 0.6), (21, 2, 1.0)]),
    "electronics": Category(0.06, 0.3, 250.0, 0.7, 1.4, [(15, 3, 1.0)]),
    "travel": Category(0.04, 0.2, 350.0, 0.6, 0.9, [(11, 3, 1.0)]),
    "jewelry": Category(0.03, 0.1, 450.0, 0.6, 1.4, [(15, 2.5, 1.0)]),
}
