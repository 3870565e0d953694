"""The portal's pages and actions.

Every rule is the API's: webhooks are found with the API's :func:`~..api.common.get_or_404`
(the access policy decides; another brand's webhook is a 404), and every change goes through
the API's service functions (:func:`~..api.webhooks.create`, ``update``, ``rotate``,
``replay_since``, ``delete``, :func:`~..api.deliveries.redeliver_delivery`, ``send_test``), so a
form is judged exactly as the same JSON body would be. This module turns forms into those
bodies and the answers into pages.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .. import auth, events, ids, message, providers
from ..api import deliveries as api_deliveries
from ..api import webhooks as api_webhooks
from ..api.common import (
    get_or_404,
    load_webhooks,
    may_manage,
    missing_policy_error,
    sample_event_type,
    sample_payload,
    webhook_query,
)
from ..api.preview import mask_headers
from ..claim import endpoint_of
from ..errors import APIError
from ..models import DELIVERY_STATUSES, FAILED, SUCCEEDED
from ..rules import canonical_uuid
from ..schemas import MAX_REPLAY
from ..state import get_state
from . import charts

#: The most webhooks of one brand the list shows.
MAX_LISTED = 500
#: The ``<input type="datetime-local">`` format (read as UTC).
LOCAL_TIME = "%Y-%m-%dT%H:%M"


def register(bp: Blueprint) -> None:
    """Add every page and action to ``bp``."""
    get, post = ["GET"], ["POST"]
    bp.add_url_rule("", "index", index, methods=get)
    bp.add_url_rule("/events", "events", event_catalog, methods=get)
    bp.add_url_rule("/detect", "detect", detect, methods=get)
    bp.add_url_rule("/new", "new_webhook", new_webhook, methods=[*get, *post])
    bp.add_url_rule("/preview", "preview_new", preview_new, methods=post)
    bp.add_url_rule("/<webhook_id>", "webhook", webhook_detail, methods=get)
    bp.add_url_rule("/<webhook_id>/edit", "edit_webhook", edit_webhook, methods=[*get, *post])
    bp.add_url_rule("/<webhook_id>/health", "health", health, methods=get)
    bp.add_url_rule("/<webhook_id>/deliveries/<delivery_id>", "delivery", delivery_detail, methods=get)
    bp.add_url_rule("/<webhook_id>/deliveries/<delivery_id>/redeliver", "redeliver", redeliver, methods=post)
    bp.add_url_rule("/<webhook_id>/test", "test", send_test, methods=post)
    bp.add_url_rule("/<webhook_id>/preview", "preview", preview, methods=post)
    bp.add_url_rule("/<webhook_id>/replay", "replay", replay, methods=post)
    bp.add_url_rule("/<webhook_id>/enable", "enable", enable, methods=post)
    bp.add_url_rule("/<webhook_id>/disable", "disable", disable, methods=post)
    bp.add_url_rule("/<webhook_id>/rotate-secret", "rotate_secret", rotate_secret, methods=post)
    bp.add_url_rule("/<webhook_id>/delete", "delete", delete, methods=[*get, *post])


# -- helpers -----------------------------------------------------------------------------------


def require_policy() -> None:
    """The API's secure default: without an access policy (outside testing / OPEN_API) nothing is shown."""
    refused = missing_policy_error()
    if refused is not None:
        raise refused


def brand_param() -> str:
    """The ``brand_id`` query parameter, canonical; 400 when absent or not a UUID, 403 when refused."""
    brand_id = canonical_uuid(request.args.get("brand_id"))
    if brand_id is None:
        raise APIError(400, "Choose a brand: brand_id must be a UUID.", {"brand_id": ["must be a UUID"]})
    if not may_manage(brand_id):
        raise APIError(403, "You may not manage webhooks of this brand.", {"brand_id": ["refused"]})
    return brand_id


def brand_names() -> dict[str, str]:
    """``brand_id -> name`` from the host's brand lister (empty without one)."""
    lister = get_state().hooks.portal_brands
    return {str(brand_id): str(name) for brand_id, name in (lister() if lister else [])}


def webhook_or_404(webhook_id: str) -> Any:
    """The webhook, as the API finds it (404 when missing, deleted or another brand's)."""
    require_policy()
    return get_or_404(webhook_id)


def to_webhook(webhook: Any) -> Response:
    """A redirect to the webhook's page (303: a POST is followed by a GET)."""
    return redirect(url_for(".webhook", webhook_id=webhook.id, brand_id=webhook.brand_id), 303)


def form_errors(error: APIError) -> dict[str, list[str]]:
    """The field errors of ``error`` by form field (``events.0`` is the ``events`` field)."""
    errors: dict[str, list[str]] = {}
    for name, messages in (error.fields or {"form": [error.message]}).items():
        errors.setdefault(name.split(".")[0], []).extend(messages)
    return errors


def parse_time(raw: str | None, name: str) -> datetime | None:
    """A ``datetime-local`` value (read as UTC), ``None`` when blank; 400 naming ``name`` when malformed."""
    if not raw:
        return None
    for fmt in (LOCAL_TIME, LOCAL_TIME + ":%S"):
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise APIError(400, f"{name} must be a date and time like 2024-06-01T09:30 (UTC).", {name: ["malformed"]})


def epoch_hour(session: Any, column: Any) -> Any:
    """SQL for the whole hours since 1970 of a UTC timestamp ``column`` (``None``: not SQLite nor PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return sa.func.floor(sa.extract("epoch", column) / 3600)
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%s", column), sa.Integer) // 3600  # integer division
    return None


@lru_cache(maxsize=1024)
def hour_start(hour: int) -> datetime:
    """The UTC datetime of ``hour`` whole hours since 1970."""
    return datetime.fromtimestamp(hour * 3600, tz=timezone.utc)


def success_rates(webhook_ids: list[str], now: datetime) -> dict[str, dict[str, float | None]]:
    """Per webhook: the share of finished (not test) deliveries that succeeded over 24 h and 7 days."""
    if not webhook_ids:
        return {}
    state = get_state()
    D = state.models.Delivery
    day = now - timedelta(hours=24)
    finished = D.status.in_((SUCCEEDED, FAILED))
    recent = D.created_at >= day

    def count(*conditions: Any) -> Any:
        return sa.func.sum(sa.case((sa.and_(*conditions), 1), else_=0))

    query = (
        sa.select(
            D.webhook_id,
            count(finished, recent),
            count(D.status == SUCCEEDED, recent),
            count(finished),
            count(D.status == SUCCEEDED),
        )
        .where(D.webhook_id.in_(webhook_ids), D.created_at >= now - timedelta(days=7), D.is_test.is_(False))
        .group_by(D.webhook_id)
    )
    rates: dict[str, dict[str, float | None]] = {}
    for webhook_id, day_done, day_ok, week_done, week_ok in state.db.session.execute(query):
        rates[webhook_id] = {
            "day": (day_ok or 0) / day_done if day_done else None,
            "week": (week_ok or 0) / week_done if week_done else None,
        }
    return rates


def last_attempts(webhook_ids: list[str]) -> dict[str, Any]:
    """Per webhook: its latest attempt (``None`` without one)."""
    state = get_state()
    A, D = state.models.Attempt, state.models.Delivery
    found: dict[str, Any] = {}
    for webhook_id in webhook_ids:
        found[webhook_id] = state.db.session.execute(
            sa.select(A)
            .join(D, D.id == A.delivery_id)
            .where(D.webhook_id == webhook_id)
            .order_by(A.started_at.desc())
            .limit(1)
        ).scalar_one_or_none()
    return found


# -- pages -------------------------------------------------------------------------------------


def index() -> str:
    """The brand picker (no ``brand_id``) or the brand's webhooks."""
    require_policy()
    if "brand_id" not in request.args:
        names = brand_names()
        brands = [(brand_id, name) for brand_id, name in names.items() if may_manage(brand_id)]
        return render_template("trakkr_webhooks/portal/brands.html", brands=brands)
    brand_id = brand_param()
    state = get_state()
    W = state.models.Webhook
    query = (
        webhook_query(state)
        .where(W.brand_id == brand_id, W.deleted_at.is_(None))
        .order_by(W.created_at.desc(), W.id.desc())
        .limit(MAX_LISTED)
    )
    hooks = load_webhooks(state, query)
    ids_ = [w.id for w in hooks]
    return render_template(
        "trakkr_webhooks/portal/webhooks.html",
        brand_id=brand_id,
        brand_name=brand_names().get(brand_id),
        webhooks=hooks,
        rates=success_rates(ids_, ids.utcnow()),
        last=last_attempts(ids_),
    )


def event_catalog() -> str:
    """Every event type with its description and the sample body each provider would get."""
    require_policy()
    state = get_state()
    brand_id = canonical_uuid(request.args.get("brand_id"))
    catalog = []
    for name, description in state.event_types.items():
        spec = state.event_types.spec(name)
        payload = events.sample_payload(
            name,
            spec=spec,
            brand={**events.EXAMPLE_BRAND},
            event_id=events.EXAMPLE_EVENT_ID,
            timestamp=events.EXAMPLE_TIMESTAMP,
        )
        samples = []
        for provider in providers.names():
            endpoint = message.Endpoint(url="https://receiver.example/hook", provider=provider)
            try:
                body = message.render_body(endpoint, payload, spec)
                samples.append((provider, json.dumps(json.loads(body), indent=2, ensure_ascii=False)))
            except ValueError as exc:  # a host provider that cannot format this type
                samples.append((provider, f"(cannot be formatted: {exc})"))
        catalog.append({"name": name, "description": description, "samples": samples})
    return render_template("trakkr_webhooks/portal/events.html", catalog=catalog, brand_id=brand_id)


def detect() -> Response:
    """``GET /detect?url=``: the provider the URL would get (for the form's script); no data read."""
    require_policy()
    url = request.args.get("url", "")[:2048]
    return jsonify({"provider": providers.detect_provider(url) if url else None})


def delivery_log(webhook: Any) -> dict[str, Any]:
    """The delivery log's filters (from the query string), its page and the next page's cursor."""
    state = get_state()
    args = request.args
    status = args.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise APIError(400, f"status must be one of {', '.join(DELIVERY_STATUSES)}.", {"status": ["unknown"]})
    event_type = args.get("event_type") or None
    if event_type is not None and event_type not in state.event_types:
        raise APIError(400, "event_type must be a known event type.", {"event_type": ["unknown"]})
    since, until = parse_time(args.get("since"), "since"), parse_time(args.get("until"), "until")
    size = state.settings.page_size
    page = api_deliveries.delivery_page(
        webhook,
        size + 1,
        status=status,
        event_type=event_type,
        since=since,
        until=until,
        starting_after=args.get("starting_after") or None,
    )
    filters = {
        "status": status or "",
        "event_type": event_type or "",
        "since": args.get("since", ""),
        "until": args.get("until", ""),
    }
    more = len(page) > size
    return {
        "deliveries": page[:size],
        "filters": filters,
        "next_cursor": page[size - 1].id if more else None,
        "paged": bool(args.get("starting_after")),
    }


def webhook_detail(webhook_id: str) -> str:
    """The webhook: its settings, its actions and its delivery log."""
    webhook = webhook_or_404(webhook_id)
    state = get_state()
    return render_template(
        "trakkr_webhooks/portal/webhook.html",
        webhook=webhook,
        brand_id=webhook.brand_id,
        event_types=list(state.event_types),
        statuses=DELIVERY_STATUSES,
        max_replay=MAX_REPLAY,
        replay_default=(ids.utcnow() - timedelta(hours=1)).strftime(LOCAL_TIME),
        **delivery_log(webhook),
    )


def delivery_detail(webhook_id: str, delivery_id: str) -> str:
    """One delivery: its payload and every attempt (response bodies shown as text)."""
    webhook = webhook_or_404(webhook_id)
    delivery = api_deliveries.delivery_or_404(webhook, delivery_id)
    headers: dict[str, str] = {}
    try:
        now = ids.utcnow()
        endpoint = endpoint_of(webhook, now)
        built = message.build(
            endpoint,
            delivery.event.payload,
            delivery_id=delivery.id,
            timestamp=int(now.timestamp()),
            event_type=get_state().event_types.spec(delivery.event.type),
        )
        headers, _ = mask_headers(built.headers, endpoint)
    except (ValueError, TypeError):  # unreadable credentials or a request that cannot be built
        headers = {}
    return render_template(
        "trakkr_webhooks/portal/delivery.html",
        webhook=webhook,
        brand_id=webhook.brand_id,
        delivery=delivery,
        request_headers=headers,
        payload=json.dumps(delivery.event.payload, indent=2, ensure_ascii=False),
    )


def health(webhook_id: str) -> str:
    """Deliveries per hour by outcome and attempt latency p50/p95, 24 h and 7 days, as SVG and tables."""
    webhook = webhook_or_404(webhook_id)
    state = get_state()
    D, A = state.models.Delivery, state.models.Attempt
    now = ids.utcnow()
    week = now - timedelta(days=7, hours=1)
    session = state.db.session
    recent = (D.webhook_id == webhook.id, D.created_at >= week - timedelta(days=1))
    completed, started = epoch_hour(session, D.completed_at), epoch_hour(session, A.started_at)
    if completed is not None and started is not None:
        # Counted per hour by the database: no row-by-row datetimes in Python.
        counts = session.execute(
            sa.select(completed, D.status, sa.func.count())
            .where(*recent, D.completed_at >= week)
            .group_by(completed, D.status)
        ).all()
        durations = session.execute(
            sa.select(started, A.duration_ms)
            .join(D, D.id == A.delivery_id)
            .where(*recent, A.started_at >= week, A.duration_ms.is_not(None))
        ).all()
        finished = [(hour_start(int(hour)), status, int(n)) for hour, status, n in counts]
        attempts = [(hour_start(int(hour)), duration) for hour, duration in durations]
    else:  # another database: read the rows
        done = session.execute(sa.select(D.completed_at, D.status).where(*recent, D.completed_at >= week)).all()
        tried = session.execute(
            sa.select(A.started_at, A.duration_ms).join(D, D.id == A.delivery_id).where(*recent, A.started_at >= week)
        ).all()
        finished = [(ids.as_utc(at), status, 1) for at, status in done if at is not None]
        attempts = [(ids.as_utc(at), duration) for at, duration in tried]
    periods = []
    for label, hours in (("Last 24 hours", 24), ("Last 7 days", 24 * 7)):
        buckets = charts.hourly(now, hours, finished, attempts)
        periods.append(
            {
                "label": label,
                "buckets": buckets,
                "svg": charts.svg(buckets, f"{label}: deliveries per hour by outcome, latency p50 and p95"),
                "totals": {name: sum(b.counts[name] for b in buckets) for name, _ in charts.OUTCOMES},
                "p50": charts.percentile([d for b in buckets for d in b.latencies], 50),
                "p95": charts.percentile([d for b in buckets for d in b.latencies], 95),
            }
        )
    return render_template(
        "trakkr_webhooks/portal/health.html",
        webhook=webhook,
        brand_id=webhook.brand_id,
        periods=periods,
        outcomes=charts.OUTCOMES,
    )


# -- the form ----------------------------------------------------------------------------------


def form_body(form: Any, *, creating: bool) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API body of the webhook form, and the errors of fields the API would not see as sent."""
    errors: dict[str, list[str]] = {}
    body: dict[str, Any] = {
        "url": form.get("url", "").strip(),
        "events": form.getlist("events"),
        "description": form.get("description", "").strip() or None,
        "provider": form.get("provider") or None,
        "auth_type": form.get("auth_type") or "none",
    }
    headers: dict[str, str] = {}
    for number, line in enumerate(form.get("headers", "").splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            errors.setdefault("headers", []).append(f"line {number}: write 'Name: value'")
            continue
        headers[name.strip()] = value.strip()
    body["headers"] = headers
    template = form.get("template", "").strip()
    body["template"] = None
    if template:
        try:
            body["template"] = json.loads(template)
        except ValueError as exc:
            errors["template"] = [f"must be JSON: {exc}"]
    # Credentials are write-only: a blank field keeps what is stored.
    for name in (*auth.CREDENTIAL_COLUMNS, "signing_secret"):
        value = form.get(name, "")
        if value:
            body[name] = value
    if creating:
        body["brand_id"] = form.get("brand_id", "")
    else:
        body["active"] = form.get("active") == "on"
    return body, errors


def form_values(webhook: Any | None) -> dict[str, Any]:
    """What the form shows for ``webhook`` (never a credential)."""
    if webhook is None:
        return {"url": "", "events": [], "description": "", "provider": "", "auth_type": "none", "headers": "",
                "template": "", "active": True, "auth_username": "", "api_key_header": ""}  # fmt: skip
    return {
        "url": webhook.url,
        "events": list(webhook.events or []),
        "description": webhook.description or "",
        "provider": webhook.provider,
        "auth_type": webhook.auth_type,
        "headers": "\n".join(f"{k}: {v}" for k, v in (webhook.headers or {}).items()),
        "template": json.dumps(webhook.template, indent=2) if webhook.template is not None else "",
        "active": webhook.active,
        "auth_username": webhook.auth_username or "",
        "api_key_header": webhook.api_key_header or "",
    }


def render_form(webhook: Any | None, brand_id: str, values: dict[str, Any], errors: dict[str, Any], status: int) -> Any:
    """The create/edit form page."""
    state = get_state()
    page = render_template(
        "trakkr_webhooks/portal/form.html",
        webhook=webhook,
        brand_id=brand_id,
        values=values,
        errors=errors,
        event_types=list(state.event_types.items()),
        provider_names=providers.names(),
        auth_types=auth.names(),
    )
    return page, status


def submitted_values(form: Any) -> dict[str, Any]:
    """The form's values as sent (credentials dropped), to show it again with its errors."""
    values = {key: form.get(key, "") for key in form_values(None)}
    values["events"] = form.getlist("events")
    values["active"] = form.get("active") == "on"
    return values


def new_webhook() -> Any:
    """``GET``: the empty form; ``POST``: create the webhook (the API's rules) and show it."""
    require_policy()
    brand_id = brand_param()
    if request.method == "GET":
        return render_form(None, brand_id, form_values(None), {}, 200)
    body, errors = form_body(request.form, creating=True)
    body["brand_id"] = brand_id
    if not errors:
        try:
            webhook = api_webhooks.create(body)
        except APIError as exc:
            if exc.status != 400:
                raise
            errors = form_errors(exc)
        else:
            flash(f"Webhook {webhook.id} created.", "success")
            return to_webhook(webhook)
    return render_form(None, brand_id, submitted_values(request.form), errors, 400)


def edit_webhook(webhook_id: str) -> Any:
    """``GET``: the form with the webhook's values; ``POST``: save the changes (the API's rules)."""
    webhook = webhook_or_404(webhook_id)
    if request.method == "GET":
        return render_form(webhook, webhook.brand_id, form_values(webhook), {}, 200)
    body, errors = form_body(request.form, creating=False)
    if not errors:
        try:
            api_webhooks.update(webhook.id, lambda: body)
        except APIError as exc:
            if exc.status not in (400, 409):
                raise
            errors = form_errors(exc)
        else:
            flash("Changes saved.", "success")
            return to_webhook(webhook)
    return render_form(webhook, webhook.brand_id, submitted_values(request.form), errors, 400)


def preview(webhook_id: str) -> Response | tuple[Response, int]:
    """``POST /<id>/preview`` (the edit form's script): the body a sample event would get with the
    form's template and provider (the webhook's credentials and headers), not saved."""
    webhook = webhook_or_404(webhook_id)
    state = get_state()
    now = ids.utcnow()
    try:
        event_type = sample_event_type(state, webhook, request.form.get("event") or None)
    except APIError as exc:
        return jsonify({"error": exc.message}), 400
    payload = sample_payload(state, webhook, event_type, event_id=ids.new_id(ids.EVENT), now=now)
    return render_preview(endpoint_of(webhook, now), payload, event_type)


def preview_new() -> Response | tuple[Response, int]:
    """``POST /preview?brand_id=`` (the new-webhook form's script): as :func:`preview`, for a webhook
    not created yet (the brand's sample event, the form's URL, format and template)."""
    require_policy()
    brand_id = brand_param()
    state = get_state()
    requested = request.form.get("event") or next(iter(state.event_types))
    if requested not in state.event_types:
        return jsonify({"error": "event must be a known event type"}), 400
    payload = events.sample_payload(
        requested,
        spec=state.event_types.spec(requested),
        brand={"id": brand_id, **events.SAMPLE_BRAND},
        event_id=ids.new_id(ids.EVENT),
        timestamp=ids.utcnow(),
    )
    return render_preview(message.Endpoint(url=request.form.get("url") or ""), payload, requested)


def render_preview(
    endpoint: message.Endpoint, payload: dict[str, Any], event_type: str
) -> Response | tuple[Response, int]:
    """``{"provider", "event_type", "body"}`` of ``payload`` sent to ``endpoint`` with the form's
    provider (blank: detected from the form's URL) and template; ``{"error"}`` (400) when it cannot render."""
    template_text = request.form.get("template", "").strip()
    provider = request.form.get("provider") or providers.detect_provider(request.form.get("url") or endpoint.url)
    try:
        template = json.loads(template_text) if template_text else None
        shown = replace(endpoint, provider=provider, template=template)
        body = message.render_body(shown, payload, get_state().event_types.spec(event_type))
    except ValueError as exc:  # malformed JSON, a template or provider that cannot render
        return jsonify({"error": str(exc)}), 400
    return jsonify({"provider": provider, "event_type": event_type, "body": json.dumps(json.loads(body), indent=2)})


# -- actions -----------------------------------------------------------------------------------


def send_test(webhook_id: str) -> Response:
    """Send a test now; the result is flashed and its delivery opened."""
    webhook = webhook_or_404(webhook_id)
    event_type = sample_event_type(get_state(), webhook, request.form.get("event") or None)
    result, logged = api_deliveries.send_test(webhook, event_type)
    if result.status == "succeeded":
        flash(f"Test sent: the endpoint answered {result.status_code}.", "success")
    else:
        flash(f"Test failed: {result.status_code or result.error_type}: {result.error_message or ''}", "error")
    return redirect(url_for(".delivery", webhook_id=webhook.id, delivery_id=logged.id), 303)


def redeliver(webhook_id: str, delivery_id: str) -> Response:
    """Redeliver the delivery's event as a new delivery."""
    webhook = webhook_or_404(webhook_id)
    try:
        copy = api_deliveries.redeliver_delivery(webhook.id, delivery_id)
    except APIError as exc:
        if exc.status != 409:
            raise
        flash(exc.message, "error")
        return redirect(url_for(".delivery", webhook_id=webhook.id, delivery_id=delivery_id), 303)
    flash(f"Redelivery {copy} queued.", "success")
    return redirect(url_for(".delivery", webhook_id=webhook.id, delivery_id=copy), 303)


def replay(webhook_id: str) -> Response:
    """Replay what failed (or was cancelled, or missed) since a time."""
    webhook = webhook_or_404(webhook_id)
    since = parse_time(request.form.get("since"), "since")
    if since is None:
        raise APIError(400, "since is required: the time to replay from.", {"since": ["required"]})
    statuses = request.form.getlist("status") or ["failed"]
    try:
        _, _, replayed, more = api_webhooks.replay_since(
            webhook.id, lambda: {"since": ids.isoformat(since), "status": statuses}
        )
    except APIError as exc:
        if exc.status not in (400, 409):
            raise
        flash(exc.message, "error")
        return to_webhook(webhook)
    flash(f"Replayed {len(replayed)} deliveries since {since:%Y-%m-%d %H:%M} UTC" + (" (more left)." if more else "."),
          "success")  # fmt: skip
    return to_webhook(webhook)


def set_active(webhook_id: str, active: bool) -> Response:
    """Enable or disable the webhook through the API's update."""
    webhook = webhook_or_404(webhook_id)
    api_webhooks.update(webhook.id, lambda: {"active": active})
    flash("Webhook enabled." if active else "Webhook disabled.", "success")
    return to_webhook(webhook)


def enable(webhook_id: str) -> Response:
    """Turn the webhook on (clears why it was disabled)."""
    return set_active(webhook_id, True)


def disable(webhook_id: str) -> Response:
    """Turn the webhook off."""
    return set_active(webhook_id, False)


def rotate_secret(webhook_id: str) -> str:
    """Rotate the signing secret; the new one is shown on this response only (never again)."""
    webhook = webhook_or_404(webhook_id)
    rotated = api_webhooks.rotate(webhook.id, dict)
    return render_template(
        "trakkr_webhooks/portal/secret.html",
        webhook=rotated,
        brand_id=rotated.brand_id,
        secret=rotated.signing_secret,
        expires=rotated.previous_secret_expires_at,
    )


def delete(webhook_id: str) -> Any:
    """``GET``: ask to confirm; ``POST``: delete (soft) and go back to the list."""
    webhook = webhook_or_404(webhook_id)
    if request.method == "GET":
        return render_template("trakkr_webhooks/portal/delete.html", webhook=webhook, brand_id=webhook.brand_id)
    if request.form.get("confirm") != webhook.id:
        flash("Type the webhook's id to confirm the deletion.", "error")
        return render_template("trakkr_webhooks/portal/delete.html", webhook=webhook, brand_id=webhook.brand_id), 400
    api_webhooks.delete(webhook.id)
    flash(f"Webhook {webhook.id} deleted.", "success")
    return redirect(url_for(".index", brand_id=webhook.brand_id), 303)


def error_page(error: Exception) -> tuple[str, int]:
    """An error as a portal page (the host's layout), with its status."""
    if isinstance(error, APIError):
        status, text = error.status, error.message
    elif isinstance(error, HTTPException):
        status, text = error.code or 500, error.description or error.name
    else:
        status, text = 400, str(error)
    return render_template("trakkr_webhooks/portal/error.html", status=status, message=text), status
