"""Retention: indexes for pruning finished deliveries, old events and old response bodies.

Revision ID: tw0003_retention_indexes
Revises: tw0002_rate_limits
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tw0003_retention_indexes"
down_revision = "tw0002_rate_limits"
branch_labels = None
depends_on = None

#: As ``models.BODIES_PRESENT`` (a revision never imports the models: they move on, it must not).
BODIES_PRESENT = "response_body IS NOT NULL OR response_headers IS NOT NULL"


def upgrade() -> None:
    """Index deliveries by completion time, events by creation time, attempts with bodies by start time."""
    op.create_index("ix_trakkr_webhook_deliveries_completed", "trakkr_webhook_deliveries", ["completed_at", "id"])
    op.create_index("ix_trakkr_webhook_events_created", "trakkr_webhook_events", ["created_at", "id"])
    op.create_index(
        "ix_trakkr_webhook_attempts_bodies",
        "trakkr_webhook_attempts",
        ["started_at", "id"],
        postgresql_where=sa.text(BODIES_PRESENT),
        sqlite_where=sa.text(BODIES_PRESENT),
    )


def downgrade() -> None:
    """Drop the three indexes."""
    op.drop_index("ix_trakkr_webhook_attempts_bodies", table_name="trakkr_webhook_attempts")
    op.drop_index("ix_trakkr_webhook_events_created", table_name="trakkr_webhook_events")
    op.drop_index("ix_trakkr_webhook_deliveries_completed", table_name="trakkr_webhook_deliveries")
