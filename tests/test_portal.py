"""The web portal (``flask_trakkr_webhooks/portal/``) through Flask's test client: every page and
action, the access policy (another brand's webhook is a 404), CSRF refusal, escaping of hostile
response bodies and event data, and the security headers (CSP)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask

from e2e.helpers import BRAND_ID, delivery_rows, emit, make_webhook, process_open, webhook_row
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import get_state, ids
from flask_trakkr_webhooks.portal import security

P = "/webhooks/portal"
OTHER_BRAND = str(uuid.uuid4())
HOSTILE = '<script>alert("x")</script><a href="javascript:alert(1)">click</a>'


@pytest.fixture
def portal_app(new_app: Any) -> Any:
    """An app delivering to local receivers with the portal on, a policy allowing ``BRAND_ID`` only,
    and a brand lister."""
    app = new_app(policy=lambda brand_id: brand_id == BRAND_ID, TRAKKR_WEBHOOKS_PORTAL=True, SECRET_KEY="test-secret")
    app.webhooks.portal_brands(lambda: [(BRAND_ID, "Acme"), (OTHER_BRAND, "Globex")])
    return app


@pytest.fixture
def portal(portal_app: Flask) -> Any:
    """A test client of ``portal_app``."""
    return portal_app.test_client()


def post(client: Any, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """POST a form with the session's CSRF token."""
    client.get(f"{P}/events")  # a page that renders a token
    with client.session_transaction() as session:
        session.setdefault(security.SESSION_KEY, "tok-" + uuid.uuid4().hex)
        value = session[security.SESSION_KEY]
    return client.post(path, data={"csrf_token": value, **(data or {})}, **kwargs)


def text(response: Any) -> str:
    """The response body as text."""
    return str(response.get_data(as_text=True))


# -- mounting and headers -------------------------------------------------------------------------


def test_portal_is_off_by_default(make_app: Any) -> None:
    app = make_app()
    assert app.test_client().get(P).status_code == 404
    assert "trakkr_webhooks_portal" not in app.blueprints


def test_portal_prefix_is_configurable(make_app: Any) -> None:
    app = make_app(TRAKKR_WEBHOOKS_PORTAL=True, TRAKKR_WEBHOOKS_PORTAL_PREFIX="/hooks-ui/", SECRET_KEY="k")
    assert app.test_client().get("/hooks-ui").status_code == 200


def test_portal_prefix_must_name_a_path(make_app: Any) -> None:
    with pytest.raises(ValueError, match="TRAKKR_WEBHOOKS_PORTAL_PREFIX must start with '/'"):
        make_app(TRAKKR_WEBHOOKS_PORTAL=True, TRAKKR_WEBHOOKS_PORTAL_PREFIX="portal")


def test_every_page_sends_a_strict_csp_and_no_inline_script(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    emit(portal_app)
    delivery = delivery_rows(portal_app, webhook_id=hook)[0].id
    pages = [
        P,
        f"{P}?brand_id={BRAND_ID}",
        f"{P}/new?brand_id={BRAND_ID}",
        f"{P}/events",
        f"{P}/{hook}",
        f"{P}/{hook}/edit",
        f"{P}/{hook}/health",
        f"{P}/{hook}/delete",
        f"{P}/{hook}/deliveries/{delivery}",
    ]
    for page in pages:
        response = portal.get(page)
        assert response.status_code == 200, (page, text(response))
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        body = text(response)
        # Scripts only by src; no inline handlers, no style attributes (the CSP would block them).
        assert re.findall(r"<script(?![^>]*\bsrc=)", body) == [], page
        assert not re.search(r"\son[a-z]+=", body), page
        assert " style=" not in body, page
    assert portal.get(f"{P}/{hook}/nope").headers["Content-Security-Policy"] == security.CSP


def test_static_script_is_served(portal: Any) -> None:
    response = portal.get(f"{P}/static/trakkr_webhooks_portal/portal.js")
    assert response.status_code == 200 and b"use strict" in response.data


# -- access policy --------------------------------------------------------------------------------


def test_brand_picker_lists_only_brands_the_policy_allows(portal: Any) -> None:
    page = text(portal.get(P))
    assert "Acme" in page and BRAND_ID in page
    assert "Globex" not in page


def test_list_of_a_refused_brand_is_403(portal: Any) -> None:
    response = portal.get(f"{P}?brand_id={OTHER_BRAND}")
    assert response.status_code == 403
    assert "You may not manage webhooks of this brand." in text(response)


def test_list_with_a_malformed_brand_is_400(portal: Any) -> None:
    response = portal.get(f"{P}?brand_id=nope")
    assert response.status_code == 400
    assert "brand_id must be a UUID" in text(response)


def test_another_brands_webhook_is_404_on_every_page_and_action(portal_app: Flask, portal: Any) -> None:
    hidden = make_webhook(portal_app, "http://127.0.0.1:9/h", brand_id=OTHER_BRAND)
    emit(portal_app, brand={"id": OTHER_BRAND, "name": "Globex", "website": None})
    delivery = delivery_rows(portal_app, webhook_id=hidden)[0].id
    for page in ("", "/edit", "/health", "/delete", f"/deliveries/{delivery}"):
        response = portal.get(f"{P}/{hidden}{page}")
        assert response.status_code == 404, page
        assert f"No such webhook: &#39;{hidden}&#39;." in text(response)
    for action in ("/test", "/enable", "/disable", "/rotate-secret", "/delete", "/replay", "/edit", "/preview",
                   f"/deliveries/{delivery}/redeliver"):  # fmt: skip
        response = post(portal, f"{P}/{hidden}{action}", {"since": "2024-01-01T00:00", "confirm": hidden})
        assert response.status_code == 404, action
    row = webhook_row(portal_app, hidden)
    assert row.active and row.deleted_at is None and row.signing_secret == "whsec_e2e"


def test_no_access_policy_outside_testing_is_403(make_app: Any) -> None:
    app = make_app(
        TRAKKR_WEBHOOKS_PORTAL=True, SECRET_KEY="k", TESTING=False, TRAKKR_WEBHOOKS_ENCRYPTION_KEY=Fernet.generate_key()
    )
    response = app.test_client().get(f"{P}?brand_id={BRAND_ID}")
    assert response.status_code == 403
    assert "No access policy is configured" in text(response)


# -- CSRF ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [None, "", "forged"])
def test_post_without_the_session_token_is_refused(portal_app: Flask, portal: Any, sent: str | None) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    portal.get(f"{P}/{hook}")  # the session has a token now
    data = {} if sent is None else {"csrf_token": sent}
    for action in ("/disable", "/rotate-secret", "/delete"):
        response = portal.post(f"{P}/{hook}{action}", data={**data, "confirm": hook})
        assert response.status_code == 400, action
        assert "security token is missing or out of date" in text(response)
        assert response.headers["Content-Security-Policy"] == security.CSP
    row = webhook_row(portal_app, hook)
    assert row.active and row.deleted_at is None and row.signing_secret == "whsec_e2e"


def test_every_form_carries_the_csrf_token(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    page = text(portal.get(f"{P}/{hook}"))
    forms = re.findall(r'<form method="post".*?</form>', page, re.S)
    assert len(forms) == 4  # test, disable, rotate, replay (delete confirms on its own page)
    with portal.session_transaction() as session:
        expected = session[security.SESSION_KEY]
    for form in forms:
        assert f'name="csrf_token" value="{expected}"' in form


# -- webhooks list, create, edit ------------------------------------------------------------------


def test_list_shows_provider_events_state_rates_and_last_attempt(portal_app: Flask, portal: Any) -> None:
    ok = make_webhook(portal_app, "http://127.0.0.1:9/ok", description="Main hook")
    off = make_webhook(portal_app, "http://127.0.0.1:9/off", active=False, disabled_reason="410 Gone from the endpoint")
    emit(portal_app)
    with portal_app.app_context():
        state = get_state(portal_app)
        now = ids.utcnow()
        for d in state.models.Delivery.query.filter_by(webhook_id=ok):
            d.status = "succeeded"
            state.db.session.add(
                state.models.Attempt(
                    delivery_id=d.id, number=1, started_at=now, duration_ms=12.0, status_code=200, outcome="succeeded"
                )  # fmt: skip
            )
        state.db.session.commit()
    page = text(portal.get(f"{P}?brand_id={BRAND_ID}"))
    assert "Main hook" in page and "http://127.0.0.1:9/ok" in page
    assert "visibility_changed" in page
    assert "410 Gone from the endpoint" in page and ">disabled<" in page
    assert "100.0%" in page  # one succeeded of one finished, 24 h and 7 d
    assert ">succeeded</span> 200" in page
    assert off in page or "http://127.0.0.1:9/off" in page


def test_create_through_the_form(portal_app: Flask, portal: Any) -> None:
    assert portal.get(f"{P}/new?brand_id={BRAND_ID}").status_code == 200
    response = post(
        portal,
        f"{P}/new?brand_id={BRAND_ID}",
        {
            "url": "http://127.0.0.1:9/new",
            "events": ["visibility_changed", "report_completed"],
            "description": "From the form",
            "auth_type": "bearer",
            "auth_token": "tok_form",
            "headers": "X-Team: growth",
            "template": '{"text": "{{ event.type }}"}',
        },
    )
    assert response.status_code == 303, text(response)
    webhook_id = response.headers["Location"].split("/")[-1].split("?")[0]
    row = webhook_row(portal_app, webhook_id)
    assert row.brand_id == BRAND_ID and row.events == ["visibility_changed", "report_completed"]
    assert row.auth_token == "tok_form" and row.headers == {"X-Team": "growth"}
    assert row.template == {"text": "{{ event.type }}"} and row.provider == "webhook"
    assert "Webhook " + webhook_id + " created." in text(portal.get(response.headers["Location"]))


def test_create_with_bad_fields_shows_the_apis_errors(portal: Any) -> None:
    response = post(portal, f"{P}/new?brand_id={BRAND_ID}", {"url": "ftp://x", "events": ["visibility_changed"]})
    assert response.status_code == 400
    page = text(response)
    assert '<p class="field-error" id="url-error">must use http or https (not &#39;ftp&#39;) </p>' in page
    assert "the webhook was not saved" in page and 'value="ftp://x"' in page
    response = post(portal, f"{P}/new?brand_id={BRAND_ID}", {"url": "http://127.0.0.1:9/x", "events": ["nope"]})
    assert response.status_code == 400
    assert 'id="events-error"' in text(response)


def test_create_with_malformed_template_and_headers(portal: Any) -> None:
    response = post(
        portal,
        f"{P}/new?brand_id={BRAND_ID}",
        {"url": "http://127.0.0.1:9/x", "events": ["visibility_changed"], "template": "{", "headers": "nocolon"},
    )
    assert response.status_code == 400
    page = text(response)
    assert "must be JSON" in page and "line 1: write &#39;Name: value&#39;" in page


def test_create_for_a_refused_brand_is_403(portal: Any) -> None:
    response = post(portal, f"{P}/new?brand_id={OTHER_BRAND}", {"url": "http://127.0.0.1:9/x", "events": []})
    assert response.status_code == 403


def test_edit_keeps_credentials_when_left_blank(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    page = text(portal.get(f"{P}/{hook}/edit"))
    assert "tok_e2e" not in page and "whsec_e2e" not in page  # write-only
    response = post(
        portal,
        f"{P}/{hook}/edit",
        {
            "url": "http://127.0.0.1:9/h",
            "events": ["citation_gained"],
            "auth_type": "bearer",
            "active": "on",
            "description": "Renamed",
        },  # fmt: skip
    )
    assert response.status_code == 303, text(response)
    row = webhook_row(portal_app, hook)
    assert row.events == ["citation_gained"] and row.description == "Renamed" and row.auth_token == "tok_e2e"


def test_edit_with_a_bad_field_is_400(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    response = post(portal, f"{P}/{hook}/edit", {"url": "http://127.0.0.1:9/h", "events": [], "auth_type": "bearer"})
    assert response.status_code == 400
    assert 'id="events-error"' in text(response)


def test_detect_names_the_provider(portal: Any) -> None:
    assert portal.get(f"{P}/detect?url=https://hooks.slack.com/services/T/B/x").get_json() == {"provider": "slack"}
    assert portal.get(f"{P}/detect?url=").get_json() == {"provider": None}


def test_preview_renders_the_forms_template_without_saving(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    answer = post(portal, f"{P}/{hook}/preview", {"template": '{"t": "{{ event.type }}"}', "provider": ""}).get_json()
    assert '"t": "visibility_changed"' in answer["body"]
    bad = post(portal, f"{P}/{hook}/preview", {"template": "{"})
    assert bad.status_code == 400 and bad.get_json()["error"]
    assert webhook_row(portal_app, hook).template is None


def test_preview_of_a_new_webhook_uses_the_forms_url_and_template(portal: Any) -> None:
    slack = post(portal, f"{P}/preview?brand_id={BRAND_ID}", {"url": "https://hooks.slack.com/services/T/B/x"})
    answer = slack.get_json()
    assert slack.status_code == 200 and answer["provider"] == "slack" and '"blocks"' in answer["body"]
    templated = post(
        portal,
        f"{P}/preview?brand_id={BRAND_ID}",
        {"url": "https://example.com/h", "template": '{"t": "{{ event.type }}"}', "event": "report_completed"},
    ).get_json()
    assert '"t": "report_completed"' in templated["body"]
    bad = post(portal, f"{P}/preview?brand_id={BRAND_ID}", {"event": "nope"})
    assert bad.status_code == 400 and bad.get_json() == {"error": "event must be a known event type"}
    assert post(portal, f"{P}/preview?brand_id={OTHER_BRAND}", {}).status_code == 403


# -- detail, log, attempts ----------------------------------------------------------------------------


def test_delivery_log_filters_and_cursor_pagination(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h", events=["visibility_changed", "report_completed"])
    for n in range(25):
        if n % 5 == 0:
            emit(portal_app, "report_completed", data={"report_id": "r"})
        else:
            emit(portal_app)
    with portal_app.app_context():
        state = get_state(portal_app)
        base = ids.utcnow() - timedelta(hours=2)
        D = state.models.Delivery
        for n, d in enumerate(D.query.filter_by(webhook_id=hook).order_by(D.created_at, D.id)):
            d.created_at = base + timedelta(minutes=n)
            d.status = "failed" if n == 3 else "succeeded"
        state.db.session.commit()
    first = text(portal.get(f"{P}/{hook}"))
    shown = re.findall(r"<code>(dlv_[^<]+)</code></a>", first)
    assert len(shown) == 20
    cursor = re.search(r'rel="next" href="([^"]+)"', first)
    assert cursor is not None
    second = text(portal.get(cursor.group(1).replace("&amp;", "&")))
    rest = re.findall(r"<code>(dlv_[^<]+)</code></a>", second)
    assert len(rest) == 5 and not set(rest) & set(shown)
    assert 'rel="next"' not in second and ">Newest<" in second
    failed = text(portal.get(f"{P}/{hook}?status=failed"))
    assert len(re.findall(r"<code>(dlv_[^<]+)</code></a>", failed)) == 1
    reports = text(portal.get(f"{P}/{hook}?event_type=report_completed"))
    assert len(re.findall(r"<code>(dlv_[^<]+)</code></a>", reports)) == 5
    since = (base + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M")
    recent = text(portal.get(f"{P}/{hook}?since={since}"))
    assert len(re.findall(r"<code>(dlv_[^<]+)</code></a>", recent)) == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=lost", "status must be one of"),
        ("event_type=nope", "event_type must be a known event type."),
        ("since=yesterday", "since must be a date and time"),
        ("starting_after=dlv_nope", "Invalid request: starting_after: must be the id of a delivery of this webhook"),
    ],
)
def test_delivery_log_bad_filters_are_400(portal_app: Flask, portal: Any, query: str, message: str) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    response = portal.get(f"{P}/{hook}?{query}")
    assert response.status_code == 400
    assert message in text(response)


def test_hostile_response_bodies_and_event_data_are_escaped(portal_app: Flask, portal: Any) -> None:
    with Receiver() as rx:
        rx.script(Reply(500, {"X-Evil": HOSTILE}, HOSTILE.encode()))
        hook = make_webhook(portal_app, rx.url + "/h", description=HOSTILE, auth_type="none", auth_token=None)
        emit(portal_app, data={"previous_score": 1, "current_score": 2, "note": HOSTILE})
        process_open(portal_app)
    delivery = delivery_rows(portal_app, webhook_id=hook)[0]
    assert delivery.attempts and delivery.attempts[0].response_body == HOSTILE
    for page in (f"{P}/{hook}/deliveries/{delivery.id}", f"{P}/{hook}", f"{P}?brand_id={BRAND_ID}"):
        body = text(portal.get(page))
        assert "<script>alert" not in body, page
        assert 'href="javascript:' not in body, page
    detail = text(portal.get(f"{P}/{hook}/deliveries/{delivery.id}"))
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in detail


def test_delivery_detail_masks_credentials(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    emit(portal_app)
    delivery = delivery_rows(portal_app, webhook_id=hook)[0].id
    page = text(portal.get(f"{P}/{hook}/deliveries/{delivery}"))
    assert "Authorization: Bearer ********" in page
    assert "tok_e2e" not in page and "whsec_e2e" not in page
    assert "webhook-signature" in page.lower()


def test_unknown_delivery_is_404(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    response = portal.get(f"{P}/{hook}/deliveries/dlv_missing")
    assert response.status_code == 404
    assert "No such delivery: &#39;dlv_missing&#39;." in text(response)


# -- actions ----------------------------------------------------------------------------------------------


def test_send_a_test_records_its_attempt(portal_app: Flask, portal: Any) -> None:
    with Receiver() as rx:
        rx.script(Reply(200, {}, b"thanks"))
        hook = make_webhook(portal_app, rx.url + "/h", auth_type="none", auth_token=None)
        response = post(portal, f"{P}/{hook}/test")
        assert response.status_code == 303
        page = text(portal.get(response.headers["Location"]))
    assert "Test sent: the endpoint answered 200." in page and "thanks" in page


def test_send_a_test_that_fails_says_so(portal_app: Flask, portal: Any) -> None:
    with Receiver() as rx:
        rx.script(Reply(503, {}, b"down"))
        hook = make_webhook(portal_app, rx.url + "/h", auth_type="none", auth_token=None)
        page = text(portal.get(post(portal, f"{P}/{hook}/test").headers["Location"]))
    assert "Test failed: 503" in page


def test_redeliver_queues_a_new_delivery_of_the_same_event(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    event_id = emit(portal_app)
    (original,) = delivery_rows(portal_app, webhook_id=hook)
    response = post(portal, f"{P}/{hook}/deliveries/{original.id}/redeliver")
    assert response.status_code == 303
    rows = delivery_rows(portal_app, webhook_id=hook)
    assert len(rows) == 2 and {r.event_id for r in rows} == {event_id}
    assert "queued" in text(portal.get(response.headers["Location"]))


def test_redeliver_of_an_inactive_webhook_is_refused_with_the_reason(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    emit(portal_app)
    (original,) = delivery_rows(portal_app, webhook_id=hook)
    post(portal, f"{P}/{hook}/disable")
    page = text(post(portal, f"{P}/{hook}/deliveries/{original.id}/redeliver", follow_redirects=True))
    assert "The webhook is inactive" in page
    assert len(delivery_rows(portal_app, webhook_id=hook)) == 1


def test_replay_since_a_time(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    emit(portal_app)
    (original,) = delivery_rows(portal_app, webhook_id=hook)
    with portal_app.app_context():
        state = get_state(portal_app)
        state.db.session.get(state.models.Delivery, original.id).status = "failed"
        state.db.session.commit()
    since = (ids.utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page = text(post(portal, f"{P}/{hook}/replay", {"since": since, "status": "failed"}, follow_redirects=True))
    assert "Replayed 1 deliveries since" in page
    assert len(delivery_rows(portal_app, webhook_id=hook)) == 2


def test_replay_without_since_is_400(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    response = post(portal, f"{P}/{hook}/replay", {"since": ""})
    assert response.status_code == 400
    assert "since is required" in text(response)


def test_disable_and_enable(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h", consecutive_failures=3, disabled_reason="x")
    assert post(portal, f"{P}/{hook}/disable").status_code == 303
    assert webhook_row(portal_app, hook).active is False
    page = text(post(portal, f"{P}/{hook}/enable", follow_redirects=True))
    row = webhook_row(portal_app, hook)
    assert row.active is True and row.consecutive_failures == 0 and row.disabled_reason is None
    assert "Webhook enabled." in page


def test_rotate_secret_shows_the_new_secret_once(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    response = post(portal, f"{P}/{hook}/rotate-secret")
    assert response.status_code == 200
    row = webhook_row(portal_app, hook)
    assert row.signing_secret != "whsec_e2e" and row.previous_signing_secret == "whsec_e2e"
    assert row.signing_secret in text(response) and "shown this once" in text(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert row.signing_secret not in text(portal.get(f"{P}/{hook}"))


def test_delete_needs_confirmation(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    assert "Type the webhook" in text(portal.get(f"{P}/{hook}/delete"))
    wrong = post(portal, f"{P}/{hook}/delete", {"confirm": "wh_other"})
    assert wrong.status_code == 400 and webhook_row(portal_app, hook).deleted_at is None
    response = post(portal, f"{P}/{hook}/delete", {"confirm": hook})
    assert response.status_code == 303
    assert webhook_row(portal_app, hook).deleted_at is not None
    assert portal.get(f"{P}/{hook}").status_code == 404


# -- health and catalog ---------------------------------------------------------------------------------


def test_health_chart_is_inline_svg_with_a_table(portal_app: Flask, portal: Any) -> None:
    hook = make_webhook(portal_app, "http://127.0.0.1:9/h")
    for _ in range(3):
        emit(portal_app)
    with portal_app.app_context():
        state = get_state(portal_app)
        now = ids.utcnow()
        for n, d in enumerate(state.models.Delivery.query.filter_by(webhook_id=hook)):
            d.status = "failed" if n == 0 else "succeeded"
            d.completed_at = now
            state.db.session.add(
                state.models.Attempt(
                    delivery_id=d.id,
                    number=1,
                    started_at=now,
                    duration_ms=10.0 * (n + 1),
                    status_code=200,
                    outcome="succeeded",
                )  # fmt: skip
            )
        state.db.session.commit()
    page = text(portal.get(f"{P}/{hook}/health"))
    assert page.count("<svg") == 2 and "<rect" in page and "<polyline" in page
    assert "2 succeeded, 1 failed, 0 cancelled" in page
    assert "latency p50 20 ms, p95 30 ms" in page
    assert "<caption>Last 24 hours: deliveries and latency per hour (UTC)</caption>" in page


def test_event_catalog_lists_types_with_samples_per_provider(portal: Any) -> None:
    page = text(portal.get(f"{P}/events"))
    for name in ("visibility_changed", "report_completed", "citation_gained"):
        assert f"<code>{name}</code>" in page
    for provider in ("slack", "discord", "teams_webhook", "webhook"):
        assert f"<summary>{provider}</summary>" in page


def test_host_overrides_the_base_layout(make_app: Any, tmp_path: Any) -> None:
    folder = tmp_path / "templates" / "trakkr_webhooks" / "portal"
    folder.mkdir(parents=True)
    (tmp_path / "templates" / "layout.html").write_text(
        "<html><title>{% block title %}{% endblock %}</title><body><header>Host app</header>"
        "{% block main %}{% endblock %}</body></html>"
    )
    (folder / "base.html").write_text(
        '{% extends "layout.html" %}'
        '{% block main %}<div id="host">{% block content %}{% endblock %}</div>{% endblock %}'
    )
    app = make_app(TRAKKR_WEBHOOKS_PORTAL=True, SECRET_KEY="k")
    app.template_folder = str(tmp_path / "templates")
    page = text(app.test_client().get(f"{P}/events"))
    assert "<header>Host app</header>" in page and '<div id="host">\n<h1>Event catalog</h1>' in page
