"""End to end: provider formats and templates, delivered by a real worker process via real Redis.

How a platform format reaches a receiver on 127.0.0.1: a webhook's provider is detected
from its URL once, when the API saves it (``hooks.slack.com`` -> ``slack``), and stored; the
engine never detects again at send time (:func:`delivery.endpoint_of` reads the stored
``provider``). So these tests write the webhook row with ``provider`` set explicitly
(``make_webhook(..., provider="slack")``) and a URL on the local receiver, a URL that is
detected as a plain ``webhook``: a Slack body arriving there proves the stored provider is
what the worker uses. Nothing here talks to a real platform.

Each body is compared byte for byte with the formatter (or template) applied to the payload
stored with the event, serialised as the wire format says (compact UTF-8 JSON), and the
receiver checks ``X-Trakkr-Signature`` with ``receiver_kit.verify_signature`` over the bytes
it read.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from e2e.conftest import wait_until
from e2e.helpers import BRAND_ID, deliveries, emit, make_webhook
from e2e.receiver import Received, Receiver
from flask_trakkr_webhooks import get_state, providers, templating
from flask_trakkr_webhooks.providers.detect import detect_provider
from receiver_kit import verify_signature

pytestmark = pytest.mark.e2e

DROP = {"previous_score": 57.5, "current_score": 41.0, "change_percent": -28.7, "direction": "down"}


def _wire(document: Any) -> bytes:
    """The body bytes the contract's wire format prescribes for ``document``."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _stored_payload(app: Flask, event_id: str) -> dict[str, Any]:
    with app.app_context():
        payload = app.db.session.get(get_state(app).models.Event, event_id).payload  # type: ignore[attr-defined]
        app.db.session.remove()  # type: ignore[attr-defined]
        return payload


def _succeeded(app: Flask, event_id: str) -> list[dict[str, Any]]:
    """Every delivery of ``event_id``, once all of them succeeded (one attempt each)."""
    done = wait_until(
        lambda: (rows := deliveries(app, event_id)) and all(d["status"] == "succeeded" for d in rows) and rows,
        20,
        f"deliveries of {event_id} to succeed",
    )
    assert all(d["attempt_count"] == 1 for d in done)
    return done


def _delivered(app: Flask, receiver: Receiver, event_id: str) -> tuple[Received, dict[str, Any]]:
    """The request the receiver got for the (single, succeeded) delivery of ``event_id``, its
    signature and auth checked, and the payload stored with the event."""
    [sent] = _succeeded(app, event_id)
    [got] = [r for r in receiver.received if r.headers.get("X-Trakkr-Delivery") == sent["id"]]
    assert got.signature_ok is True and got.auth_ok is True
    assert verify_signature(got.body, got.headers["X-Trakkr-Signature"], "whsec_e2e")
    assert got.headers["Content-Type"] == "application/json"
    return got, _stored_payload(app, event_id)


def test_a_slack_webhook_gets_block_kit_built_from_the_stored_provider(e2e_app, receiver, start_worker):
    app = e2e_app()
    url = receiver.url + "/services/T000/B000/e2e"
    assert detect_provider(url) == "webhook"  # the URL alone would give the standard payload
    make_webhook(app, url, provider="slack")
    start_worker(app)
    rise = emit(app)
    drop = emit(app, data=DROP)

    receiver.wait_for(2, timeout=20)
    headers = {}
    for event_id in (rise, drop):
        got, payload = _delivered(app, receiver, event_id)
        expected = providers.format_body("slack", payload)
        assert got.body == _wire(expected)  # byte for byte what the formatter makes of the stored payload
        body = got.json
        assert "event" not in body and "meta" not in body  # not the standard payload
        assert isinstance(body["text"], str) and payload["summary"] in body["text"]  # the notification fallback
        types = [block["type"] for block in body["blocks"]]
        assert types[0] == "header" and types[-1] == "context" and "section" in types
        assert body["blocks"][0]["text"]["type"] == "plain_text" and len(body["blocks"][0]["text"]["text"]) <= 150
        context = " ".join(element.get("text", "") for element in body["blocks"][-1]["elements"])
        assert "Acme" in context and "visibility_changed" in context
        headers[event_id] = body["blocks"][0]["text"]["text"]
    assert headers[rise] != headers[drop]  # a drop reads differently from a rise


def test_a_template_webhook_gets_the_rendered_template_with_json_types(e2e_app, receiver, start_worker):
    template = {
        "title": "{{brand.name}}: {{event.type}}",
        "score": "{{event.data.current_score}}",
        "previous": "{{event.data.previous_score}}",
        "note": "{{event.data.note}}",
        "line": "Note was <{{event.data.note}}> at {{timestamp}}",
        "workflow": "{{workflow.name}}",
        "ids": ["{{event.id}}", "{{brand.id}}"],
    }
    app = e2e_app()
    make_webhook(app, receiver.url + "/hooks", provider="slack", template=template)  # a template wins over Slack
    start_worker(app)
    hostile = 'he said "hi", }{ {{brand.id}} \\ "injected": true'
    event_id = emit(app, data={"previous_score": 41.0, "current_score": 57.5, "note": hostile})

    receiver.wait_for(1, timeout=20)
    got, payload = _delivered(app, receiver, event_id)
    assert got.body == _wire(templating.render(template, payload))
    body = got.json
    assert body["score"] == 57.5 and isinstance(body["score"], float)  # a score stays a number
    assert body["previous"] == 41.0 and isinstance(body["previous"], float)
    assert body["title"] == "Acme: visibility_changed"
    assert body["note"] == hostile  # quotes and braces arrive as text, never parsed or expanded
    assert body["line"] == f"Note was <{hostile}> at {payload['event']['timestamp']}"
    assert "injected" not in body and list(body) == list(template)
    assert body["workflow"] is None
    assert body["ids"] == [event_id, payload["brand"]["id"]]


@pytest.mark.parametrize("provider", ["discord", "teams_webhook"])
def test_discord_and_teams_webhooks_get_their_platform_format(e2e_app, receiver, start_worker, provider):
    app = e2e_app()
    make_webhook(app, receiver.url + f"/{provider}", provider=provider, events=["report_completed"])
    start_worker(app)
    event_id = emit(
        app,
        "report_completed",
        data={"report_id": "rpt_1", "report_name": "Weekly", "report_url": "https://app.trakkr.example/reports/rpt_1"},
    )

    receiver.wait_for(1, timeout=20)
    got, payload = _delivered(app, receiver, event_id)
    assert got.body == _wire(providers.format_body(provider, payload))
    body = got.json
    if provider == "discord":
        [embed] = body["embeds"]
        assert embed["title"] and embed["timestamp"] and isinstance(embed["color"], int)
    else:
        assert body["type"] == "message"
        [attachment] = body["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert attachment["content"]["type"] == "AdaptiveCard"
    assert "https://app.trakkr.example/reports/rpt_1" in got.body.decode("utf-8")


def test_a_host_registered_provider_is_detected_and_delivered_through_its_formatter(e2e_app, receiver, start_worker):
    from e2e.provider_hostapp import pager_body, register_pager

    register_pager()  # in this process too: the API detects it when the webhook is saved
    try:
        app = e2e_app()
        url = receiver.url + "/pager/ops"
        response = app.test_client().post(
            "/webhooks",
            json={
                "url": url,
                "events": ["visibility_changed"],
                "brand_id": BRAND_ID,
                "auth_type": "bearer",
                "auth_token": "tok_e2e",
                "signing_secret": None,
            },
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.get_json()["provider"] == "pager"
        with app.app_context():  # the receiver's secret, shorter than the API accepts
            state = get_state(app)
            state.db.session.get(state.models.Webhook, response.get_json()["id"]).signing_secret = "whsec_e2e"
            state.db.session.commit()
        start_worker(app, host="e2e.provider_hostapp:create_app")
        event_id = emit(app)
        receiver.wait_for(1, timeout=20)
        got, payload = _delivered(app, receiver, event_id)
        assert got.path == "/pager/ops"
        assert got.body == _wire(pager_body(payload))
        assert json.loads(got.body)["severity"] == "info"
    finally:
        providers.unregister("pager")
