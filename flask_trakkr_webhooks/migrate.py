"""Schema migrations for hosts without Alembic of their own: ``flask webhooks db upgrade``.

The revisions live in :mod:`flask_trakkr_webhooks.migrations` (a branch labelled
``trakkr_webhooks``). Here they run on the app's own engine, in one transaction (all or
nothing on PostgreSQL), with their revision recorded in ``trakkr_webhooks_alembic_version``.

Tables made by ``db.create_all()`` before migrations shipped carry no revision: the first
upgrade recognises the schema they have and records its revision (:func:`adopt`) instead of
creating them again.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .migrations import BRANCH, HERE, VERSION_TABLE
from .state import WebhooksState

#: Tables of the extension (a revision is recognised from what they hold).
TABLES = ("trakkr_webhooks", "trakkr_webhook_events", "trakkr_webhook_deliveries", "trakkr_webhook_attempts")


def alembic_config(connection: sa.Connection | None = None, metadata: sa.MetaData | None = None) -> Config:
    """An Alembic configuration of the extension's scripts, running on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = metadata
    return config


def head() -> str:
    """The newest revision of the branch."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None  # the folder always holds revisions
    return revision


def current(connection: sa.Connection) -> str | None:
    """The revision recorded in the database (``None``: never migrated by this command)."""
    heads = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_heads()
    return heads[0] if heads else None


def detect(connection: sa.Connection) -> str | None:
    """The revision an unversioned database's tables match (``None``: there are none)."""
    inspector = sa.inspect(connection)
    present = set(inspector.get_table_names())
    if not present.intersection(TABLES):
        return None
    missing = [t for t in TABLES if t not in present]
    if missing:
        raise RuntimeError(f"some webhook tables exist, others do not ({', '.join(missing)} missing): fix by hand")
    delivery_columns = {c["name"] for c in inspector.get_columns("trakkr_webhook_deliveries")}
    if "deferrals" not in delivery_columns:
        return "tw0001_initial"
    indexes = {i["name"] for i in inspector.get_indexes("trakkr_webhook_deliveries")}
    if "ix_trakkr_webhook_deliveries_completed" not in indexes:
        return "tw0002_rate_limits"
    if "trace_context" not in delivery_columns:
        return "tw0003_retention_indexes"
    return "tw0004_trace_context"


def adopt(connection: sa.Connection) -> str | None:
    """Record the revision of tables created by ``db.create_all()`` (none recorded yet); return it."""
    if current(connection) is not None:
        return None
    found = detect(connection)
    if found is not None:
        command.stamp(alembic_config(connection), found)
    return found


def _run(state: WebhooksState, action: str, revision: str) -> dict[str, Any]:
    engine = state.db.engine
    with engine.begin() as connection:
        adopted = adopt(connection) if action == "upgrade" else None
        before = current(connection)
        config = alembic_config(connection, state.db.metadata)
        if action == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
        after = current(connection)
    return {"adopted": adopted, "before": before, "after": after}


def upgrade(state: WebhooksState, revision: str = "head") -> dict[str, Any]:
    """Upgrade the extension's tables to ``revision``; ``{"adopted", "before", "after"}`` revisions."""
    return _run(state, "upgrade", _on_branch(revision))


def downgrade(state: WebhooksState, revision: str) -> dict[str, Any]:
    """Downgrade the extension's tables to ``revision`` (``base`` drops them, with every row)."""
    return _run(state, "downgrade", _on_branch(revision))


def _on_branch(revision: str) -> str:
    """``head`` means this branch's head (a host's own revisions never run here)."""
    return f"{BRANCH}@head" if revision in ("head", "heads") else revision
