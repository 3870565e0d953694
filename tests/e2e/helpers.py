"""Shared helpers of the delivery tests: webhook rows, emitting, reading deliveries."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_trakkr_webhooks import get_state, jobs, testing

BRAND_ID = "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f"
BRAND = {"id": BRAND_ID, "name": "Acme", "website": "https://acme.example"}
VISIBILITY = {"previous_score": 41.0, "current_score": 57.5, "change_percent": 40.2, "direction": "up"}


def make_webhook(app: Flask, url: str, **fields: Any) -> str:
    """Insert a webhook row (bearer ``tok_e2e``, secret ``whsec_e2e`` unless overridden); return its id."""
    values: dict[str, Any] = dict(
        brand_id=BRAND_ID,
        url=url,
        events=["visibility_changed"],
        provider="webhook",
        active=True,
        auth_type="bearer",
        auth_token="tok_e2e",
        signing_secret="whsec_e2e",
        headers={},
    )
    values.update(fields)
    with app.app_context():
        state = get_state(app)
        hook = state.models.Webhook(**values)
        state.db.session.add(hook)
        state.db.session.commit()
        return hook.id


def emit(app: Flask, event_type: str = "visibility_changed", *, commit: bool = True, **kwargs: Any) -> str:
    """``webhooks.emit`` in an app context, then commit (or roll back); return the event id."""
    with app.app_context():
        kwargs.setdefault("brand", BRAND)
        kwargs.setdefault("data", VISIBILITY)
        event_id = app.webhooks.emit(event_type, **kwargs)  # type: ignore[attr-defined]
        if commit:
            app.db.session.commit()  # type: ignore[attr-defined]
        else:
            app.db.session.rollback()  # type: ignore[attr-defined]
        return event_id


def deliveries(app: Flask, event_id: str | None = None) -> list[dict[str, Any]]:
    """Every delivery (of ``event_id``) as a dict with its attempts, oldest first."""
    with app.app_context():
        state = get_state(app)
        D = state.models.Delivery
        query = D.query.order_by(D.created_at, D.id)
        if event_id:
            query = query.filter(D.event_id == event_id)
        out = []
        for d in query.all():
            row = {c.name: getattr(d, c.name) for c in D.__table__.columns}
            row["attempts"] = [
                {c.name: getattr(a, c.name) for c in state.models.Attempt.__table__.columns} for a in d.attempts
            ]
            out.append(row)
        state.db.session.remove()
        return out


def delivery_status(app: Flask, event_id: str) -> str | None:
    """Status of the (single) delivery of ``event_id``."""
    found = deliveries(app, event_id)
    return found[0]["status"] if found else None


def new_brand() -> dict[str, Any]:
    """A brand of its own (tests that must not see other webhooks)."""
    return {"id": str(uuid.uuid4()), "name": "Globex", "website": None}


def clear_queue(app: Flask) -> None:
    """Remove what the app left in Redis (its queue, scheduled jobs, de-duplication record)."""
    testing.clear_queue(get_state(app))


def delivery_rows(app: Flask, **where: Any) -> list[Any]:
    """Delivery rows matching ``where`` (oldest first), with their attempts loaded."""
    with app.app_context():
        D = get_state(app).models.Delivery
        rows = D.query.filter_by(**where).order_by(D.created_at, D.id).all()
        for row in rows:
            _ = row.attempts  # load them while the session is open
        return list(rows)


def delivery_ids(app: Flask) -> list[str]:
    """Every delivery id, oldest first."""
    return [d.id for d in delivery_rows(app)]


def process(app: Flask, ids: list[str]) -> dict[str, int]:
    """Run a batch to completion in this process (``jobs.process_batch``): counts by status."""
    with app.app_context():
        return jobs.process_batch(get_state(app), ids)


def update_delivery(app: Flask, delivery_id: str, **values: Any) -> None:
    """Write ``values`` on a delivery row directly (to set up a state)."""
    with app.app_context():
        state = get_state(app)
        table = state.models.Delivery.__table__
        state.db.session.execute(table.update().where(table.c.id == delivery_id).values(**values))
        state.db.session.commit()


def api_create(client: Any, url: str, **fields: Any) -> dict[str, Any]:
    """A webhook of ``BRAND_ID`` made through the API (201 asserted); its object."""
    response = client.post(
        "/webhooks", json={"url": url, "events": ["visibility_changed"], "brand_id": BRAND_ID, **fields}
    )
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def webhook_row(app: Flask, webhook_id: str) -> Any:
    """The webhook row as stored now, detached from the session."""
    with app.app_context():
        state = get_state(app)
        state.db.session.expire_all()
        row = state.db.session.get(state.models.Webhook, webhook_id)
        state.db.session.expunge(row)
        return row


def api_error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The error object of ``response``, asserting its status (and that it names only ``field``)."""
    assert response.status_code == status, response.get_json()
    error = dict(response.get_json()["error"])
    if field is not None:
        assert list(error["fields"]) == [field], error
    return error


def process_open(app: Flask, status: str | None = None) -> list[str]:
    """Attempt every open (pending or queued) delivery once, in this process; return their ids."""
    with app.app_context():
        state = get_state(app)
        D = state.models.Delivery
        open_ids = [d.id for d in D.query.filter(D.status.in_(("pending", "queued"))).order_by(D.created_at, D.id)]
        jobs.process_batch(state, open_ids)
        return open_ids


def row_counts(app: Flask) -> dict[str, int]:
    """Rows per table, and attempts still holding a response body or headers (retention tests)."""
    with app.app_context():
        state = get_state(app)
        m = state.models
        A = m.Attempt.__table__
        bodies = sa.or_(A.c.response_body.is_not(None), A.c.response_headers.is_not(None))
        with state.db.engine.connect() as c:
            return {
                "events": c.scalar(sa.select(sa.func.count()).select_from(m.Event.__table__)) or 0,
                "deliveries": c.scalar(sa.select(sa.func.count()).select_from(m.Delivery.__table__)) or 0,
                "attempts": c.scalar(sa.select(sa.func.count()).select_from(A)) or 0,
                "bodies": c.scalar(sa.select(sa.func.count()).where(bodies)) or 0,
            }
