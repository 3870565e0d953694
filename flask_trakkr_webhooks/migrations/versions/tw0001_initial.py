"""The four tables as they were before migrations shipped (created by ``db.create_all()``).

Revision ID: tw0001_initial
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tw0001_initial"
down_revision = None
branch_labels = ("trakkr_webhooks",)
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the webhooks, events, deliveries and attempts tables and their indexes."""
    op.create_table(
        "trakkr_webhooks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("brand_id", sa.String(36), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("auth_type", sa.String(16), nullable=False),
        sa.Column("auth_token", sa.Text, nullable=True),
        sa.Column("auth_username", sa.Text, nullable=True),
        sa.Column("auth_password", sa.Text, nullable=True),
        sa.Column("api_key_header", sa.String(256), nullable=True),
        sa.Column("api_key_value", sa.Text, nullable=True),
        sa.Column("signing_secret", sa.Text, nullable=True),
        sa.Column("previous_signing_secret", sa.Text, nullable=True),
        sa.Column("previous_secret_expires_at", TS, nullable=True),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("template", sa.JSON, nullable=True),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("disabled_at", TS, nullable=True),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("failing_since", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
    )
    op.create_index("ix_trakkr_webhooks_brand_active", "trakkr_webhooks", ["brand_id", "active"])
    op.create_index("ix_trakkr_webhooks_brand_created", "trakkr_webhooks", ["brand_id", "created_at", "id"])

    op.create_table(
        "trakkr_webhook_events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("brand_id", sa.String(36), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_trakkr_webhook_events_brand_created", "trakkr_webhook_events", ["brand_id", "created_at"])

    op.create_table(
        "trakkr_webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("event_id", sa.String(40), sa.ForeignKey("trakkr_webhook_events.id"), nullable=False),
        sa.Column("webhook_id", sa.String(40), sa.ForeignKey("trakkr_webhooks.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("is_test", sa.Boolean, nullable=False),
        sa.Column("attempt_count", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("enqueued_at", TS, nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
    )
    op.create_index("ix_trakkr_webhook_deliveries_event_id", "trakkr_webhook_deliveries", ["event_id"])
    op.create_index(
        "ix_trakkr_webhook_deliveries_webhook_created", "trakkr_webhook_deliveries", ["webhook_id", "created_at"]
    )
    op.create_index(
        "ix_trakkr_webhook_deliveries_status_next", "trakkr_webhook_deliveries", ["status", "next_attempt_at"]
    )

    op.create_table(
        "trakkr_webhook_attempts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("delivery_id", sa.String(40), sa.ForeignKey("trakkr_webhook_deliveries.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=True),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("response_headers", sa.JSON, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("next_retry_at", TS, nullable=True),
        sa.UniqueConstraint("delivery_id", "number", name="uq_trakkr_webhook_attempts_number"),
    )


def downgrade() -> None:
    """Drop the four tables (and everything in them)."""
    op.drop_table("trakkr_webhook_attempts")
    op.drop_table("trakkr_webhook_deliveries")
    op.drop_table("trakkr_webhook_events")
    op.drop_table("trakkr_webhooks")
