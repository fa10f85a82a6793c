"""Analyst feedback: confirmed frauds and false positives, kept in the store's ``labels`` table.

Every call to :func:`record_label` appends one row (a fresh ``label_id``), so the table is the
history of what analysts said; :func:`read_labels` keeps the latest label of each transaction
(an analyst who changes their mind overrides the earlier verdict). Two labels are stored:

- ``"fraud"``   — also accepted as "confirmed fraud", "confirmed", "true positive", 1 / True;
- ``"genuine"`` — also accepted as "false positive", "false_positive", "legit", 0 / False.

Writes go through :meth:`embeddings.store.Store.write` (bound parameters, one transaction).
"""

from __future__ import annotations

import uuid

import polars as pl

from embeddings.errors import ConfigError
from embeddings.keys import id_problem
from embeddings.store import Store
from embeddings.store.schema import utcnow

FRAUD = "fraud"
GENUINE = "genuine"
LABELS = (FRAUD, GENUINE)
ANALYST_LENGTH = 128
NOTE_LENGTH = 10_000

_ALIASES = {
    "fraud": FRAUD,
    "confirmed fraud": FRAUD,
    "confirmed_fraud": FRAUD,
    "confirmed": FRAUD,
    "true positive": FRAUD,
    "true_positive": FRAUD,
    "1": FRAUD,
    "genuine": GENUINE,
    "false positive": GENUINE,
    "false_positive": GENUINE,
    "legit": GENUINE,
    "legitimate": GENUINE,
    "0": GENUINE,
}


def normalise_label(label: object) -> str:
    """``"fraud"`` or ``"genuine"`` for any accepted spelling (see the module doc); ConfigError otherwise."""
    if isinstance(label, bool):
        return FRAUD if label else GENUINE
    if isinstance(label, int) and label in (0, 1):
        return FRAUD if label == 1 else GENUINE
    if isinstance(label, str):
        key = " ".join(label.strip().lower().replace("-", " ").split())
        if key in _ALIASES:
            return _ALIASES[key]
        if key.replace(" ", "_") in _ALIASES:
            return _ALIASES[key.replace(" ", "_")]
    raise ConfigError(f"label must be 'fraud' (confirmed fraud) or 'genuine' (false positive), got {label!r}")


def _id(name: str, value: object, required: bool) -> str | None:
    if value is None:
        if required:
            raise ConfigError(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"{name} must be a string or an integer id, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{name} must not be empty")
    problem = id_problem(text)
    if problem is not None:
        raise ConfigError(f"{name}: {problem}")
    return text


def _text(name: str, value: object, limit: int, required: bool) -> str | None:
    if value is None:
        if required:
            raise ConfigError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
    text = value.strip()
    if required and not text:
        raise ConfigError(f"{name} must not be empty")
    if len(text) > limit:
        raise ConfigError(f"{name} is {len(text)} characters long; at most {limit} are allowed")
    return text or None


def record_label(
    store: Store,
    *,
    txn_id: str | int,
    card_id: str | int,
    label: object,
    analyst: str,
    alert_id: str | int | None = None,
    note: str | None = None,
) -> str:
    """Store an analyst's verdict on one transaction; return the new ``label_id``.

    Raises :class:`ConfigError` (one line) for an unknown label, an empty or over-long id,
    analyst name (≤ 128 characters) or note (≤ 10,000 characters). Nothing is written then.
    """
    row = {
        "label_id": str(uuid.uuid4()),
        "txn_id": _id("txn_id", txn_id, True),
        "card_id": _id("card_id", card_id, True),
        "alert_id": _id("alert_id", alert_id, False),
        "label": normalise_label(label),
        "analyst": _text("analyst", analyst, ANALYST_LENGTH, True),
        "created_at": utcnow(),
        "note": _text("note", note, NOTE_LENGTH, False),
    }
    store.write("labels", pl.DataFrame([row], schema=_SCHEMA))
    return row["label_id"]


_SCHEMA = {
    "label_id": pl.String,
    "txn_id": pl.String,
    "card_id": pl.String,
    "alert_id": pl.String,
    "label": pl.String,
    "analyst": pl.String,
    "created_at": pl.Datetime("us"),
    "note": pl.String,
}


def read_labels(store: Store, *, history: bool = False) -> pl.DataFrame:
    """Labels as a frame: ``txn_id, card_id, alert_id, label, is_fraud (Int8), analyst, created_at,
    note, label_id``; one row per transaction, its latest label (``history=True``: every row, oldest first).

    Labels stored by other tools with another spelling are normalised; rows whose label cannot
    be read as fraud/genuine are dropped.
    """
    frame = store.read("labels", order_by=["created_at", "label_id"])
    mapping = pl.col("label").str.strip_chars().str.to_lowercase().str.replace_all(r"[-_\s]+", " ")
    aliases = {k.replace("_", " "): v for k, v in _ALIASES.items()}
    frame = frame.with_columns(label=mapping.replace_strict(aliases, default=None, return_dtype=pl.String)).filter(
        pl.col("label").is_not_null()
    )
    frame = frame.with_columns(is_fraud=(pl.col("label") == FRAUD).cast(pl.Int8))
    if not history:
        frame = frame.group_by("txn_id", maintain_order=True).last().sort(["created_at", "label_id"])
    return frame.select(
        "txn_id", "card_id", "alert_id", "label", "is_fraud", "analyst", "created_at", "note", "label_id"
    )
