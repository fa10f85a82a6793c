"""Small helpers shared by the dashboard's tabs: user errors as Gradio toasts, frames ready to show."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd
import polars as pl

from embeddings.errors import ConfigError, SeqembError
from embeddings.keys import id_problem


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an event handler; a seqemb error (bad id, nothing trained yet) becomes a one-line error toast."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SeqembError as exc:
            raise gr.Error(html.escape(str(exc)), print_exception=False) from None  # the toast renders HTML

    return wrapper


def shown(frame: pl.DataFrame, digits: int = 4) -> pd.DataFrame:
    """``frame`` for a table: datetimes as ``YYYY-MM-DD HH:MM:SS``, floats rounded, text nulls as "-"."""
    out = frame.with_columns(
        [pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S") for c, t in frame.schema.items() if t.is_temporal()]
        + [pl.col(c).round(digits) for c, t in frame.schema.items() if t.is_float()]
    )
    out = out.with_columns(pl.col(pl.String).fill_null("-"))
    return out.to_pandas()


def plot_frame(frame: pl.DataFrame) -> pd.DataFrame:
    """``frame`` as pandas for a native Gradio plot."""
    return frame.to_pandas()


def clean_id(text: str | None, name: str) -> str:
    """An id typed by an analyst: stripped, non-empty, a valid id (else a seqemb ConfigError)."""
    value = (text or "").strip()
    if not value:
        raise ConfigError(f"{name}: type an id first")
    problem = id_problem(value)
    if problem is not None:
        raise ConfigError(f"{name}: {problem}")
    return value
