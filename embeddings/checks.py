"""The checks configs run on construction, each with one wording for its error.

``check_int("dim", 0)`` raises ``ConfigError("dim must be an integer >= 1, got 0")``;
``check_number("alpha", -1.0, above=0)`` raises ``ConfigError("alpha must be a finite number > 0,
got -1.0")``. Booleans are refused where a number is wanted (``True`` is an int to Python, never
to a user). Numpy scalars count as numbers.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from embeddings.errors import ConfigError


def check_int(name: str, value: object, *, minimum: int = 1, maximum: int | None = None, note: str = "") -> None:
    """Raise unless ``value`` is an integer with ``minimum <= value <= maximum`` (no upper bound when None).

    ``note`` is added to the bounds in the message, e.g. ``" (0 = every core)"``.
    """
    ok = isinstance(value, Integral) and not isinstance(value, bool) and value >= minimum
    if not ok or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ConfigError(f"{name} must be an integer {bounds}{note}, got {value!r}")


def check_number(
    name: str,
    value: object,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    note: str = "",
) -> None:
    """Raise unless ``value`` is a finite real number within the bounds given (each optional).

    ``above`` / ``below`` are strict bounds, ``at_least`` / ``at_most`` inclusive ones.
    """
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (
            (above is None or value > above)
            and (at_least is None or value >= at_least)
            and (at_most is None or value <= at_most)
            and (below is None or value < below)
        )
    if not ok:
        raise ConfigError(
            f"{name} must be a finite number{_bounds(above, at_least, at_most, below)}{note}, got {value!r}"
        )


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def _bounds(above: float | None, at_least: float | None, at_most: float | None, below: float | None) -> str:
    """The bounds as text: " > 0", " <= 1", " in (0, 1]", or "" for none."""
    low = ("(", above, ">") if above is not None else ("[", at_least, ">=") if at_least is not None else None
    high = (")", below, "<") if below is not None else ("]", at_most, "<=") if at_most is not None else None
    if low and high:
        return f" in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low or high:
        _, value, sign = low or high
        return f" {sign} {value:g}"
    return ""
