"""Traces: the W3C trace context of the emit, stored with each delivery (the ``[otel]`` extra).

Revision ID: tw0004_trace_context
Revises: tw0003_retention_indexes
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tw0004_trace_context"
down_revision = "tw0003_retention_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``trakkr_webhook_deliveries.trace_context`` (null: the emit was not traced)."""
    with op.batch_alter_table("trakkr_webhook_deliveries") as batch:
        batch.add_column(sa.Column("trace_context", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop the column (deliveries still open lose their link to the emit's trace)."""
    with op.batch_alter_table("trakkr_webhook_deliveries") as batch:
        batch.drop_column("trace_context")
