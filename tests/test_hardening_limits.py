"""Limits of the API, each at its boundary, on create and on update, with the exact message.

Which limit is tested where:

=============================  ==========================================  ===============================
limit                          setting                                     test
=============================  ==========================================  ===============================
request body                   ``TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES``       here (every body route), test_api_errors
custom headers: count          ``TRAKKR_WEBHOOKS_MAX_HEADERS``             here
custom headers: bytes          ``TRAKKR_WEBHOOKS_MAX_HEADER_BYTES``        here
template size                  ``TRAKKR_WEBHOOKS_MAX_TEMPLATE_BYTES``      here
events per webhook             ``TRAKKR_WEBHOOKS_MAX_EVENTS_PER_WEBHOOK``  here
event payload at ``emit``      ``TRAKKR_WEBHOOKS_MAX_PAYLOAD_BYTES``       test_outbox
stored response body           ``TRAKKR_WEBHOOKS_RESPONSE_BODY_LIMIT``     test_delivery_engine
page size                      ``TRAKKR_WEBHOOKS_MAX_PAGE_SIZE``           here
=============================  ==========================================  ===============================
"""
from __future__ import annotations

import re
from typing import Any

import pytest

BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
BASE = {"url": "https://receiver.example.com/hooks", "events": ["visibility_changed"], "brand_id": BRAND}


def field_error(response: Any, field: str) -> list[str]:
    """The messages on ``field`` of a 400 that names only that field."""
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == [field]
    return error["fields"][field]


@pytest.fixture
def limited(make_app):
    """A client of an app with small limits, and a webhook to PATCH."""
    app = make_app(
        TRAKKR_WEBHOOKS_MAX_HEADERS=2, TRAKKR_WEBHOOKS_MAX_HEADER_BYTES=10, TRAKKR_WEBHOOKS_MAX_TEMPLATE_BYTES=30,
        TRAKKR_WEBHOOKS_MAX_EVENTS_PER_WEBHOOK=2, TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES=2048, TRAKKR_WEBHOOKS_MAX_PAGE_SIZE=3,
    )
    client = app.test_client()
    webhook = client.post("/webhooks", json=BASE)
    assert webhook.status_code == 201
    return app, client, webhook.get_json()["id"]


def send(client: Any, method: str, webhook_id: str, fields: dict) -> Any:
    """POST a new webhook with ``fields``, or PATCH ``webhook_id`` with them."""
    if method == "post":
        return client.post("/webhooks", json={**BASE, **fields})
    return client.patch(f"/webhooks/{webhook_id}", json=fields)


METHODS = pytest.mark.parametrize("method", ["post", "patch"])


@METHODS
def test_header_count_cap(limited, method):
    _, client, webhook_id = limited
    assert field_error(send(client, method, webhook_id, {"headers": {"X-A": "1", "X-B": "2", "X-C": "3"}}),
                       "headers") == ["must have at most 2 headers"]
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
        "must be at most 30 bytes as JSON (this one is 31)"]
    assert field_error(send(client, method, webhook_id, {"template": {"text": "é" * 10}}), "template") == [
        "must be at most 30 bytes as JSON (this one is 31)"]
    response = send(client, method, webhook_id, {"template": {"text": "x" * 19}})
    assert response.status_code in (200, 201) and response.get_json()["template"] == {"text": "x" * 19}


@METHODS
def test_events_per_webhook_cap(limited, method):
    _, client, webhook_id = limited
    three = ["visibility_changed", "report_completed", "citation_lost"]
    assert field_error(send(client, method, webhook_id, {"events": three}), "events") == ["must list at most 2 event types"]
    assert send(client, method, webhook_id, {"events": three[:2]}).status_code in (200, 201)


def test_a_refused_patch_leaves_the_webhook_as_it_was(limited):
    _, client, webhook_id = limited
    before = client.get(f"/webhooks/{webhook_id}").get_json()
    field_error(client.patch(f"/webhooks/{webhook_id}", json={"headers": {f"X-{i}": "v" for i in range(3)}}), "headers")
    assert client.get(f"/webhooks/{webhook_id}").get_json() == before


def test_page_size_cap(limited):
    _, client, webhook_id = limited
    for path in ("/webhooks", f"/webhooks/{webhook_id}/deliveries"):
        assert field_error(client.get(f"{path}?limit=4"), "limit") == ["must be an integer from 1 to 3"]
        assert client.get(f"{path}?limit=3").status_code == 200


def _body_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every API route that takes a body, with placeholder ids."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("trakkr_webhooks."):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: {"webhook_id": "wh_x", "delivery_id": "dlv_x"}.get(m[1], "x"),
                      rule.rule)
        routes += [(method, path) for method in sorted(rule.methods & {"POST", "PATCH", "PUT"})]
    return routes


def test_every_body_route_refuses_an_oversized_body_with_413_before_anything_else(limited):
    app, client, _ = limited
    routes = _body_routes(app)
    assert len(routes) >= 4  # create, update, test, redeliver at least
    big = '{"description": "%s"}' % ("x" * 2100)
    for method, path in routes:
        response = client.open(path, method=method, data=big, content_type="application/json")
        assert response.status_code == 413, (method, path)
        assert response.get_json() == {"error": {"type": "request_too_large",
                                                 "message": "Request body is larger than the limit of 2048 bytes."}}


def test_every_body_route_refuses_a_non_json_body_with_415(limited):
    app, client, _ = limited
    for method, path in _body_routes(app):
        response = client.open(path, method=method, data="url=x", content_type="application/x-www-form-urlencoded")
        assert response.status_code == 415, (method, path)
        error = response.get_json()["error"]
        assert error["type"] == "unsupported_media_type"
        assert error["fields"] == {"Content-Type": ["expected application/json, got application/x-www-form-urlencoded"]}
