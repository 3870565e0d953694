"""``POST /webhooks/<id>/preview`` (``flask_trakkr_webhooks/api/preview.py``): the exact request of
a sample event, credentials masked, nothing sent or stored.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from rq import Queue

from e2e.helpers import BRAND_ID, make_webhook
from e2e.receiver import Receiver
from flask_trakkr_webhooks import __version__, claim, crypto, get_state, ids, message, providers, templating
from flask_trakkr_webhooks.api.common import sample_payload
from flask_trakkr_webhooks.api.preview import MASK, mask_headers
from receiver_kit import verify_signature

HIDDEN_BRAND = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4"  # fixed: test ids stay stable under xdist


SECRET = "preview-signing-secret-0123456789"


TOKEN = "tok_preview_RAW_credential"


TEMPLATE = {
    "text": '{{brand.name}}: {{summary}} — Größe ✓ "quoted" {{event.data.current_score}}',
    "score": "{{event.data.current_score}}",
    "previous": "{{event.data.previous_score}}",
    "kind": "{{event.type}}",
    "workflow": "{{workflow.name}}",
    "nested": [{"brand": "{{brand.id}}", "data": "{{event.data}}"}],
}


def _create(client, url: str, **fields: Any) -> str:
    """A webhook made through the API (bearer auth, a signing secret and a custom header unless overridden)."""
    body = {
        "url": url,
        "events": ["visibility_changed"],
        "brand_id": BRAND_ID,
        "signing_secret": SECRET,
        "auth_type": "bearer",
        "auth_token": TOKEN,
        "headers": {"X-Team": "growth"},
        **fields,
    }
    response = client.post("/webhooks", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _preview(client, hook: str, body: Any = None, status: int = 200) -> dict[str, Any]:
    kwargs = {} if body is None else {"json": body}
    response = client.post(f"/webhooks/{hook}/preview", **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _counts(app) -> dict[str, int]:
    with app.app_context():
        m = get_state(app).models
        session = app.db.session
        counts = {
            model.__tablename__: session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (m.Webhook, m.Event, m.Delivery, m.Attempt)
        }
        session.remove()
        return counts


def _rebuild(app, hook: str, preview: dict[str, Any]) -> message.Message:
    """What the delivery builder makes of the same sample event for this webhook row (unmasked).

    The sample payload is made again from the preview's event id and time (the answer's own
    ``payload`` went through the host's JSON provider, which may sort keys: ``body_text`` is
    the exact text, the parsed ``body`` and ``payload`` are not byte-exact).
    """
    event = preview["payload"]["event"]
    now = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    with app.app_context():
        state = get_state(app)
        row = app.db.session.get(state.models.Webhook, hook)
        payload = sample_payload(state, row, preview["event_type"], event_id=event["id"], now=now)
        endpoint = claim.endpoint_of(row, ids.utcnow())
        app.db.session.remove()
    assert payload == preview["payload"]
    return message.build(
        endpoint, payload, delivery_id=preview["headers"]["X-Trakkr-Delivery"], timestamp=int(now.timestamp())
    )


# -- the exact request ---------------------------------------------------------------------------


def test_the_body_is_what_the_delivery_builder_sends_and_nothing_is_sent_or_stored(
    brand_app, brand_client, plain_receiver
):
    hook = _create(brand_client, plain_receiver.url + "/hooks")
    before = _counts(brand_app)
    preview = _preview(brand_client, hook)
    assert (
        _counts(brand_app)
        == before
        == {
            "trakkr_webhooks": 1,
            "trakkr_webhook_events": 0,
            "trakkr_webhook_deliveries": 0,
            "trakkr_webhook_attempts": 0,
        }
    )
    assert plain_receiver.received == []
    state = get_state(brand_app)
    assert Queue(state.settings.queue, connection=state.redis()).count == 0  # nothing enqueued
    assert state.redis().hlen(state.jobs_key) == 0

    built = _rebuild(brand_app, hook, preview)
    assert preview["body_text"].encode("utf-8") == built.body
    assert preview["body"] == json.loads(built.body) == providers.format_body("webhook", preview["payload"])
    assert preview["url"] == built.url == plain_receiver.url + "/hooks"
    unmasked = dict(preview["headers"], Authorization=f"Bearer {TOKEN}")
    assert unmasked == built.headers
    assert preview["headers"]["X-Trakkr-Signature"] == built.headers["X-Trakkr-Signature"]
    assert verify_signature(preview["body_text"].encode("utf-8"), preview["headers"]["X-Trakkr-Signature"], SECRET)
    assert preview["headers"]["X-Team"] == "growth"
    assert preview["headers"]["User-Agent"] == f"flask-trakkr-webhooks/{__version__}"
    assert preview["headers"]["X-Trakkr-Event"] == "visibility_changed"
    assert {
        key: preview[key]
        for key in (
            "object",
            "webhook_id",
            "event_type",
            "subscribed",
            "method",
            "provider",
            "templated",
            "masked_headers",
        )
    } == {
        "object": "preview",
        "webhook_id": hook,
        "event_type": "visibility_changed",
        "subscribed": True,
        "method": "POST",
        "provider": "webhook",
        "templated": False,
        "masked_headers": ["Authorization"],
    }


def test_the_sample_event_is_the_one_test_sends(brand_app, brand_client):
    """Preview, then a real /test send: the bodies differ only in the ids and the time."""
    with Receiver(secret=SECRET, auth=("Authorization", f"Bearer {TOKEN}")) as rx:
        hook = _create(brand_client, rx.url + "/hooks", events=["citation_lost", "report_completed"])
        preview = _preview(brand_client, hook)
        assert brand_client.post(f"/webhooks/{hook}/test").get_json()["success"] is True
        [got] = rx.received
    assert got.signature_ok and got.auth_ok

    def fixed(body: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(json.dumps(body))
        body["event"]["id"] = body["event"]["timestamp"] = "x"
        body["meta"]["event_id"] = body["meta"]["idempotency_key"] = "x"
        return body

    assert preview["event_type"] == "citation_lost"  # the webhook's first subscribed type, like /test
    assert preview["payload"]["meta"]["test"] is True
    assert fixed(json.loads(preview["body_text"])) == fixed(got.json)
    assert set(preview["headers"]) == set(got.headers) - {
        "Host",
        "Content-Length",
        "Accept",
        "Accept-Encoding",
        "Connection",
    }
    assert preview["headers"]["Authorization"] == f"Bearer {MASK}" != got.headers["Authorization"]


def test_the_body_text_is_the_exact_utf8_json(brand_app, brand_client):
    hook = _create(brand_client, "https://hooks.example.com/t", template=TEMPLATE)
    preview = _preview(brand_client, hook)
    text = preview["body_text"]
    assert "Größe ✓" in text and "\\u" not in text  # not ASCII-escaped: the bytes sent are UTF-8
    assert '\\"quoted\\"' in text
    assert json.loads(text) == preview["body"]
    assert text.encode("utf-8") == _rebuild(brand_app, hook, preview).body


# -- provider formats and templates -----------------------------------------------------------------


def test_a_template_webhook_previews_the_rendered_template(brand_app, brand_client):
    hook = _create(brand_client, "https://hooks.slack.com/services/T000/B000/xyz", template=TEMPLATE)
    preview = _preview(brand_client, hook)
    payload = preview["payload"]
    assert preview["templated"] is True and preview["provider"] == "slack"  # the template wins over Slack's format
    assert preview["body"] == templating.render(TEMPLATE, payload)
    assert preview["body_text"].encode("utf-8") == _rebuild(brand_app, hook, preview).body
    body = preview["body"]
    assert body["score"] == 57.5 and body["previous"] == 41.0  # numbers stay numbers
    assert body["kind"] == "visibility_changed" and body["workflow"] is None
    assert body["nested"] == [{"brand": BRAND_ID, "data": payload["event"]["data"]}]
    assert body["text"] == f'Acme (test): {payload["summary"]} — Größe ✓ "quoted" 57.5'


@pytest.mark.parametrize(
    "url,provider",
    [
        ("https://hooks.slack.com/services/T000/B000/xyz", "slack"),
        ("https://discord.com/api/webhooks/123/abc", "discord"),
        ("https://acme.webhook.office.com/webhookb2/x", "teams_webhook"),
        ("https://hooks.zapier.com/hooks/catch/1/a", "zapier"),
    ],
)
def test_provider_webhooks_preview_the_provider_format(brand_app, brand_client, url, provider):
    hook = _create(brand_client, url, events=["visibility_changed", "report_completed"])
    preview = _preview(brand_client, hook, {"event": "report_completed"})
    assert preview["provider"] == provider and preview["templated"] is False
    assert preview["body"] == providers.format_body(provider, preview["payload"])
    assert preview["body_text"].encode("utf-8") == _rebuild(brand_app, hook, preview).body


# -- event selection -------------------------------------------------------------------------------


def test_the_event_type_defaults_to_the_first_subscribed_and_may_be_any_known_type(brand_app, brand_client):
    hook = _create(brand_client, "https://hooks.example.com/t", events=["report_completed", "visibility_changed"])
    assert _preview(brand_client, hook)["event_type"] == "report_completed"
    assert _preview(brand_client, hook, {})["event_type"] == "report_completed"
    assert _preview(brand_client, hook, {"event": None})["event_type"] == "report_completed"
    named = _preview(brand_client, hook, {"event": "visibility_changed"})
    assert (named["event_type"], named["subscribed"]) == ("visibility_changed", True)
    assert named["headers"]["X-Trakkr-Event"] == named["payload"]["event"]["type"] == "visibility_changed"
    other = _preview(brand_client, hook, {"event": "competitor_added"})  # not subscribed: allowed, and said so
    assert (other["event_type"], other["subscribed"]) == ("competitor_added", False)


def test_a_host_registered_event_type_can_be_previewed(brand_app, brand_client):
    brand_app.webhooks.register_event_type("mention_spiked", "Mentions spiked")
    hook = _create(brand_client, "https://hooks.example.com/t")
    preview = _preview(brand_client, hook, {"event": "mention_spiked"})
    assert preview["payload"]["event"]["data"] == {"example": True, "event_type": "mention_spiked"}


# -- masking ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth,header,shown,raw",
    [
        ({"auth_type": "bearer", "auth_token": TOKEN}, "Authorization", f"Bearer {MASK}", [TOKEN]),
        (
            {"auth_type": "basic", "auth_username": "zap", "auth_password": "pa55-RAW-word"},
            "Authorization",
            f"Basic {MASK}",
            ["pa55-RAW-word", base64.b64encode(b"zap:pa55-RAW-word").decode()],
        ),
        (
            {"auth_type": "api_key", "api_key_header": "X-Api-Key", "api_key_value": "key-RAW-value"},
            "X-Api-Key",
            MASK,
            ["key-RAW-value"],
        ),
    ],
)
def test_credentials_are_masked_and_never_answered(brand_app, brand_client, auth, header, shown, raw):
    hook = _create(brand_client, "https://hooks.example.com/t", **{"auth_token": None, **auth})
    response = brand_client.post(f"/webhooks/{hook}/preview")
    assert response.status_code == 200
    preview = response.get_json()
    assert preview["headers"][header] == shown
    assert preview["masked_headers"] == [header]
    text = response.get_data(as_text=True)
    for secret in raw:
        assert secret not in text
    assert preview["headers"]["X-Trakkr-Signature"].startswith("sha256=")  # derived: shown


def test_without_auth_or_secret_nothing_is_masked_and_nothing_is_signed(brand_app, brand_client):
    hook = _create(brand_client, "https://hooks.example.com/t", auth_type="none", auth_token=None, signing_secret=None)
    preview = _preview(brand_client, hook)
    assert preview["masked_headers"] == []
    assert set(preview["headers"]) == {"X-Team", "Content-Type", "User-Agent", "X-Trakkr-Event", "X-Trakkr-Delivery"}


def test_mask_headers_is_pure_and_masks_only_the_auth_header():
    endpoint = message.Endpoint(
        url="https://x.example", auth_type="api_key", api_key_header="x-key", api_key_value="Token abc"
    )
    headers = {"X-Key": "Token abc", "Authorization": "Bearer custom-not-ours", "X-Trakkr-Signature": "sha256=00"}
    assert mask_headers(headers, endpoint) == (
        {"X-Key": MASK, "Authorization": "Bearer custom-not-ours", "X-Trakkr-Signature": "sha256=00"},
        ["X-Key"],
    )
    assert headers["X-Key"] == "Token abc"  # the input is left alone
    assert mask_headers({"A": "b"}, message.Endpoint(url="https://x.example")) == ({"A": "b"}, [])


# -- errors ----------------------------------------------------------------------------------------


def _error(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]


def test_an_unknown_event_type_is_400_on_event(brand_app, brand_client):
    hook = _create(brand_client, "https://hooks.example.com/t")
    known = ", ".join(sorted(brand_app.webhooks.event_types))
    assert _error(brand_client.post(f"/webhooks/{hook}/preview", json={"event": "nope"}), 400) == {
        "type": "invalid_request",
        "message": f"Invalid request: event: unknown event type 'nope'; known: {known}",
        "fields": {"event": [f"unknown event type 'nope'; known: {known}"]},
    }


@pytest.mark.parametrize("event", [5, True, ["visibility_changed"], {"type": "visibility_changed"}])
def test_an_event_that_is_not_a_string_is_400_on_event(brand_app, brand_client, event):
    hook = _create(brand_client, "https://hooks.example.com/t")
    assert _error(brand_client.post(f"/webhooks/{hook}/preview", json={"event": event}), 400)["fields"] == {
        "event": ["must be a string naming an event type"]
    }


def test_unknown_body_fields_and_query_parameters_are_400_naming_them(brand_app, brand_client):
    hook = _create(brand_client, "https://hooks.example.com/t")
    assert _error(brand_client.post(f"/webhooks/{hook}/preview", json={"evnt": "report_completed"}), 400)["fields"] == {
        "evnt": ["unknown field"]
    }
    assert _error(brand_client.post(f"/webhooks/{hook}/preview?send=1"), 400)["fields"] == {
        "send": ["unknown query parameter"]
    }


def test_malformed_and_non_json_bodies(brand_app, brand_client):
    hook = _create(brand_client, "https://hooks.example.com/t")
    url = f"/webhooks/{hook}/preview"
    assert _error(brand_client.post(url, data="{", content_type="application/json"), 400)["message"].startswith(
        "Malformed JSON"
    )
    assert _error(brand_client.post(url, data="[1]", content_type="application/json"), 400)["message"] == (
        "Request body must be a JSON object, not list."
    )
    assert _error(brand_client.post(url, data="event=x", content_type="application/x-www-form-urlencoded"), 415)[
        "fields"
    ] == {"Content-Type": ["expected application/json, got application/x-www-form-urlencoded"]}
    assert _error(brand_client.get(url), 405)["type"] == "method_not_allowed"


def test_missing_deleted_and_other_brands_webhooks_are_404(brand_app, brand_client):
    gone = _create(brand_client, "https://hooks.example.com/gone")
    assert brand_client.delete(f"/webhooks/{gone}").status_code == 200
    hidden = make_webhook(brand_app, "https://hooks.example.com/hidden", brand_id=HIDDEN_BRAND)
    for hook in ("wh_doesnotexist", gone, hidden, "not-an-id"):
        before = _counts(brand_app)
        for kwargs in ({}, {"json": {"event": "visibility_changed"}}, {"json": {"event": "nope"}}):
            assert _error(brand_client.post(f"/webhooks/{hook}/preview", **kwargs), 404) == {
                "type": "not_found",
                "message": f"No such webhook: {hook!r}.",
            }
        assert _counts(brand_app) == before


def test_a_webhook_whose_request_cannot_be_built_is_409(brand_app, brand_client):
    """A row written around the API (bearer without a token): every delivery of it would fail permanently."""
    hook = make_webhook(brand_app, "https://hooks.example.com/t", auth_token=None)
    before = _counts(brand_app)
    assert _error(brand_client.post(f"/webhooks/{hook}/preview"), 409) == {
        "type": "conflict",
        "message": "The webhook's request cannot be built, so every delivery would fail: "
        "auth_type 'bearer' needs an auth_token",
    }
    assert _counts(brand_app) == before


def test_the_answer_has_exactly_the_documented_fields(brand_app, brand_client):
    hook = _create(brand_client, "https://hooks.example.com/t")
    documented = brand_client.get("/webhooks/openapi.json").get_json()["components"]["schemas"]["Preview"]
    preview = _preview(brand_client, hook)
    assert set(preview) == set(documented["properties"]) == set(documented["required"])
    operation = brand_client.get("/webhooks/openapi.json").get_json()["paths"]["/webhooks/{webhook_id}/preview"]["post"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Preview"
    }
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "405", "409", "413", "415"}


# -- issue 19 item 3: a credential written under another key ---------------------------------------


def test_preview_with_an_undecryptable_credential_is_409(make_app) -> None:
    app = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=crypto.generate_key())
    with crypto.using_keys(crypto.generate_key()):
        webhook_id = make_webhook(app, "https://receiver.example.com/h", signing_secret=None)
    response = app.test_client().post(f"/webhooks/{webhook_id}/preview")
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == "conflict"
    assert error["fields"] == {"auth_token": ["cannot be decrypted with the configured encryption key"]}
