"""Validation of the webhook resource (``flask_trakkr_webhooks/schemas.py``), through the API:
each bad input is a 400 naming the exact field.

``CASES`` are sent as a create body (laid over a valid one) and, unless marked
``create_only``, as a PATCH of an existing webhook without credentials.

The limits of the API, each at its boundary, on create and on update, with the exact message.
Which limit is tested where:

=============================  ==========================================  ===============================
limit                          setting                                     test
=============================  ==========================================  ===============================
request body                   ``TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES``       test_api (every body route)
custom headers: count          ``TRAKKR_WEBHOOKS_MAX_HEADERS``             here
custom headers: bytes          ``TRAKKR_WEBHOOKS_MAX_HEADER_BYTES``        here
template size                  ``TRAKKR_WEBHOOKS_MAX_TEMPLATE_BYTES``      here
events per webhook             ``TRAKKR_WEBHOOKS_MAX_EVENTS_PER_WEBHOOK``  here
event payload at ``emit``      ``TRAKKR_WEBHOOKS_MAX_PAYLOAD_BYTES``       test_outbox
stored response body           ``TRAKKR_WEBHOOKS_RESPONSE_BODY_LIMIT``     test_record
page size                      ``TRAKKR_WEBHOOKS_MAX_PAGE_SIZE``           test_api_webhooks
=============================  ==========================================  ===============================
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flask_trakkr_webhooks import schemas

BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


BASE = {"url": "https://receiver.example.com/hooks", "events": ["visibility_changed"], "brand_id": BRAND}


API_KEY = {"auth_type": "api_key", "api_key_header": "X-Key", "api_key_value": "v"}


RESERVED = [
    "Content-Type",
    "content-length",
    "HOST",
    "User-Agent",
    "Authorization",
    "X-Trakkr-Event",
    "X-Trakkr-Delivery",
    "X-Trakkr-Signature",
    "x-trakkr-timestamp",
    "webhook-id",
    "Webhook-Timestamp",
    "webhook-signature",
    "Transfer-Encoding",
    "Connection",
    "Proxy-Authorization",
    "Expect",
    "Upgrade",
]


def case(id_, body, field, create_only=False):
    return pytest.param(body, field, create_only, id=id_)


CASES = [
    # url
    case("url-missing", {"url": ...}, "url", create_only=True),
    case("url-null", {"url": None}, "url"),
    case("url-number", {"url": 42}, "url"),
    case("url-list", {"url": ["https://a.example"]}, "url"),
    case("url-empty", {"url": ""}, "url"),
    case("url-not-a-url", {"url": "not a url"}, "url"),
    case("url-relative", {"url": "/hooks"}, "url"),
    case("url-scheme-relative", {"url": "//receiver.example.com/hooks"}, "url"),
    case("url-ftp", {"url": "ftp://receiver.example.com/hooks"}, "url"),
    case("url-javascript", {"url": "javascript:alert(1)"}, "url"),
    case("url-http-when-https-required", {"url": "http://receiver.example.com/hooks"}, "url"),
    case("url-userinfo", {"url": "https://user:pw@receiver.example.com/hooks"}, "url"),
    case("url-user-only", {"url": "https://user@receiver.example.com/hooks"}, "url"),
    case("url-fragment", {"url": "https://receiver.example.com/hooks#x"}, "url"),
    case("url-no-host", {"url": "https:///hooks"}, "url"),
    case("url-only-scheme", {"url": "https://"}, "url"),
    case("url-space", {"url": "https://receiver.example.com/a b"}, "url"),
    case("url-newline", {"url": "https://receiver.example.com/\r\nX: y"}, "url"),
    case("url-non-ascii", {"url": "https://exämple.com/hooks"}, "url"),
    case("url-backslash", {"url": "https://evil.example\\@receiver.example.com/"}, "url"),
    case("url-too-long", {"url": "https://receiver.example.com/" + "a" * 2100}, "url"),
    case("url-bad-port", {"url": "https://receiver.example.com:99999/"}, "url"),
    case("url-port-zero", {"url": "https://receiver.example.com:0/"}, "url"),
    case("url-port-text", {"url": "https://receiver.example.com:http/"}, "url"),
    case("url-bad-ipv6", {"url": "https://[zz::1]/"}, "url"),
    case("url-unclosed-ipv6", {"url": "https://[::1/"}, "url"),
    case("url-ipv6-zone", {"url": "https://[fe80::1%25eth0]/"}, "url"),
    case("url-short-ipv4", {"url": "https://127.1/"}, "url"),
    case("url-integer-ipv4", {"url": "https://2130706433/"}, "url"),
    case("url-hex-ipv4", {"url": "https://0x7f000001/"}, "url"),
    case("url-bad-label", {"url": "https://-bad-.example.com/"}, "url"),
    case("url-numeric-tld", {"url": "https://receiver.example.123/"}, "url"),
    case("url-bad-percent", {"url": "https://receiver.example.com/%zz"}, "url"),
    # events
    case("events-missing", {"events": ...}, "events", create_only=True),
    case("events-null", {"events": None}, "events"),
    case("events-string", {"events": "visibility_changed"}, "events"),
    case("events-object", {"events": {"visibility_changed": True}}, "events"),
    case("events-empty", {"events": []}, "events"),
    case("events-unknown", {"events": ["visibility_changed", "nope"]}, "events.1"),
    case("events-wrong-case", {"events": ["Visibility_Changed"]}, "events.0"),
    case("events-duplicate", {"events": ["report_completed", "report_completed"]}, "events.1"),
    case("events-number", {"events": [1]}, "events.0"),
    case("events-null-item", {"events": [None]}, "events.0"),
    # brand_id
    case("brand-missing", {"brand_id": ...}, "brand_id", create_only=True),
    case("brand-null", {"brand_id": None}, "brand_id"),
    case("brand-number", {"brand_id": 12}, "brand_id"),
    case("brand-not-uuid", {"brand_id": "acme"}, "brand_id"),
    case("brand-short", {"brand_id": BRAND[:-1]}, "brand_id"),
    case("brand-braces", {"brand_id": "{" + BRAND + "}"}, "brand_id"),
    case("brand-urn", {"brand_id": "urn:uuid:" + BRAND}, "brand_id"),
    case("brand-non-hex", {"brand_id": "zf2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"}, "brand_id"),
    # active
    case("active-string", {"active": "true"}, "active"),
    case("active-number", {"active": 1}, "active"),
    case("active-null", {"active": None}, "active"),
    # description
    case("description-number", {"description": 5}, "description"),
    case("description-too-long", {"description": "x" * 1001}, "description"),
    case("description-control", {"description": "bell\x07"}, "description"),
    case("description-nul", {"description": "a\x00b"}, "description"),
    # auth_type and credentials
    case("auth-type-unknown", {"auth_type": "oauth2"}, "auth_type"),
    case("auth-type-number", {"auth_type": 1}, "auth_type"),
    case("auth-type-null", {"auth_type": None}, "auth_type"),
    case("auth-type-case", {"auth_type": "Bearer", "auth_token": "t"}, "auth_type"),
    case("bearer-without-token", {"auth_type": "bearer"}, "auth_token"),
    case("bearer-null-token", {"auth_type": "bearer", "auth_token": None}, "auth_token"),
    case("bearer-empty-token", {"auth_type": "bearer", "auth_token": ""}, "auth_token"),
    case("bearer-token-space", {"auth_type": "bearer", "auth_token": "a b"}, "auth_token"),
    case("bearer-token-newline", {"auth_type": "bearer", "auth_token": "a\r\nX-Evil: 1"}, "auth_token"),
    case("bearer-token-too-long", {"auth_type": "bearer", "auth_token": "t" * 5000}, "auth_token"),
    case("bearer-token-number", {"auth_type": "bearer", "auth_token": 123}, "auth_token"),
    case("bearer-with-username", {"auth_type": "bearer", "auth_token": "t", "auth_username": "u"}, "auth_username"),
    case("bearer-with-api-key", {"auth_type": "bearer", "auth_token": "t", "api_key_value": "v"}, "api_key_value"),
    case("basic-without-password", {"auth_type": "basic", "auth_username": "u"}, "auth_password"),
    case("basic-without-username", {"auth_type": "basic", "auth_password": "p"}, "auth_username"),
    case("basic-empty-username", {"auth_type": "basic", "auth_username": "", "auth_password": "p"}, "auth_username"),
    case("basic-colon-username", {"auth_type": "basic", "auth_username": "a:b", "auth_password": "p"}, "auth_username"),
    case(
        "basic-control-password", {"auth_type": "basic", "auth_username": "u", "auth_password": "p\n"}, "auth_password"
    ),
    case(
        "basic-with-token",
        {"auth_type": "basic", "auth_username": "u", "auth_password": "p", "auth_token": "t"},
        "auth_token",
    ),
    case("api-key-without-header", {"auth_type": "api_key", "api_key_value": "v"}, "api_key_header"),
    case("api-key-without-value", {"auth_type": "api_key", "api_key_header": "X-Key"}, "api_key_value"),
    case("api-key-bad-header", {**API_KEY, "api_key_header": "X Key"}, "api_key_header"),
    case("api-key-header-colon", {**API_KEY, "api_key_header": "X-Key:"}, "api_key_header"),
    case("api-key-header-empty", {**API_KEY, "api_key_header": ""}, "api_key_header"),
    case("api-key-header-authorization", {**API_KEY, "api_key_header": "authorization"}, "api_key_header"),
    case("api-key-header-trakkr", {**API_KEY, "api_key_header": "X-Trakkr-Signature"}, "api_key_header"),
    case("api-key-header-too-long", {**API_KEY, "api_key_header": "X" * 300}, "api_key_header"),
    case("api-key-value-crlf", {**API_KEY, "api_key_value": "v\r\nX-Evil: 1"}, "api_key_value"),
    case("api-key-value-unicode", {**API_KEY, "api_key_value": "v€"}, "api_key_value"),
    case("api-key-value-empty", {**API_KEY, "api_key_value": ""}, "api_key_value"),
    case("api-key-header-is-custom-header", {**API_KEY, "headers": {"x-key": "1"}}, "headers.x-key"),
    case("none-with-token", {"auth_token": "t"}, "auth_token"),
    case("none-with-password", {"auth_type": "none", "auth_password": "p"}, "auth_password"),
    case("none-with-api-key-header", {"auth_type": "none", "api_key_header": "X-Key"}, "api_key_header"),
    # headers
    case("headers-list", {"headers": [["X-A", "1"]]}, "headers"),
    case("headers-string", {"headers": "X-A: 1"}, "headers"),
    case("headers-number-value", {"headers": {"X-A": 1}}, "headers.X-A"),
    case("headers-null-value", {"headers": {"X-A": None}}, "headers.X-A"),
    case("headers-object-value", {"headers": {"X-A": {"b": "c"}}}, "headers.X-A"),
    case("headers-space-in-name", {"headers": {"X A": "1"}}, "headers.X A"),
    case("headers-colon-in-name", {"headers": {"X-A:": "1"}}, "headers.X-A:"),
    case("headers-non-ascii-name", {"headers": {"X-Ä": "1"}}, "headers.X-Ä"),
    case("headers-empty-name", {"headers": {"": "1"}}, "headers."),
    case("headers-long-name", {"headers": {"X" * 300: "1"}}, "headers." + "X" * 300),
    case("headers-cr", {"headers": {"X-A": "a\rb"}}, "headers.X-A"),
    case("headers-lf", {"headers": {"X-A": "a\nSet-Cookie: x"}}, "headers.X-A"),
    case("headers-nul", {"headers": {"X-A": "a\x00b"}}, "headers.X-A"),
    case("headers-del", {"headers": {"X-A": "a\x7fb"}}, "headers.X-A"),
    case("headers-c1-control", {"headers": {"X-A": "a\x85b"}}, "headers.X-A"),
    case("headers-not-latin1", {"headers": {"X-A": "€"}}, "headers.X-A"),
    case("headers-padded", {"headers": {"X-A": " a"}}, "headers.X-A"),
    case("headers-duplicate", {"headers": {"X-A": "1", "x-a": "2"}}, "headers.x-a"),
    case("headers-too-many", {"headers": {f"X-H{i}": "v" for i in range(21)}}, "headers"),
    case("headers-too-big", {"headers": {"X-A": "v" * 2100, "X-B": "v" * 2100}}, "headers"),
    *[case(f"headers-reserved-{name}", {"headers": {name: "x"}}, f"headers.{name}") for name in RESERVED],
    # template
    case("template-string", {"template": "{{summary}}"}, "template"),
    case("template-number", {"template": 5}, "template"),
    case("template-bool", {"template": True}, "template"),
    case("template-too-deep", {"template": json.loads("[" * 40 + "]" * 40)}, "template"),
    case("template-too-big", {"template": {"text": "x" * 17000}}, "template"),
    case("template-unknown-variable", {"template": {"text": "{{brand.secret}}"}}, "template"),
    # signing_secret
    case("secret-short", {"signing_secret": "short"}, "signing_secret"),
    case("secret-15", {"signing_secret": "s" * 15}, "signing_secret"),
    case("secret-long", {"signing_secret": "s" * 257}, "signing_secret"),
    case("secret-number", {"signing_secret": 1234567890123456789}, "signing_secret"),
    case("secret-control", {"signing_secret": "abcdefghijklmnop\x00"}, "signing_secret"),
    case("secret-newline", {"signing_secret": "abcdefghijklmnop\n"}, "signing_secret"),
    case("secret-padded", {"signing_secret": " abcdefghijklmnopq"}, "signing_secret"),
    # unknown and read-only fields
    case("unknown-field", {"callback": "https://x.example"}, "callback"),
    case("unknown-field-case", {"URL": "https://x.example"}, "URL"),
    case("read-only-id", {"id": "wh_123"}, "id"),
    case("read-only-object", {"object": "webhook"}, "object"),
    case("unknown-provider", {"provider": "carrier-pigeon"}, "provider"),
    case("provider-not-a-string", {"provider": 5}, "provider"),
    case("read-only-created-at", {"created_at": "2024-01-01T00:00:00Z"}, "created_at"),
    case("read-only-disabled-reason", {"disabled_reason": None}, "disabled_reason"),
    # invalid Unicode anywhere
    case("lone-surrogate-description", {"description": "\ud800"}, "description"),
    case("lone-surrogate-template", {"template": {"a": ["ok", "\udfff"]}}, "template.a.1"),
    case("lone-surrogate-header-name", {"headers": {"X-\ud800": "1"}}, "headers.X-\ud800"),
]


def _without(body: dict) -> dict:
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture
def webhook_id(client) -> str:
    response = client.post("/webhooks", json=BASE)
    assert response.status_code == 201
    return response.get_json()["id"]


def _send(client, method: str, path: str, payload: dict):
    # json.dumps keeps lone surrogates as \\u escapes, as a client could send them.
    return getattr(client, method)(path, data=json.dumps(payload), content_type="application/json")


def _assert_400(response, field: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request"
    assert field in error["fields"], error
    assert all(isinstance(m, str) and m for msgs in error["fields"].values() for m in msgs)
    assert error["message"].startswith("Invalid request: ")


@pytest.mark.parametrize("override,field,create_only", CASES)
def test_create_refuses(client, override, field, create_only) -> None:
    _assert_400(_send(client, "post", "/webhooks", _without({**BASE, **override})), field)
    assert client.get("/webhooks").get_json()["data"] == []


#: PATCH fields are all optional, so "missing" cases apply to create only.
PATCH_CASES = [c for c in CASES if not c.values[2]]


@pytest.mark.parametrize("override,field,create_only", PATCH_CASES)
def test_patch_refuses(client, webhook_id, override, field, create_only) -> None:
    before = client.get(f"/webhooks/{webhook_id}").get_json()
    _assert_400(_send(client, "patch", f"/webhooks/{webhook_id}", _without(override)), field)
    assert client.get(f"/webhooks/{webhook_id}").get_json() == before


@pytest.mark.parametrize(
    "override",
    [
        {"url": "https://receiver.example.com/" + "a" * 2000},
        {"signing_secret": "s" * 16},
        {"signing_secret": "s" * 256},
        {"description": "x" * 1000},
        {"headers": {f"X-H{i}": "v" for i in range(20)}},
        {"template": json.loads("[" * 32 + "]" * 32)},
        {"url": "https://[2606:4700::1111]:8443/h?x=%20"},
        {"url": "https://xn--exmple-cua.example/hooks"},
        {"url": "https://receiver.example.com./hooks"},
        {"signing_secret": "ünïcødé-secret-with spaces"},
    ],
)
def test_limits_themselves_are_accepted(client, override) -> None:
    response = client.post("/webhooks", json={**BASE, **override})
    assert response.status_code == 201, response.get_json()


def test_event_cap_comes_from_settings(make_app) -> None:
    client = make_app(TRAKKR_WEBHOOKS_MAX_EVENTS_PER_WEBHOOK=2).test_client()
    response = client.post(
        "/webhooks", json={**BASE, "events": ["report_completed", "citation_gained", "citation_lost"]}
    )
    _assert_400(response, "events")
    assert client.post("/webhooks", json={**BASE, "events": ["report_completed", "citation_lost"]}).status_code == 201


def test_header_caps_come_from_settings(make_app) -> None:
    client = make_app(TRAKKR_WEBHOOKS_MAX_HEADERS=1, TRAKKR_WEBHOOKS_MAX_HEADER_BYTES=10).test_client()
    _assert_400(client.post("/webhooks", json={**BASE, "headers": {"X-A": "1", "X-B": "2"}}), "headers")
    _assert_400(client.post("/webhooks", json={**BASE, "headers": {"X-A": "12345678"}}), "headers")
    assert client.post("/webhooks", json={**BASE, "headers": {"X-A": "1234567"}}).status_code == 201


def test_template_cap_comes_from_settings(make_app) -> None:
    client = make_app(TRAKKR_WEBHOOKS_MAX_TEMPLATE_BYTES=20).test_client()
    _assert_400(client.post("/webhooks", json={**BASE, "template": {"text": "x" * 20}}), "template")
    assert client.post("/webhooks", json={**BASE, "template": {"t": "x"}}).status_code == 201


def test_every_bad_field_is_named_at_once(client) -> None:
    response = client.post(
        "/webhooks", json={"url": "ftp://x", "events": [], "brand_id": "b", "active": "yes", "extra": 1}
    )
    assert response.status_code == 400
    assert set(response.get_json()["error"]["fields"]) == {"url", "events", "brand_id", "active", "extra"}
    assert "(and 4 more fields" in response.get_json()["error"]["message"]


def test_template_error_from_the_templating_module_names_the_variable(client) -> None:
    response = client.post("/webhooks", json={**BASE, "template": {"t": "{{brand.secret}}"}})
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["template"]
    (message,) = response.get_json()["error"]["fields"]["template"]
    assert message.startswith("unknown template variable 'brand.secret' at $.t; known variables: brand.id")


def test_known_template_variables_are_accepted(client) -> None:
    template = {
        "text": "{{brand.name}} {{event.type}} {{summary}} {{event.data.current_score}}",
        "w": "{{workflow.name}}",
        "t": "{{timestamp}}",
        "id": "{{brand.id}}",
        "site": "{{brand.website}}",
    }
    response = client.post("/webhooks", json={**BASE, "template": template})
    assert response.status_code == 201
    assert response.get_json()["template"] == template


def field_error(response: Any, field: str) -> list[str]:
    """The messages on ``field`` of a 400 that names only that field."""
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == [field]
    return error["fields"][field]


def send(client: Any, method: str, webhook_id: str, fields: dict) -> Any:
    """POST a new webhook with ``fields``, or PATCH ``webhook_id`` with them."""
    if method == "post":
        return client.post("/webhooks", json={**BASE, **fields})
    return client.patch(f"/webhooks/{webhook_id}", json=fields)


METHODS = pytest.mark.parametrize("method", ["post", "patch"])


@METHODS
def test_header_count_cap(limited, method):
    _, client, webhook_id = limited
    assert field_error(
        send(client, method, webhook_id, {"headers": {"X-A": "1", "X-B": "2", "X-C": "3"}}), "headers"
    ) == ["must have at most 2 headers"]
    assert send(client, method, webhook_id, {"headers": {"X-A": "1", "X-B": "2"}}).status_code in (200, 201)


@METHODS
def test_header_bytes_cap_counts_names_and_utf8_values(limited, method):
    _, client, webhook_id = limited
    message = ["must total at most 10 bytes of names and values"]
    assert field_error(send(client, method, webhook_id, {"headers": {"X-A": "12345678"}}), "headers") == message
    assert field_error(send(client, method, webhook_id, {"headers": {"X-A": "é" * 4}}), "headers") == message  # 3+8
    assert send(client, method, webhook_id, {"headers": {"X-A": "1234567"}}).status_code in (200, 201)  # 3+7
    assert send(client, method, webhook_id, {"headers": {"X-A": "é" * 3 + "x"}}).status_code in (200, 201)  # 3+7


@METHODS
def test_template_size_cap_in_utf8_bytes_of_compact_json(limited, method):
    _, client, webhook_id = limited
    # {"text":"..."} is 11 bytes around the value.
    assert field_error(send(client, method, webhook_id, {"template": {"text": "x" * 20}}), "template") == [
        "must be at most 30 bytes as JSON (this one is 31)"
    ]
    assert field_error(send(client, method, webhook_id, {"template": {"text": "é" * 10}}), "template") == [
        "must be at most 30 bytes as JSON (this one is 31)"
    ]
    response = send(client, method, webhook_id, {"template": {"text": "x" * 19}})
    assert response.status_code in (200, 201) and response.get_json()["template"] == {"text": "x" * 19}


@METHODS
def test_events_per_webhook_cap(limited, method):
    _, client, webhook_id = limited
    three = ["visibility_changed", "report_completed", "citation_lost"]
    assert field_error(send(client, method, webhook_id, {"events": three}), "events") == [
        "must list at most 2 event types"
    ]
    assert send(client, method, webhook_id, {"events": three[:2]}).status_code in (200, 201)


def test_a_refused_patch_leaves_the_webhook_as_it_was(limited):
    _, client, webhook_id = limited
    before = client.get(f"/webhooks/{webhook_id}").get_json()
    field_error(client.patch(f"/webhooks/{webhook_id}", json={"headers": {f"X-{i}": "v" for i in range(3)}}), "headers")
    assert client.get(f"/webhooks/{webhook_id}").get_json() == before


# -- issue 19 item 4: merge() keeps credentials only within the URL's origin (pure) ------------------

_BEARER = {
    **schemas.CREATE_DEFAULTS,
    "url": "https://receiver.example.com/hooks",
    "events": ["visibility_changed"],
    "brand_id": BRAND,
    "provider": "webhook",
    "auth_type": "bearer",
    "auth_token": "tok_PARTNER",
    "headers": {"X-Key": "k"},
}


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example/hooks",  # host
        "http://receiver.example.com/hooks",  # scheme
        "https://receiver.example.com:8443/hooks",  # port
    ],
)
def test_merge_refuses_a_new_origin_keeping_credentials_and_headers(url) -> None:
    with pytest.raises(schemas.ValidationError) as info:
        schemas.merge(_BEARER, {"url": url})
    assert info.value.messages == {
        "auth_token": [schemas.RESEND_ON_NEW_ORIGIN],
        "headers": [schemas.RESEND_ON_NEW_ORIGIN + " (or send {} or null for none)"],
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example.com/elsewhere",
        "https://Receiver.Example.com:443/hooks",
        "https://receiver.example.com./x",
    ],
)
def test_merge_keeps_credentials_within_the_origin(url) -> None:
    merged = schemas.merge(_BEARER, {"url": url})
    assert merged["auth_token"] == "tok_PARTNER" and merged["headers"] == {"X-Key": "k"}


def test_merge_accepts_a_new_origin_with_credentials_sent_again_or_dropped() -> None:
    sent = schemas.merge(_BEARER, {"url": "https://new.example/", "auth_token": "tok_new", "headers": {"X-Key": "k"}})
    assert sent["auth_token"] == "tok_new"
    dropped = schemas.merge(_BEARER, {"url": "https://new.example/", "auth_type": "none", "headers": None})
    assert dropped["auth_token"] is None and dropped["headers"] == {}


def test_merge_names_only_the_secret_fields_of_the_auth_method() -> None:
    basic = {
        **_BEARER,
        "auth_type": "basic",
        "auth_token": None,
        "auth_username": "u",
        "auth_password": "p",
        "headers": {},
    }
    with pytest.raises(schemas.ValidationError) as info:
        schemas.merge(basic, {"url": "https://new.example/"})
    assert info.value.messages == {"auth_password": [schemas.RESEND_ON_NEW_ORIGIN]}
