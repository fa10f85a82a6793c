"""The store's first schema: runs, input tables (events, items, merchants, cards, transactions)
and outputs (recommendations, vectors, fraud_scores, alerts, labels).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.String(128), **kw)


def _run_ref() -> sa.Column:
    return sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column(
            "status",
            sa.Enum("running", "succeeded", "failed", name="run_status", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("config", sa.JSON(none_as_null=True)),
        sa.Column("metrics", sa.JSON(none_as_null=True)),
        sa.Column("artifact_path", sa.Text),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("error", sa.Text),
        sa.Column("parent_run_id", sa.String(36), sa.ForeignKey("runs.run_id", ondelete="SET NULL")),
        sa.Column("notes", sa.Text),
    )
    op.create_index("ix_runs_kind_started", "runs", ["kind", "started_at"])
    op.create_table(
        "events",
        _id("event_id", primary_key=True),
        _id("user_id", nullable=False),
        _id("item_id", nullable=False),
        sa.Column("ts", sa.DateTime, nullable=False),
        _id("session_id"),
        sa.Column("event_type", sa.String(32)),
    )
    op.create_index("ix_events_user_ts", "events", ["user_id", "ts"])
    op.create_index("ix_events_session_ts", "events", ["session_id", "ts"])
    op.create_table(
        "items",
        _id("item_id", primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("category", sa.String(128)),
        sa.Column("cluster", sa.Integer),
        sa.Column("attributes", sa.JSON(none_as_null=True)),
    )
    op.create_table(
        "merchants",
        _id("merchant_id", primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("category", sa.String(128)),
        sa.Column("country", sa.String(8)),
        sa.Column("cluster", sa.Integer),
        sa.Column("attributes", sa.JSON(none_as_null=True)),
    )
    op.create_table(
        "cards",
        _id("card_id", primary_key=True),
        sa.Column("cluster", sa.Integer),
        sa.Column("attributes", sa.JSON(none_as_null=True)),
    )
    op.create_table(
        "transactions",
        _id("txn_id", primary_key=True),
        _id("card_id", nullable=False),
        _id("merchant_id", nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("category", sa.String(128)),
        sa.Column("channel", sa.String(32)),
        sa.Column("is_fraud", sa.Boolean),
        sa.Column("fraud_kind", sa.String(64)),
    )
    op.create_index("ix_transactions_card_ts", "transactions", ["card_id", "ts"])
    op.create_index("ix_transactions_merchant", "transactions", ["merchant_id"])
    op.create_table(
        "recommendations",
        _run_ref(),
        _id("user_id", nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        _id("item_id", nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "user_id", "rank"),
    )
    op.create_index("ix_recommendations_user", "recommendations", ["user_id"])
    op.create_table(
        "vectors",
        _run_ref(),
        _id("key", nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_table(
        "fraud_scores",
        _run_ref(),
        _id("txn_id", nullable=False),
        _id("card_id"),
        sa.Column("score", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "txn_id"),
    )
    op.create_index("ix_fraud_scores_run_score", "fraud_scores", ["run_id", "score"])
    op.create_table(
        "alerts",
        _id("alert_id", primary_key=True),
        _run_ref(),
        _id("txn_id"),
        _id("card_id"),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open", "confirmed", "false_positive", name="alert_status", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_alerts_status_score", "alerts", ["status", "score"])
    op.create_index("ix_alerts_card", "alerts", ["card_id"])
    op.create_table(
        "labels",
        _id("label_id", primary_key=True),
        _id("txn_id"),
        _id("card_id"),
        _id("alert_id"),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("analyst", sa.String(128)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_labels_txn", "labels", ["txn_id"])
    op.create_index("ix_labels_card", "labels", ["card_id"])
