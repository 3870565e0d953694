"""Flask-SQLAlchemy models, created on the host application's own ``db``.

The tables live in the host's metadata, so ``db.create_all()`` and the host's
migrations (Alembic / Flask-Migrate) pick them up. Four tables:

* ``trakkr_webhooks``: registered endpoints (soft-deleted, so the delivery log survives).
* ``trakkr_webhook_events``: one row per ``emit``; holds the exact payload sent.
* ``trakkr_webhook_deliveries``: one event to one webhook; the outbox row.
* ``trakkr_webhook_attempts``: one HTTP attempt of a delivery.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from . import ids
from .crypto import EncryptedText

# Delivery states. ``pending``: written, waiting to be (re)queued; ``queued``: a job
# holds it; ``sending``: a worker has claimed it; ``retrying``: waiting for its next
# attempt; then one of the three terminal states.
PENDING = "pending"
QUEUED = "queued"
SENDING = "sending"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
DELIVERY_STATUSES = (PENDING, QUEUED, SENDING, RETRYING, SUCCEEDED, FAILED, CANCELLED)
#: Open states a delivery can be cancelled from (one already ``sending`` finishes its attempt).
CANCELLABLE = (PENDING, QUEUED, RETRYING)
#: Final states: only deliveries in one of these are ever pruned (retention).
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
#: The attempts the body-retention index covers (migration tw0003 writes the same clause).
BODIES_PRESENT = "response_body IS NOT NULL OR response_headers IS NOT NULL"


@dataclass(frozen=True)
class Models:
    """The model classes bound to one ``db``."""

    # ``Any``: each class is defined at run time on the host's ``db.Model`` (see
    # ``_define``), so no static type names its columns.
    Webhook: Any
    Event: Any
    Delivery: Any
    Attempt: Any


_by_db: weakref.WeakKeyDictionary[Any, Models] = weakref.WeakKeyDictionary()


def models_for(db: Any) -> Models:
    """Return the models for ``db``, defining them on its metadata the first time.

    Defining the same table twice on one metadata is an error, so the classes are
    cached per ``db``: several apps sharing one ``db`` share one set of models.
    """
    try:
        return _by_db[db]
    except KeyError:
        pass
    models = _define(db)
    _by_db[db] = models
    return models


def _define(db: Any) -> Models:
    # Timezone-aware columns: PostgreSQL keeps the zone; SQLite hands back naive
    # datetimes, which ids.as_utc() reads as UTC (we only ever write UTC).
    TS = sa.DateTime(timezone=True)

    class Webhook(db.Model):  # type: ignore[misc]  # db.Model: the host's declarative base, known only at run time
        """A registered endpoint: where, what, and how to authenticate and sign."""

        __tablename__ = "trakkr_webhooks"
        __table_args__ = (
            # The hot lookup: emit() selects active webhooks of one brand.
            sa.Index("ix_trakkr_webhooks_brand_active", "brand_id", "active"),
            # The API's list, filtered by brand, newest first with a stable cursor.
            sa.Index("ix_trakkr_webhooks_brand_created", "brand_id", "created_at", "id"),
        )

        id = sa.Column(sa.String(40), primary_key=True, default=lambda: ids.new_id(ids.WEBHOOK))
        brand_id = sa.Column(sa.String(36), nullable=False)
        url = sa.Column(sa.Text, nullable=False)
        provider = sa.Column(sa.String(32), nullable=False, default="webhook")
        events = sa.Column(sa.JSON, nullable=False, default=list)
        active = sa.Column(sa.Boolean, nullable=False, default=True)
        description = sa.Column(sa.Text, nullable=True)

        auth_type = sa.Column(sa.String(16), nullable=False, default="none")
        # Credentials: write-only through the API; Fernet-encrypted at rest (crypto.py).
        auth_token = sa.Column(EncryptedText, nullable=True)
        auth_username = sa.Column(sa.Text, nullable=True)
        auth_password = sa.Column(EncryptedText, nullable=True)
        api_key_header = sa.Column(sa.String(256), nullable=True)
        api_key_value = sa.Column(EncryptedText, nullable=True)
        signing_secret = sa.Column(EncryptedText, nullable=True)
        # Secret rotation: the previous secret keeps signing until it expires.
        previous_signing_secret = sa.Column(EncryptedText, nullable=True)
        previous_secret_expires_at = sa.Column(TS, nullable=True)

        headers = sa.Column(sa.JSON, nullable=False, default=dict)
        template = sa.Column(sa.JSON, nullable=True)
        # Pacing: its own send rate (a list of windows; [] = none), or NULL for its provider's.
        rate_limit = sa.Column(sa.JSON, nullable=True)

        # Endpoint health.
        disabled_reason = sa.Column(sa.Text, nullable=True)
        disabled_at = sa.Column(TS, nullable=True)
        consecutive_failures = sa.Column(sa.Integer, nullable=False, default=0)
        failing_since = sa.Column(TS, nullable=True)

        created_at = sa.Column(TS, nullable=False, default=ids.utcnow)
        updated_at = sa.Column(TS, nullable=False, default=ids.utcnow, onupdate=ids.utcnow)
        deleted_at = sa.Column(TS, nullable=True)

        def __repr__(self) -> str:
            return f"<Webhook {self.id} {self.provider} {self.url!r}>"

    class Event(db.Model):  # type: ignore[misc]  # db.Model: the host's declarative base, known only at run time
        """One emitted event and the exact payload every delivery of it carries."""

        __tablename__ = "trakkr_webhook_events"
        __table_args__ = (
            sa.Index("ix_trakkr_webhook_events_brand_created", "brand_id", "created_at"),
            # Retention: events past the cutoff, oldest first.
            sa.Index("ix_trakkr_webhook_events_created", "created_at", "id"),
        )

        id = sa.Column(sa.String(40), primary_key=True, default=lambda: ids.new_id(ids.EVENT))
        type = sa.Column(sa.String(64), nullable=False)
        brand_id = sa.Column(sa.String(36), nullable=False)
        payload = sa.Column(sa.JSON, nullable=False)
        created_at = sa.Column(TS, nullable=False, default=ids.utcnow)

    class Delivery(db.Model):  # type: ignore[misc]  # db.Model: the host's declarative base, known only at run time
        """One event to one webhook: the transactional outbox row and its state."""

        __tablename__ = "trakkr_webhook_deliveries"
        __table_args__ = (
            # Delivery log of a webhook, newest first.
            sa.Index("ix_trakkr_webhook_deliveries_webhook_created", "webhook_id", "created_at"),
            # The sweep: open deliveries whose time has come.
            sa.Index("ix_trakkr_webhook_deliveries_status_next", "status", "next_attempt_at"),
            # Retention: finished deliveries past the cutoff (open ones have no completed_at).
            sa.Index("ix_trakkr_webhook_deliveries_completed", "completed_at", "id"),
        )

        id = sa.Column(sa.String(40), primary_key=True, default=lambda: ids.new_id(ids.DELIVERY))
        event_id = sa.Column(sa.String(40), sa.ForeignKey("trakkr_webhook_events.id"), nullable=False, index=True)
        webhook_id = sa.Column(sa.String(40), sa.ForeignKey("trakkr_webhooks.id"), nullable=False)
        status = sa.Column(sa.String(16), nullable=False, default=PENDING)
        is_test = sa.Column(sa.Boolean, nullable=False, default=False)
        attempt_count = sa.Column(sa.Integer, nullable=False, default=0)
        # Attempts answered 429 (or 503 + Retry-After): they do not use up a retry, but their
        # waits add up to at most MAX_RATE_LIMIT_WAIT seconds.
        deferrals = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
        deferred_seconds = sa.Column(sa.Float, nullable=False, default=0.0, server_default="0")
        next_attempt_at = sa.Column(TS, nullable=True)
        enqueued_at = sa.Column(TS, nullable=True)
        claimed_at = sa.Column(TS, nullable=True)
        last_status_code = sa.Column(sa.Integer, nullable=True)
        last_error = sa.Column(sa.Text, nullable=True)
        created_at = sa.Column(TS, nullable=False, default=ids.utcnow)
        updated_at = sa.Column(TS, nullable=False, default=ids.utcnow, onupdate=ids.utcnow)
        completed_at = sa.Column(TS, nullable=True)
        #: The W3C ``traceparent`` of the emit's span ([otel] extra; docs/operations.md), or NULL.
        trace_context = sa.Column(sa.String(64), nullable=True)

        event = db.relationship(Event, lazy="joined")
        webhook = db.relationship(Webhook, lazy="select")

    class Attempt(db.Model):  # type: ignore[misc]  # db.Model: the host's declarative base, known only at run time
        """One HTTP attempt of a delivery, as it happened."""

        __tablename__ = "trakkr_webhook_attempts"
        __table_args__ = (
            sa.UniqueConstraint("delivery_id", "number", name="uq_trakkr_webhook_attempts_number"),
            # Body retention: attempts still holding a response body or headers, oldest first
            # (partial, so the ones already stripped are never scanned again).
            sa.Index(
                "ix_trakkr_webhook_attempts_bodies",
                "started_at",
                "id",
                postgresql_where=sa.text(BODIES_PRESENT),
                sqlite_where=sa.text(BODIES_PRESENT),
            ),
        )

        id = sa.Column(sa.String(40), primary_key=True, default=lambda: ids.new_id(ids.ATTEMPT))
        delivery_id = sa.Column(sa.String(40), sa.ForeignKey("trakkr_webhook_deliveries.id"), nullable=False)
        number = sa.Column(sa.Integer, nullable=False)
        started_at = sa.Column(TS, nullable=False)
        duration_ms = sa.Column(sa.Float, nullable=True)
        status_code = sa.Column(sa.Integer, nullable=True)
        outcome = sa.Column(sa.String(16), nullable=False)  # succeeded / retry / deferred / failed
        error_type = sa.Column(sa.String(128), nullable=True)
        error_message = sa.Column(sa.Text, nullable=True)
        response_headers = sa.Column(sa.JSON, nullable=True)
        response_body = sa.Column(sa.Text, nullable=True)
        next_retry_at = sa.Column(TS, nullable=True)

        delivery = db.relationship(
            Delivery,
            backref=db.backref("attempts", order_by="Attempt.number", lazy="select"),
        )

    return Models(Webhook=Webhook, Event=Event, Delivery=Delivery, Attempt=Attempt)
