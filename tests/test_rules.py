"""The pure rules (``flask_trakkr_webhooks/rules.py``) on inputs found while hardening the API,
each once answered wrongly.

Python's ``re`` ``$`` also matches before a final newline, so ``pattern.match(value)``
accepted ``"<uuid>\\n"`` as a brand id (stored with the newline on SQLite, a 500 on
PostgreSQL, whose column is 36 characters), ``"X-Team\\n"`` as a header name and a webhook id
with a trailing newline. The checks now use ``fullmatch``.
"""

from __future__ import annotations

import pytest

BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


BASE = {"url": "https://receiver.example.com/hooks", "events": ["visibility_changed"], "brand_id": BRAND}


def only_field(response, field: str) -> list[str]:
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert list(error["fields"]) == [field]
    return error["fields"][field]


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\x00"])
def test_a_brand_id_with_a_trailing_character_is_400(client, suffix):
    assert only_field(client.post("/webhooks", json={**BASE, "brand_id": BRAND + suffix}), "brand_id") == [
        "must be a UUID such as 3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
    ]
    assert only_field(client.get("/webhooks", query_string={"brand_id": BRAND + suffix}), "brand_id") == [
        "must be a UUID"
    ]
    assert client.get("/webhooks").get_json()["data"] == []


def test_a_header_name_with_a_trailing_newline_is_400(client):
    messages = only_field(client.post("/webhooks", json={**BASE, "headers": {"X-Team\n": "a"}}), "headers.X-Team\n")
    assert messages == ["header name 'X-Team\\n' is not a valid header name (RFC 7230 token characters only)"]
    messages = only_field(
        client.post(
            "/webhooks", json={**BASE, "auth_type": "api_key", "api_key_header": "X-Key\n", "api_key_value": "v"}
        ),
        "api_key_header",
    )
    assert messages == ["api_key_header 'X-Key\\n' is not a valid header name (RFC 7230 token characters only)"]


def test_a_webhook_id_with_a_trailing_newline_is_404_without_a_query(client):
    created = client.post("/webhooks", json=BASE).get_json()
    response = client.get(f"/webhooks/{created['id']}%0A")
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == f"No such webhook: '{created['id']}\\n'."
