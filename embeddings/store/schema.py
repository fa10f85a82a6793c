"""The tables of the seqemb store, as SQLAlchemy Core ``Table`` objects on one ``MetaData``.

Three groups of tables:

- bookkeeping: ``runs`` (one row per job: kind, status, config, metrics, artifact path);
- input data that generators and loaders write and jobs read: ``events``, ``items``,
  ``cards``, ``transactions``, ``merchants``;
- outputs that jobs and analysts write: ``vectors`` (a run's embeddings), ``recommendations``,
  ``fraud_scores``, ``alerts``, ``labels``.

Conventions, the same for every table:

- Ids of user data (users, items, sessions, events, cards, merchants, transactions) are
  strings of at most 128 characters; :meth:`embeddings.store.Store.write` turns integer ids
  into their decimal text, so ``42`` and ``"42"`` are the same id.
- Run ids are UUID4 strings (36 characters).
- Datetimes are stored timezone-naive and mean UTC; timezone-aware input is converted to UTC
  before it is stored.
- Every table has a primary key, so writing the same rows twice keeps each row once.
- Output tables reference ``runs.run_id``; deleting a run deletes its outputs.

A change to the schema is a new Alembic revision in ``migrations/versions`` (see
:mod:`embeddings.store.migrate`) plus the same change here: a new store is created from these
definitions, an existing one is migrated, and ``tests/embeddings/test_migrations.py`` checks that
both give the same schema.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from embeddings.keys import ID_LENGTH

# "interrupted": the run's process died without finishing it (see embeddings.store.owner).
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")
# "superseded": a newer run scored the same transaction of the same source and holds its open alert.
ALERT_STATUSES = ("open", "confirmed", "false_positive", "superseded")


def utcnow() -> datetime:
    """The current time as a timezone-naive UTC datetime (the store's convention)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _id() -> String:
    return String(ID_LENGTH)


def _json() -> JSON:
    # none_as_null: Python None is stored as SQL NULL, not as the JSON text 'null'.
    return JSON(none_as_null=True)


def _run_ref(nullable: bool = False) -> Column:
    return Column("run_id", String(36), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=nullable)


metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("status", Enum(*RUN_STATUSES, name="run_status", native_enum=False, create_constraint=True), nullable=False),
    Column("config", _json()),
    Column("metrics", _json()),
    Column("artifact_path", Text),
    Column("started_at", DateTime, nullable=False, default=utcnow),
    Column("finished_at", DateTime),
    Column("error", Text),
    Column("parent_run_id", String(36), ForeignKey("runs.run_id", ondelete="SET NULL")),
    Column("notes", Text),
    # The process running the run (embeddings.store.owner) and its last sign of life.
    Column("owner_host", String(255)),
    Column("owner_pid", Integer),
    Column("owner_started", Float),
    Column("heartbeat_at", DateTime),
    # What the run locks (a digest of job kind, source and model); None: no lock.
    Column("lock_key", String(64)),
    Index("ix_runs_kind_started", "kind", "started_at"),
)
# One running run per lock: a second copy of a job cannot start, whatever the process.
Index(
    "ux_runs_running_lock",
    runs.c.lock_key,
    unique=True,
    sqlite_where=runs.c.status == "running",
    postgresql_where=runs.c.status == "running",
)

events = Table(
    "events",
    metadata,
    Column("event_id", _id(), primary_key=True),
    Column("user_id", _id(), nullable=False),
    Column("item_id", _id(), nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("session_id", _id()),
    Column("event_type", String(32)),
    Index("ix_events_user_ts", "user_id", "ts"),
    Index("ix_events_session_ts", "session_id", "ts"),
)

items = Table(
    "items",
    metadata,
    Column("item_id", _id(), primary_key=True),
    Column("name", Text),
    Column("category", String(128)),
    Column("cluster", Integer),
    Column("attributes", _json()),
)

merchants = Table(
    "merchants",
    metadata,
    Column("merchant_id", _id(), primary_key=True),
    Column("name", Text),
    Column("category", String(128)),
    Column("country", String(8)),
    Column("cluster", Integer),
    Column("attributes", _json()),
)

cards = Table(
    "cards",
    metadata,
    Column("card_id", _id(), primary_key=True),
    Column("cluster", Integer),
    Column("attributes", _json()),
)

transactions = Table(
    "transactions",
    metadata,
    Column("txn_id", _id(), primary_key=True),
    Column("card_id", _id(), nullable=False),
    Column("merchant_id", _id(), nullable=False),
    Column("amount", Float, nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("category", String(128)),
    Column("channel", String(32)),
    Column("is_fraud", Boolean),
    Column("fraud_kind", String(64)),
    Index("ix_transactions_card_ts", "card_id", "ts"),
    Index("ix_transactions_merchant", "merchant_id"),
)

recommendations = Table(
    "recommendations",
    metadata,
    _run_ref(),
    Column("user_id", _id(), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("item_id", _id(), nullable=False),
    Column("score", Float, nullable=False),
    # run_id leads the primary key; this serves look-ups of one user across runs.
    PrimaryKeyConstraint("run_id", "user_id", "rank"),
    Index("ix_recommendations_user", "user_id"),
)

# One row per embedded key of a run: its float32 vector as little-endian bytes.
vectors = Table(
    "vectors",
    metadata,
    _run_ref(),
    Column("key", _id(), nullable=False),
    Column("vector", LargeBinary, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
)

fraud_scores = Table(
    "fraud_scores",
    metadata,
    _run_ref(),
    Column("txn_id", _id(), nullable=False),
    Column("card_id", _id()),
    Column("score", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "txn_id"),
    Index("ix_fraud_scores_run_score", "run_id", "score"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", _id(), primary_key=True),
    _run_ref(),
    Column("txn_id", _id()),
    Column("card_id", _id()),
    Column("score", Float, nullable=False),
    Column("kind", String(64), nullable=False),
    Column(
        "status",
        Enum(*ALERT_STATUSES, name="alert_status", native_enum=False, create_constraint=True),
        nullable=False,
        default="open",
    ),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("updated_at", DateTime),
    Column("note", Text),
    # The transaction's time, so the alerts tab filters and sorts by day without a join.
    Column("ts", DateTime),
    Index("ix_alerts_status_score", "status", "score"),
    Index("ix_alerts_card", "card_id"),
    # A rescoring supersedes the earlier open alerts of each chunk's transactions by txn_id.
    Index("ix_alerts_txn", "txn_id"),
    # The alerts tab: one run's alerts by score, by day, by card.
    Index("ix_alerts_run_score", "run_id", "score"),
    Index("ix_alerts_run_ts", "run_id", "ts"),
    Index("ix_alerts_run_card", "run_id", "card_id"),
)

labels = Table(
    "labels",
    metadata,
    Column("label_id", _id(), primary_key=True),
    Column("txn_id", _id()),
    Column("card_id", _id()),
    Column("alert_id", _id()),
    Column("label", String(32), nullable=False),
    Column("analyst", String(128)),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("note", Text),
    Index("ix_labels_txn", "txn_id"),
    Index("ix_labels_card", "card_id"),
)
