"""Alembic environment of ``flask webhooks db``: runs on the connection the command hands over."""

from __future__ import annotations

from alembic import context

from flask_trakkr_webhooks.migrations import VERSION_TABLE

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
