"""Runs record their owner (host, pid, process start), a heartbeat and a lock key; one running
run per lock key; runs can be ``interrupted`` and alerts ``superseded``.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


OLD_RUN_STATUS = _enum("run_status", "running", "succeeded", "failed")
RUN_STATUS = _enum("run_status", "running", "succeeded", "failed", "interrupted")
OLD_ALERT_STATUS = _enum("alert_status", "open", "confirmed", "false_positive")
ALERT_STATUS = _enum("alert_status", "open", "confirmed", "false_positive", "superseded")


def upgrade() -> None:
    # On SQLite a CHECK constraint changes only by copying the table (batch mode); PostgreSQL alters it.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner_host", sa.String(255)))
        batch.add_column(sa.Column("owner_pid", sa.Integer))
        batch.add_column(sa.Column("owner_started", sa.Float))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime))
        batch.add_column(sa.Column("lock_key", sa.String(64)))
        batch.alter_column("status", type_=RUN_STATUS, existing_type=OLD_RUN_STATUS, existing_nullable=False)
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("status", type_=ALERT_STATUS, existing_type=OLD_ALERT_STATUS, existing_nullable=False)
    running = sa.text("status = 'running'")
    op.create_index(
        "ux_runs_running_lock", "runs", ["lock_key"], unique=True, sqlite_where=running, postgresql_where=running
    )
