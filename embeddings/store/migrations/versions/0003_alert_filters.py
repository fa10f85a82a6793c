"""Alerts carry their transaction's time (``alerts.ts``), so the alerts tab filters and sorts a
run's alerts by day, score or card on indexes of the alerts table alone; alerts are looked up by
transaction when a rescoring supersedes them.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("ts", sa.DateTime))
    alerts = sa.table("alerts", sa.column("txn_id"), sa.column("ts"))
    txns = sa.table("transactions", sa.column("txn_id"), sa.column("ts"))
    op.execute(
        alerts.update()
        .values(ts=sa.select(txns.c.ts).where(txns.c.txn_id == alerts.c.txn_id).scalar_subquery())
        .where(alerts.c.txn_id.is_not(None))
    )
    # Stores made just before the store had migrations may already have this index.
    op.create_index("ix_alerts_txn", "alerts", ["txn_id"], if_not_exists=True)
    op.create_index("ix_alerts_run_score", "alerts", ["run_id", "score"])
    op.create_index("ix_alerts_run_ts", "alerts", ["run_id", "ts"])
    op.create_index("ix_alerts_run_card", "alerts", ["run_id", "card_id"])
