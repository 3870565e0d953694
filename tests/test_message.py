"""The request of a delivery (``flask_trakkr_webhooks/message.py``, pure): body bytes, headers per
auth type, the signature headers it carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from flask_trakkr_webhooks import __version__, providers, signing
from flask_trakkr_webhooks.message import Endpoint, MessageError, build
from flask_trakkr_webhooks.providers.samples import sample_payload
from receiver_kit import verify_signature as kit_verify_signature

PAYLOAD = sample_payload("visibility_changed", test=False)


URL = "https://hooks.example/trakkr"


def product_page_verify_signature(payload: bytes, signature: str, secret: str) -> bool:
    """The product page's snippet, unchanged."""
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


def _build(**endpoint):
    return build(Endpoint(url=URL, **endpoint), PAYLOAD, delivery_id="dlv_0123", timestamp=1736933400)


def test_every_delivery_carries_the_contract_headers():
    msg = _build()
    assert msg.url == URL
    assert msg.headers["Content-Type"] == "application/json"
    assert msg.headers["User-Agent"] == f"flask-trakkr-webhooks/{__version__}"
    assert msg.headers["X-Trakkr-Event"] == "visibility_changed"
    assert msg.headers["X-Trakkr-Delivery"] == "dlv_0123"
    assert "Authorization" not in msg.headers
    assert "X-Trakkr-Signature" not in msg.headers  # no signing secret


@pytest.mark.parametrize(
    "endpoint,name,value",
    [
        (dict(auth_type="bearer", auth_token="tok_123"), "Authorization", "Bearer tok_123"),
        (
            dict(auth_type="basic", auth_username="ann", auth_password="p:ss\u00e9"),
            "Authorization",
            "Basic " + base64.b64encode("ann:p:ss\u00e9".encode()).decode(),
        ),
        (dict(auth_type="api_key", api_key_header="X-Api-Key", api_key_value="k-42"), "X-Api-Key", "k-42"),
    ],
)
def test_auth_header_per_auth_type(endpoint, name, value):
    assert _build(**endpoint).headers[name] == value


@pytest.mark.parametrize(
    "endpoint",
    [
        dict(auth_type="bearer"),
        dict(auth_type="basic", auth_username="ann"),
        dict(auth_type="api_key", api_key_value="v"),
        dict(auth_type="api_key", api_key_header="Bad Header", api_key_value="v"),
        dict(auth_type="api_key", api_key_header="X-Trakkr-Signature", api_key_value="v"),
        dict(auth_type="api_key", api_key_header="X-Key", api_key_value="a\r\nInjected: 1"),
        dict(auth_type="oauth"),
    ],
)
def test_unusable_auth_settings_are_a_message_error(endpoint):
    with pytest.raises(MessageError):
        _build(**endpoint)


def test_custom_headers_cannot_override_reserved_ones():
    msg = _build(
        auth_type="api_key",
        api_key_header="X-Api-Key",
        api_key_value="real",
        signing_secret="whsec_s",
        headers={
            "X-Team": "growth",
            "x-trakkr-signature": "sha256=forged",
            "X-TRAKKR-EVENT": "forged",
            "x-trakkr-delivery": "forged",
            "X-Trakkr-Anything": "forged",
            "content-type": "text/plain",
            "User-Agent": "forged",
            "authorization": "Bearer forged",
            "x-api-key": "forged",
            "Host": "evil.example",
            "Bad Name": "x",
            "X-Newline\n": "x",
            "X-Split": "a\r\nInjected: 1",
        },
    )
    lowered = {k.lower(): v for k, v in msg.headers.items()}
    assert lowered["x-team"] == "growth"
    assert lowered["x-trakkr-event"] == "visibility_changed"
    assert lowered["x-trakkr-delivery"] == "dlv_0123"
    assert lowered["x-trakkr-signature"] == signing.sign(msg.body, "whsec_s")
    assert lowered["content-type"] == "application/json"
    assert lowered["user-agent"].startswith("flask-trakkr-webhooks/")
    assert lowered["x-api-key"] == "real"
    for gone in ("authorization", "host", "x-trakkr-anything", "bad name", "x-split", "x-newline\n"):
        assert gone not in lowered
    assert len(msg.headers) == len(lowered)  # no name twice in different cases


def test_signature_is_what_the_product_page_snippet_expects():
    msg = _build(signing_secret="whsec_test_secret")
    signature = msg.headers["X-Trakkr-Signature"]
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert product_page_verify_signature(msg.body, signature, "whsec_test_secret")
    assert kit_verify_signature(msg.body, signature, "whsec_test_secret")
    assert not product_page_verify_signature(msg.body + b" ", signature, "whsec_test_secret")
    assert not product_page_verify_signature(msg.body, signature, "other_secret")


def test_rotation_keeps_the_product_page_signature_on_the_current_secret():
    msg = _build(signing_secret="new", previous_signing_secret="old")
    assert product_page_verify_signature(msg.body, msg.headers["X-Trakkr-Signature"], "new")


def test_generic_body_is_the_payload_as_utf8_json():
    payload = json.loads(json.dumps(PAYLOAD))
    payload["brand"]["name"] = "Caf\u00e9 \u2603"
    msg = build(Endpoint(url=URL), payload, delivery_id="dlv_1", timestamp=0)
    assert json.loads(msg.body.decode("utf-8")) == payload
    assert "Caf\u00e9 \u2603".encode("utf-8") in msg.body  # not \u-escaped


@pytest.mark.parametrize("provider", ["slack", "discord", "teams_webhook", "zapier", "make"])
def test_provider_bodies_come_from_the_formatter(provider):
    msg = build(Endpoint(url=URL, provider=provider), PAYLOAD, delivery_id="dlv_1", timestamp=0)
    assert json.loads(msg.body) == json.loads(json.dumps(providers.format_body(provider, PAYLOAD)))


def test_a_template_replaces_the_provider_format():
    template = {"text": "{{brand.name}}: {{summary}}", "score": "{{event.data.current_score}}"}
    msg = build(Endpoint(url=URL, provider="slack", template=template), PAYLOAD, delivery_id="dlv_1", timestamp=0)
    assert json.loads(msg.body) == {"text": f"Acme: {PAYLOAD['summary']}", "score": 57.5}


def test_build_is_pure_and_deterministic():
    endpoint = dict(auth_type="bearer", auth_token="t", signing_secret="s", headers={"X-A": "1"})
    first, second = _build(**endpoint), _build(**endpoint)
    assert first == second
    assert PAYLOAD == sample_payload("visibility_changed", test=False)  # the payload was not changed


def test_a_failing_host_formatter_is_a_message_error_naming_it():
    def broken(payload):
        return payload["no_such_key"]

    providers.register("broken", broken)
    try:
        with pytest.raises(MessageError, match="'broken' formatter failed: KeyError"):
            _build(provider="broken")
    finally:
        providers.unregister("broken")


def test_a_host_event_types_chat_wording_reaches_the_chat_formatters() -> None:
    from flask_trakkr_webhooks.events import EventTypes, sample_payload

    types = EventTypes.builtin()
    spec = types.register(
        "deal.won", "A deal was won", title="Deal won by {brand}", emoji="\U0001f389", sample_data={"amount": 42}
    )
    payload = sample_payload("deal.won", spec=spec)
    for provider, find in (
        ("slack", lambda body: body["blocks"][0]["text"]["text"]),
        ("discord", lambda body: body["embeds"][0]["title"]),
    ):
        endpoint = Endpoint(url="https://example.com/hook", provider=provider)
        worded = json.loads(build(endpoint, payload, delivery_id="dlv_1", timestamp=1, event_type=spec).body)
        plain = json.loads(build(endpoint, payload, delivery_id="dlv_1", timestamp=1).body)
        assert "Deal won by Acme" in find(worded), provider
        assert "Deal won by Acme" not in find(plain), provider  # without the row: the generic wording
