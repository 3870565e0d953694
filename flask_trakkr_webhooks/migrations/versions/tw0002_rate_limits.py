"""Rate limits: a webhook's own send rate, and the deferrals of a delivery (429 / 503 + Retry-After).

Revision ID: tw0002_rate_limits
Revises: tw0001_initial
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tw0002_rate_limits"
down_revision = "tw0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``trakkr_webhooks.rate_limit`` and ``trakkr_webhook_deliveries.deferrals`` / ``deferred_seconds``."""
    with op.batch_alter_table("trakkr_webhooks") as batch:
        batch.add_column(sa.Column("rate_limit", sa.JSON, nullable=True))
    with op.batch_alter_table("trakkr_webhook_deliveries") as batch:
        batch.add_column(sa.Column("deferrals", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("deferred_seconds", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop the three columns (rate limits set per webhook and deferral counts are lost)."""
    with op.batch_alter_table("trakkr_webhook_deliveries") as batch:
        batch.drop_column("deferred_seconds")
        batch.drop_column("deferrals")
    with op.batch_alter_table("trakkr_webhooks") as batch:
        batch.drop_column("rate_limit")
