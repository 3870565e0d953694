"""The webhooks resource routes (``flask_trakkr_webhooks/api/webhooks.py``): create, list (cursor
pagination, the page size cap), retrieve, update, delete; generated secrets,
``POST /webhooks/<id>/rotate-secret`` and the validation of ``POST /webhooks/<id>/replay``.

* The SSRF guard at save time: POST and PATCH resolve the URL's host and refuse private
  destinations. Every refusal is a 400 whose ``error.fields.url`` holds the guard's message, which
  names the refused address class and the setting that would allow it. The guard itself is
  tested address form by address form in ``test_ssrf.py``; here the API wiring is.
* Rotation windows are checked with receiver_kit on real deliveries (real database, real Redis, a
  real HTTP receiver on 127.0.0.1; deliveries are processed in-process). What replay chooses is
  in ``test_replay.py``.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from e2e.helpers import BRAND as E2E_BRAND
from e2e.helpers import BRAND_ID, VISIBILITY, emit
from e2e.helpers import api_create as _create
from e2e.helpers import api_error as _error
from e2e.helpers import process_open as _process
from e2e.helpers import webhook_row as _row
from flask_trakkr_webhooks import crypto, get_state, ids, schemas, ssrf
from flask_trakkr_webhooks.errors import ERROR_TYPES
from flask_trakkr_webhooks.models import (
    CANCELLED,
    FAILED,
    PENDING,
    QUEUED,
    RETRYING,
    SENDING,
    SUCCEEDED,
)
from receiver_kit import SCHEME_STANDARD, WebhookVerificationError, WebhookVerifier, verify_signature

BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


OTHER_BRAND = "9d0c7b6a-1e2f-4a3b-8c4d-5e6f7a8b9c0d"


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


OBJECT_KEYS = {
    "id",
    "object",
    "url",
    "events",
    "brand_id",
    "provider",
    "active",
    "description",
    "signing_secret",
    "auth_type",
    "auth_username",
    "api_key_header",
    "headers",
    "template",
    "created_at",
    "updated_at",
    "disabled_reason",
    "disabled_at",
    "previous_secret_expires_at",
    "consecutive_failures",
    "failing_since",
    "unreadable_credentials",
    "rate_limit",
    "effective_rate_limit",
}


def body(**overrides):
    """A valid create body with ``overrides``."""
    data = {"url": "https://receiver.example.com/hooks", "events": ["visibility_changed"], "brand_id": BRAND}
    data.update(overrides)
    return data


def create(client, **overrides) -> dict:
    response = client.post("/webhooks", json=body(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def stored(app, webhook_id: str):
    """The row as the database has it (a fresh session, so nothing cached)."""
    with app.app_context():
        state = get_state(app)
        state.db.session.expire_all()
        return state.db.session.get(state.models.Webhook, webhook_id)


# -- create -------------------------------------------------------------------------------


def test_create_without_signing_secret_is_signed_and_explicit_null_opts_out(client) -> None:
    generated = client.post("/webhooks", json=body()).get_json()["signing_secret"]
    other = client.post("/webhooks", json=body()).get_json()["signing_secret"]
    assert generated.startswith("whsec_") and other.startswith("whsec_") and generated != other
    unsigned = client.post("/webhooks", json=body(signing_secret=None))
    assert unsigned.status_code == 201
    assert unsigned.get_json()["signing_secret"] is None
    assert client.get(f"/webhooks/{unsigned.get_json()['id']}").get_json()["signing_secret"] is None


def test_create_answers_201_with_the_webhook_object_and_location(client) -> None:
    response = client.post("/webhooks", json=body(description="Team alerts"))
    assert response.status_code == 201
    obj = response.get_json()
    assert set(obj) == OBJECT_KEYS
    assert re.match(r"^wh_[0-9a-f]{24}$", obj["id"])
    assert response.headers["Location"] == f"/webhooks/{obj['id']}"
    assert obj["object"] == "webhook"
    assert obj["url"] == "https://receiver.example.com/hooks"
    assert obj["events"] == ["visibility_changed"]
    assert obj["brand_id"] == BRAND
    assert obj["provider"] == "webhook"
    assert obj["description"] == "Team alerts"
    # Defaults
    assert obj["active"] is True
    assert obj["auth_type"] == "none"
    assert obj["headers"] == {}
    assert obj["template"] is None
    # Signed by default: a generated whsec_ secret (32 random bytes), answered once here.
    assert re.match(r"^whsec_[A-Za-z0-9+/]{43}=$", obj["signing_secret"])
    assert obj["disabled_reason"] is None and obj["disabled_at"] is None
    assert ISO.match(obj["created_at"]) and obj["created_at"] == obj["updated_at"]


def test_create_detects_the_provider(client) -> None:
    assert create(client, url="https://hooks.slack.com/services/T0/B0/X")["provider"] == "slack"
    assert create(client, url="https://discord.com/api/webhooks/1/abc")["provider"] == "discord"
    assert create(client, url="https://hooks.zapier.com/hooks/catch/1/a/")["provider"] == "zapier"


def test_create_stores_the_canonical_brand_id(client) -> None:
    assert create(client, brand_id=BRAND.upper())["brand_id"] == BRAND
    assert create(client, brand_id=BRAND.replace("-", ""))["brand_id"] == BRAND


def test_create_keeps_every_field(app, client) -> None:
    obj = create(
        client,
        events=["report_completed", "citation_lost"],
        active=False,
        signing_secret="s" * 32,
        headers={"X-Team": "growth", "X-Empty": ""},
        template={"text": "{{brand.name}}: {{summary}}", "list": [1, 2.5, None, True]},
    )
    assert obj["events"] == ["report_completed", "citation_lost"]
    assert obj["active"] is False
    assert obj["signing_secret"] == "s" * 32
    assert obj["headers"] == {"X-Team": "growth", "X-Empty": ""}
    assert obj["template"] == {"text": "{{brand.name}}: {{summary}}", "list": [1, 2.5, None, True]}
    row = stored(app, obj["id"])
    assert row.headers == {"X-Team": "growth", "X-Empty": ""}
    assert row.deleted_at is None


@pytest.mark.parametrize(
    "auth,shown,hidden",
    [
        ({"auth_type": "bearer", "auth_token": "tok_123"}, {}, {"auth_token": "tok_123"}),
        (
            {"auth_type": "basic", "auth_username": "alice", "auth_password": "pw"},
            {"auth_username": "alice"},
            {"auth_password": "pw"},
        ),
        (
            {"auth_type": "basic", "auth_username": "sk_live_key", "auth_password": ""},
            {"auth_username": "sk_live_key"},
            {"auth_password": ""},
        ),
        (
            {"auth_type": "api_key", "api_key_header": "X-Api-Key", "api_key_value": "k 1"},
            {"api_key_header": "X-Api-Key"},
            {"api_key_value": "k 1"},
        ),
    ],
)
def test_credentials_are_stored_but_never_answered(app, client, auth, shown, hidden) -> None:
    obj = create(client, **auth)
    assert obj["auth_type"] == auth["auth_type"]
    for name, value in shown.items():
        assert obj[name] == value
    for name in ("auth_token", "auth_password", "api_key_value"):
        assert name not in obj
    fetched = client.get(f"/webhooks/{obj['id']}").get_json()
    listed = client.get("/webhooks").get_json()["data"][0]
    for name in ("auth_token", "auth_password", "api_key_value"):
        assert name not in fetched and name not in listed
    row = stored(app, obj["id"])
    for name, value in hidden.items():
        assert getattr(row, name) == value


def test_http_url_is_accepted_when_https_is_not_required(make_app) -> None:
    client = make_app(TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False).test_client()
    assert create(client, url="http://receiver.example.com:8080/hook")["url"] == "http://receiver.example.com:8080/hook"


def test_a_registered_event_type_is_accepted(app, client) -> None:
    app.webhooks.register_event_type("mention.spiked", "Mentions spiked")
    assert create(client, events=["mention.spiked"])["events"] == ["mention.spiked"]


def test_create_with_an_unknown_query_parameter_is_400(client) -> None:
    response = client.post("/webhooks?dry_run=1", json=body())
    assert response.status_code == 400
    assert "dry_run" in response.get_json()["error"]["fields"]


# -- retrieve -----------------------------------------------------------------------------


def test_get_answers_the_same_object(client) -> None:
    obj = create(client, headers={"X-A": "1"})
    response = client.get(f"/webhooks/{obj['id']}")
    assert response.status_code == 200
    assert response.get_json() == obj


@pytest.mark.parametrize("webhook_id", ["wh_000000000000000000000000", "wh_nope", "evt_123", "x" * 300, "wh_%00"])
def test_get_unknown_or_malformed_id_is_404(client, webhook_id) -> None:
    response = client.get(f"/webhooks/{webhook_id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "not_found"


# -- list ---------------------------------------------------------------------------------


def test_empty_list(client) -> None:
    response = client.get("/webhooks")
    assert response.status_code == 200
    assert response.get_json() == {"object": "list", "data": [], "has_more": False}


def _pages(client, query: str = "", limit: int = 2) -> list[list[str]]:
    pages, after = [], None
    while True:
        url = f"/webhooks?limit={limit}{query}" + (f"&starting_after={after}" if after else "")
        page = client.get(url).get_json()
        pages.append([w["id"] for w in page["data"]])
        if not page["has_more"]:
            return pages
        after = page["data"][-1]["id"]


def test_list_is_newest_first_and_pages_through_everything_once(client) -> None:
    made = [create(client)["id"] for _ in range(5)]
    pages = _pages(client, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == list(reversed(made))


def test_cursor_is_stable_when_timestamps_tie(app, client) -> None:
    made = {create(client)["id"] for _ in range(7)}
    same = ids.utcnow() - timedelta(days=1)
    with app.app_context():
        state = get_state(app)
        state.db.session.execute(state.models.Webhook.__table__.update().values(created_at=same))
        state.db.session.commit()
    pages = _pages(client, limit=3)
    flat = [i for p in pages for i in p]
    assert sorted(flat) == sorted(made) and len(flat) == len(set(flat))
    assert flat == sorted(made, reverse=True)  # ties are ordered by id, newest id first


def test_list_exact_multiple_of_limit_has_no_more(client) -> None:
    for _ in range(4):
        create(client)
    first = client.get("/webhooks?limit=2").get_json()
    assert first["has_more"] is True
    second = client.get(f"/webhooks?limit=2&starting_after={first['data'][-1]['id']}").get_json()
    assert len(second["data"]) == 2 and second["has_more"] is False


def test_list_filters_by_brand(client) -> None:
    mine = create(client)["id"]
    create(client, brand_id=OTHER_BRAND)
    data = client.get(f"/webhooks?brand_id={BRAND.upper()}").get_json()["data"]
    assert [w["id"] for w in data] == [mine]


def test_default_and_maximum_page_size_come_from_settings(make_app) -> None:
    client = make_app(TRAKKR_WEBHOOKS_PAGE_SIZE=2, TRAKKR_WEBHOOKS_MAX_PAGE_SIZE=3).test_client()
    for _ in range(4):
        create(client)
    assert len(client.get("/webhooks").get_json()["data"]) == 2
    assert len(client.get("/webhooks?limit=3").get_json()["data"]) == 3
    response = client.get("/webhooks?limit=4")
    assert response.status_code == 400
    assert "limit" in response.get_json()["error"]["fields"]


def test_list_leaves_out_deleted_webhooks_and_a_deleted_cursor_still_pages(client) -> None:
    a, b, c = (create(client)["id"] for _ in range(3))
    assert client.delete(f"/webhooks/{b}").status_code == 200
    assert [w["id"] for w in client.get("/webhooks").get_json()["data"]] == [c, a]
    page = client.get(f"/webhooks?starting_after={b}").get_json()
    assert [w["id"] for w in page["data"]] == [a]


@pytest.mark.parametrize(
    "query,field",
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("limit=10000", "limit"),
        ("limit=99999999999999999999", "limit"),
        ("starting_after=nope", "starting_after"),
        ("starting_after=wh_000000000000000000000000", "starting_after"),
        ("starting_after=wh_%00", "starting_after"),
        ("brand_id=not-a-uuid", "brand_id"),
        ("brand_id=", "brand_id"),
        ("status=active", "status"),
        ("limit=1&limit=2", "limit"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(client, query, field) -> None:
    response = client.get(f"/webhooks?{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == [field]


# -- update -------------------------------------------------------------------------------


def test_patch_url_redetects_the_provider_and_moves_updated_at(app, client) -> None:
    obj = create(client)
    with app.app_context():  # push created_at/updated_at back so the change is visible
        state = get_state(app)
        row = state.db.session.get(state.models.Webhook, obj["id"])
        row.created_at = row.updated_at = ids.utcnow() - timedelta(hours=1)
        state.db.session.commit()
    before = client.get(f"/webhooks/{obj['id']}").get_json()
    response = client.patch(f"/webhooks/{obj['id']}", json={"url": "https://hooks.slack.com/services/T/B/X"})
    assert response.status_code == 200
    after = response.get_json()
    assert after["provider"] == "slack"
    assert after["url"] == "https://hooks.slack.com/services/T/B/X"
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]
    assert client.get(f"/webhooks/{obj['id']}").get_json() == after


def test_provider_may_be_given_on_create_and_patch(client) -> None:
    obj = create(client, url="https://proxy.example.com/slack", provider="slack")
    assert obj["provider"] == "slack"
    # A PATCH without url or provider keeps an explicit provider.
    assert client.patch(f"/webhooks/{obj['id']}", json={"description": "x"}).get_json()["provider"] == "slack"
    # An explicit provider with a new URL wins over detection.
    changed = client.patch(
        f"/webhooks/{obj['id']}", json={"url": "https://hooks.zapier.com/hooks/catch/1/a/", "provider": "discord"}
    )
    assert changed.get_json()["provider"] == "discord"
    # A new URL alone is detected again; provider null asks for detection.
    assert (
        client.patch(f"/webhooks/{obj['id']}", json={"url": "https://hooks.slack.com/services/T/B/X"}).get_json()[
            "provider"
        ]
        == "slack"
    )
    assert (
        client.patch(f"/webhooks/{obj['id']}", json={"provider": "teams_webhook"}).get_json()["provider"]
        == "teams_webhook"
    )
    assert client.patch(f"/webhooks/{obj['id']}", json={"provider": None}).get_json()["provider"] == "slack"


def test_provider_must_be_registered(client) -> None:
    obj = create(client)
    response = client.patch(f"/webhooks/{obj['id']}", json={"provider": "carrier-pigeon"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert list(error["fields"]) == ["provider"]
    assert "unknown provider 'carrier-pigeon'" in error["fields"]["provider"][0]


def test_a_host_registered_provider_is_detected_and_accepted(client) -> None:
    from flask_trakkr_webhooks import providers

    providers.register(
        "pager", lambda payload: {"text": payload["summary"]}, matches=lambda host, path: host == "pager.example.com"
    )
    try:
        assert create(client, url="https://pager.example.com/in")["provider"] == "pager"
        assert create(client, url="https://other.example.com/in", provider="pager")["provider"] == "pager"
        documented = client.get("/webhooks/openapi.json").get_json()["components"]["schemas"]
        assert "pager" in documented["WebhookCreate"]["properties"]["provider"]["anyOf"][0]["enum"]
        assert "pager" in documented["Webhook"]["properties"]["provider"]["enum"]
    finally:
        providers.unregister("pager")


def test_patch_every_plain_field(client) -> None:
    obj = create(client)
    changes = {
        "events": ["citation_gained", "citation_lost"],
        "active": False,
        "description": "line one\nline two",
        "headers": {"X-Env": "prod"},
        "template": [{"t": "{{event.type}}"}],
        "signing_secret": "whsec_" + "a" * 20,
    }
    after = client.patch(f"/webhooks/{obj['id']}", json=changes).get_json()
    for name, value in changes.items():
        assert after[name] == value
    cleared = client.patch(
        f"/webhooks/{obj['id']}", json={"headers": None, "template": None, "signing_secret": None, "description": None}
    ).get_json()
    assert cleared["headers"] == {} and cleared["template"] is None
    assert cleared["signing_secret"] is None and cleared["description"] is None


def test_empty_patch_changes_nothing(client) -> None:
    obj = create(client)
    response = client.patch(f"/webhooks/{obj['id']}", json={})
    assert response.status_code == 200
    assert response.get_json() == obj


def test_patch_same_brand_is_accepted_another_is_400(client) -> None:
    obj = create(client)
    assert client.patch(f"/webhooks/{obj['id']}", json={"brand_id": BRAND.upper()}).status_code == 200
    response = client.patch(f"/webhooks/{obj['id']}", json={"brand_id": OTHER_BRAND})
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["brand_id"]


def test_switching_auth_type_clears_the_old_credentials(app, client) -> None:
    obj = create(client, auth_type="basic", auth_username="alice", auth_password="pw")
    after = client.patch(f"/webhooks/{obj['id']}", json={"auth_type": "bearer", "auth_token": "t0k"}).get_json()
    assert after["auth_type"] == "bearer" and after["auth_username"] is None
    row = stored(app, obj["id"])
    assert (row.auth_token, row.auth_username, row.auth_password) == ("t0k", None, None)

    after = client.patch(
        f"/webhooks/{obj['id']}", json={"auth_type": "api_key", "api_key_header": "X-Key", "api_key_value": "v"}
    ).get_json()
    assert after["api_key_header"] == "X-Key"
    row = stored(app, obj["id"])
    assert (row.auth_token, row.api_key_header, row.api_key_value) == (None, "X-Key", "v")

    after = client.patch(f"/webhooks/{obj['id']}", json={"auth_type": "none"}).get_json()
    assert after["auth_type"] == "none" and after["api_key_header"] is None
    row = stored(app, obj["id"])
    assert all(
        getattr(row, n) is None
        for n in ("auth_token", "auth_username", "auth_password", "api_key_header", "api_key_value")
    )


def test_rotating_one_credential_keeps_the_others(app, client) -> None:
    obj = create(client, auth_type="basic", auth_username="alice", auth_password="old")
    response = client.patch(f"/webhooks/{obj['id']}", json={"auth_password": "new"})
    assert response.status_code == 200
    row = stored(app, obj["id"])
    assert (row.auth_username, row.auth_password) == ("alice", "new")


def test_patch_credentials_of_another_type_is_400(client) -> None:
    obj = create(client, auth_type="bearer", auth_token="t")
    response = client.patch(f"/webhooks/{obj['id']}", json={"auth_password": "x"})
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["auth_password"]


def test_clearing_a_required_credential_is_400(client) -> None:
    obj = create(client, auth_type="bearer", auth_token="t")
    response = client.patch(f"/webhooks/{obj['id']}", json={"auth_token": None})
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["auth_token"]


def test_api_key_header_may_not_clash_with_a_kept_custom_header(client) -> None:
    obj = create(client, headers={"X-Key": "1"})
    response = client.patch(
        f"/webhooks/{obj['id']}", json={"auth_type": "api_key", "api_key_header": "x-key", "api_key_value": "v"}
    )
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["api_key_header"]


def test_reactivating_clears_the_disabled_state(app, client) -> None:
    obj = create(client)
    with app.app_context():
        state = get_state(app)
        row = state.db.session.get(state.models.Webhook, obj["id"])
        row.active, row.disabled_reason, row.disabled_at = False, "15 failures in a row", ids.utcnow()
        row.consecutive_failures = 15
        state.db.session.commit()
    disabled = client.get(f"/webhooks/{obj['id']}").get_json()
    assert disabled["disabled_reason"] == "15 failures in a row" and ISO.match(disabled["disabled_at"])
    after = client.patch(f"/webhooks/{obj['id']}", json={"active": True}).get_json()
    assert after["active"] is True and after["disabled_reason"] is None and after["disabled_at"] is None
    assert stored(app, obj["id"]).consecutive_failures == 0


def test_patch_unknown_id_is_404(client) -> None:
    response = client.patch("/webhooks/wh_000000000000000000000000", json={"active": False})
    assert response.status_code == 404


# -- delete -------------------------------------------------------------------------------


def test_delete_soft_deletes_and_hides_the_webhook_everywhere(app, client) -> None:
    obj = create(client, auth_type="bearer", auth_token="tok-123456", signing_secret="s" * 32)
    response = client.delete(f"/webhooks/{obj['id']}")
    assert response.status_code == 200
    assert response.get_json() == {"id": obj["id"], "object": "webhook", "deleted": True}
    row = stored(app, obj["id"])
    assert row is not None and row.deleted_at is not None and row.active is False
    assert row.auth_token is None and row.signing_secret is None  # credentials dropped
    assert client.get(f"/webhooks/{obj['id']}").status_code == 404
    assert client.patch(f"/webhooks/{obj['id']}", json={"active": True}).status_code == 404
    assert client.delete(f"/webhooks/{obj['id']}").status_code == 404
    assert client.get("/webhooks").get_json()["data"] == []


def test_delete_cancels_open_deliveries_only(app, client) -> None:
    obj = create(client)
    keep = create(client)
    statuses = [PENDING, QUEUED, RETRYING, SENDING, SUCCEEDED, FAILED]
    with app.app_context():
        state = get_state(app)
        m = state.models
        event = m.Event(type="visibility_changed", brand_id=BRAND, payload={"event": {}})
        state.db.session.add(event)
        state.db.session.flush()
        rows = {s: m.Delivery(event_id=event.id, webhook_id=obj["id"], status=s) for s in statuses}
        other = m.Delivery(event_id=event.id, webhook_id=keep["id"], status=PENDING)
        state.db.session.add_all([*rows.values(), other])
        state.db.session.commit()
        ids_by_status = {s: d.id for s, d in rows.items()}
        other_id = other.id
    assert client.delete(f"/webhooks/{obj['id']}").status_code == 200
    with app.app_context():
        state = get_state(app)
        got = {s: state.db.session.get(state.models.Delivery, i) for s, i in ids_by_status.items()}
        for status in (PENDING, QUEUED, RETRYING):
            assert got[status].status == CANCELLED
            assert got[status].completed_at is not None and got[status].next_attempt_at is None
        for status in (SENDING, SUCCEEDED, FAILED):
            assert got[status].status == status
        assert state.db.session.get(state.models.Delivery, other_id).status == PENDING


BASE = {"url": "https://receiver.example.com/hooks", "events": ["visibility_changed"], "brand_id": BRAND}


SETTINGS = (
    "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True (development) or the address is inside a network "
    "listed in TRAKKR_WEBHOOKS_ALLOWED_CIDRS"
)


NEVER = "which is never a valid webhook destination (no setting allows it)"
#: The one save-time answer for a host name that is private or does not resolve (issue 19 item 6).
HOST_REFUSED = (
    "must resolve to a public address reachable by the sender (the server's log has the detail; "
    "an operator can admit private receivers with TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS or "
    "TRAKKR_WEBHOOKS_ALLOWED_CIDRS)"
)


class Answers:
    """A resolver answering ``addresses`` for every name and recording the questions."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.addresses)


def refuse_to_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"the resolver must not be asked about {host!r}")


@pytest.fixture
def resolver() -> Iterator[Any]:
    """Swap the process resolver for one a test sets: ``resolver(Answers("10.0.0.1"))``."""
    stack: list[Any] = []

    def use(answer: Any) -> Any:
        context = ssrf.use_resolver(answer)
        context.__enter__()
        stack.append(context)
        return answer

    yield use
    while stack:
        stack.pop().__exit__(None, None, None)


def url_error(response: Any) -> str:
    """The one message on ``url`` of a 400, after checking the whole error shape."""
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == ["url"]
    [message] = error["fields"]["url"]
    assert error["message"] == f"Invalid request: url: {message}"
    return message


# -- every address class, as a literal and as a name resolving to it -----------------------------

#: (address, refused class, allowed by a setting?)
ADDRESSES = [
    ("127.0.0.1", "loopback", True),
    ("127.8.9.10", "loopback", True),
    ("10.0.0.1", "private", True),
    ("172.16.5.4", "private", True),
    ("192.168.1.1", "private", True),
    ("169.254.169.254", "link-local", True),
    ("100.64.0.1", "carrier-grade NAT", True),
    ("0.0.0.1", "reserved", True),
    ("240.0.0.1", "reserved", True),
    ("192.0.0.8", "reserved", True),
    ("192.0.2.1", "documentation", True),
    ("198.18.0.1", "benchmarking", True),
    ("0.0.0.0", "unspecified", False),
    ("224.0.0.1", "multicast", False),
    ("255.255.255.255", "broadcast", False),
    ("::1", "loopback", True),
    ("::", "unspecified", False),
    ("fd00::1", "unique local (private IPv6)", True),
    ("fe80::1", "link-local", True),
    ("fec0::1", "site-local", True),
    ("ff02::1", "multicast", False),
    ("2001:db8::1", "documentation", True),
    ("::ffff:127.0.0.1", "loopback", True),  # IPv4-mapped
    ("::ffff:10.0.0.1", "private", True),
    ("::ffff:169.254.169.254", "link-local", True),
    ("::127.0.0.1", "loopback", True),  # IPv4-compatible (deprecated)
    ("2002:7f00:1::1", "loopback", True),  # 6to4 of 127.0.0.1
    ("2002:a00:1::1", "private", True),  # 6to4 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local", True),  # NAT64 of 169.254.169.254
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel", True),
]


def _literal_url(address: str) -> str:
    return f"https://[{address}]/hooks" if ":" in address else f"https://{address}/hooks"


def _expected_suffix(address_class: str, allowable: bool) -> str:
    article = "an" if address_class == "unspecified" else "a"
    if not allowable:
        return f", {article} {address_class} address, {NEVER}"
    return f", {article} {address_class} address; webhooks may not target {address_class} addresses unless {SETTINGS}"


@pytest.mark.parametrize("address,address_class,allowable", ADDRESSES, ids=[a for a, _, _ in ADDRESSES])
def test_create_refuses_a_literal_of_every_address_class(client, resolver, address, address_class, allowable):
    resolver(refuse_to_resolve)  # literals are judged without DNS
    message = url_error(client.post("/webhooks", json={**BASE, "url": _literal_url(address)}))
    with pytest.raises(ssrf.BlockedAddress) as info:
        ssrf.check_url(_literal_url(address))
    assert message == str(info.value)
    assert _expected_suffix(address_class, allowable) in message
    assert client.get("/webhooks").get_json()["data"] == []


@pytest.mark.parametrize("address,address_class,allowable", ADDRESSES, ids=[a for a, _, _ in ADDRESSES])
def test_create_refuses_a_name_resolving_to_every_address_class(
    client, resolver, caplog, address, address_class, allowable
):
    """The answer is the same for every refused class (no DNS oracle); the operator's log has the detail."""
    answers = resolver(Answers(address))
    with caplog.at_level("WARNING", logger="flask_trakkr_webhooks"):
        message = url_error(client.post("/webhooks", json={**BASE, "url": "https://internal.example:8443/hooks"}))
    assert message == HOST_REFUSED
    assert str(ipaddress.ip_address(address)) not in message and f"{address_class} address" not in message
    logged = [r.getMessage() for r in caplog.records if r.name == "flask_trakkr_webhooks"]
    assert any(f"webhook host 'internal.example' resolves to {ipaddress.ip_address(address)}" in m for m in logged)
    assert answers.calls == [("internal.example", 8443)]
    assert client.get("/webhooks").get_json()["data"] == []


def test_the_exact_message_for_loopback_names_the_class_and_both_settings(client, resolver):
    resolver(refuse_to_resolve)
    assert url_error(client.post("/webhooks", json={**BASE, "url": "https://127.0.0.1/h"})) == (
        "the URL's host 127.0.0.1, a loopback address; webhooks may not target loopback addresses unless "
        "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True (development) or the address is inside a network listed in "
        "TRAKKR_WEBHOOKS_ALLOWED_CIDRS (self-hosted receivers, e.g. ['127.0.0.1/32'])"
    )


def test_the_metadata_service_is_named(client):
    message = url_error(client.post("/webhooks", json={**BASE, "url": "https://169.254.169.254/latest/meta-data"}))
    assert message.startswith(
        "the URL's host 169.254.169.254 (the cloud instance metadata service), a link-local address"
    )


@pytest.mark.parametrize("url", ["https://localhost/h", "https://LOCALHOST./h", "https://api.localhost/h"])
def test_localhost_names_are_loopback_whatever_dns_says(client, resolver, url):
    resolver(Answers("93.184.216.34"))
    assert url_error(client.post("/webhooks", json={**BASE, "url": url})) == HOST_REFUSED


def test_one_private_answer_among_public_ones_refuses_the_url(client, resolver):
    resolver(Answers("93.184.216.34", "10.0.0.7"))
    assert url_error(client.post("/webhooks", json={**BASE, "url": "https://split.example/h"})) == HOST_REFUSED


@pytest.mark.parametrize(
    "url", ["https://127.1/h", "https://0x7f.1/h", "https://2130706433/h", "https://017700000001/h"]
)
def test_numeric_ipv4_tricks_are_refused_before_any_lookup(client, resolver, url):
    resolver(refuse_to_resolve)
    message = url_error(client.post("/webhooks", json={**BASE, "url": url}))
    assert "non-canonical IPv4 address" in message


def test_an_ipv6_zone_is_refused(client, resolver):
    resolver(refuse_to_resolve)
    assert url_error(client.post("/webhooks", json={**BASE, "url": "https://[fe80::1%25eth0]/h"})) == (
        "must not use an IPv6 zone identifier (%...)"
    )


def test_an_unresolvable_host_is_400_on_url_with_the_same_message_as_a_private_one(client, resolver, caplog):
    """Issue 19 item 6: "private" and "unresolvable" are one answer for a name; only the log tells them apart."""
    with caplog.at_level("WARNING", logger="flask_trakkr_webhooks"):
        unresolvable = url_error(client.post("/webhooks", json={**BASE, "url": "https://nothing-here.invalid/h"}))
        resolver(Answers("10.0.0.5"))
        private = url_error(client.post("/webhooks", json={**BASE, "url": "https://internal.example/h"}))
    assert unresolvable == private == HOST_REFUSED
    assert "10.0.0.5" not in private and "private address" not in private
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "flask_trakkr_webhooks")
    assert "'nothing-here.invalid' could not be resolved" in logged
    assert "resolves to 10.0.0.5, a private address" in logged


def test_a_host_with_no_addresses_is_400_on_url(client, resolver):
    resolver(Answers())
    assert url_error(client.post("/webhooks", json={**BASE, "url": "https://empty.example/h"})) == HOST_REFUSED


def test_the_patch_answer_does_not_tell_private_from_unresolvable_either(client, saved, resolver):
    private = url_error(client.patch(f"/webhooks/{saved['id']}", json={"url": "https://nothing-here.invalid/h"}))
    resolver(Answers("192.168.3.4"))
    unresolvable = url_error(client.patch(f"/webhooks/{saved['id']}", json={"url": "https://nas.example/h"}))
    assert private == unresolvable == HOST_REFUSED


def test_a_public_name_is_saved_and_resolved_once(client, resolver):
    answers = resolver(Answers("93.184.216.34", "2606:4700::1111"))
    response = client.post("/webhooks", json={**BASE, "url": "https://Hooks.Example.com/in"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["url"] == "https://Hooks.Example.com/in"
    assert answers.calls == [("hooks.example.com", 443)]


def test_the_access_policy_is_asked_before_any_lookup(make_app, resolver):
    """A caller who may not manage the brand cannot use the API as a DNS oracle."""
    client = make_app(policy=lambda brand_id: False).test_client()
    resolver(refuse_to_resolve)
    response = client.post("/webhooks", json={**BASE, "url": "https://probe.example/h"})
    assert response.status_code == 403
    assert response.get_json()["error"]["fields"] == {"brand_id": ["the access policy refused this brand"]}


def test_other_invalid_fields_are_reported_without_a_lookup(client, resolver):
    resolver(refuse_to_resolve)
    response = client.post("/webhooks", json={**BASE, "url": "https://probe.example/h", "events": ["nope"]})
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["events.0"]


# -- settings -------------------------------------------------------------------------------------


def test_allow_private_networks_admits_loopback_and_private(make_app, resolver):
    client = make_app(TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True, TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False).test_client()
    for url in ("http://127.0.0.1:8080/hook", "https://[::1]/h", "https://10.1.2.3/h", "https://169.254.169.254/h"):
        response = client.post("/webhooks", json={**BASE, "url": url})
        assert response.status_code == 201, (url, response.get_json())
    resolver(Answers("192.168.0.10"))
    assert client.post("/webhooks", json={**BASE, "url": "https://nas.example/h"}).status_code == 201


@pytest.mark.parametrize(
    "url,address_class",
    [
        ("https://0.0.0.0/h", "unspecified"),
        ("https://224.0.0.1/h", "multicast"),
        ("https://255.255.255.255/h", "broadcast"),
        ("https://[::]/h", "unspecified"),
    ],
)
def test_allow_private_networks_never_admits_unspecified_multicast_broadcast(make_app, url, address_class):
    client = make_app(
        TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True, TRAKKR_WEBHOOKS_ALLOWED_CIDRS=["0.0.0.0/0", "::/0"]
    ).test_client()
    message = url_error(client.post("/webhooks", json={**BASE, "url": url}))
    assert message.endswith(f"{address_class} address, {NEVER}")


def test_allowed_cidrs_admit_their_range_only(make_app, resolver):
    client = make_app(TRAKKR_WEBHOOKS_ALLOWED_CIDRS=["10.1.0.0/16", "fd12:3456::/32"]).test_client()
    for url in ("https://10.1.0.1/h", "https://10.1.255.254/h", "https://[fd12:3456::9]/h"):
        assert client.post("/webhooks", json={**BASE, "url": url}).status_code == 201, url
    for url, address_class in (
        ("https://10.2.0.1/h", "private"),
        ("https://127.0.0.1/h", "loopback"),
        ("https://[fd12:3457::1]/h", "unique local (private IPv6)"),
        ("https://192.168.1.1/h", "private"),
    ):
        message = url_error(client.post("/webhooks", json={**BASE, "url": url}))
        assert f"a {address_class} address; webhooks may not target" in message, url
    resolver(Answers("10.1.4.4", "10.9.0.1"))  # one answer inside, one outside: refused
    assert url_error(client.post("/webhooks", json={**BASE, "url": "https://mixed.example/h"})) == HOST_REFUSED


def test_allowed_cidrs_as_a_comma_separated_string(make_app):
    client = make_app(TRAKKR_WEBHOOKS_ALLOWED_CIDRS="10.1.0.0/16, 192.168.7.0/24").test_client()
    assert client.post("/webhooks", json={**BASE, "url": "https://192.168.7.7/h"}).status_code == 201
    url_error(client.post("/webhooks", json={**BASE, "url": "https://192.168.8.7/h"}))


# -- PATCH ------------------------------------------------------------------------------------------


@pytest.fixture
def saved(app, client) -> dict:
    response = client.post("/webhooks", json={**BASE, "description": "before"})
    assert response.status_code == 201
    return response.get_json()


def _url_fields(app, webhook_id: str) -> dict:
    with app.app_context():
        row = app.db.session.get(get_state(app).models.Webhook, webhook_id)
        return {"url": row.url, "description": row.description, "provider": row.provider, "updated_at": row.updated_at}


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://[::ffff:10.0.0.1]/h",
        "https://169.254.169.254/",
        "https://0.0.0.0/",
        "https://nothing-here.invalid/h",
    ],
)
def test_patch_to_a_refused_url_is_400_and_changes_nothing(app, client, saved, url):
    before_row = _url_fields(app, saved["id"])
    message = url_error(client.patch(f"/webhooks/{saved['id']}", json={"url": url, "description": "after"}))
    assert message
    assert client.get(f"/webhooks/{saved['id']}").get_json() == saved
    assert _url_fields(app, saved["id"]) == before_row


def test_patch_to_a_name_resolving_privately_is_400(app, client, saved, resolver):
    resolver(Answers("172.20.0.5"))
    message = url_error(
        client.patch(f"/webhooks/{saved['id']}", json={"url": "https://hooks.slack.com/services/T/B/X"})
    )
    assert message == HOST_REFUSED
    assert client.get(f"/webhooks/{saved['id']}").get_json() == saved


def test_patch_to_a_public_url_is_vetted_and_saved(client, saved, resolver):
    answers = resolver(Answers("93.184.216.34"))
    response = client.patch(f"/webhooks/{saved['id']}", json={"url": "https://hooks.slack.com/services/T/B/X"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["url"] == "https://hooks.slack.com/services/T/B/X"
    assert response.get_json()["provider"] == "slack"
    assert answers.calls == [("hooks.slack.com", 443)]


def test_patch_without_a_new_url_does_not_resolve(client, saved, resolver):
    """Only a new or changed URL is looked up; every delivery checks it again anyway."""
    resolver(refuse_to_resolve)
    for body in ({"description": "after"}, {"url": saved["url"]}, {"active": False}):
        assert client.patch(f"/webhooks/{saved['id']}", json=body).status_code == 200


OLD = "old-secret-0123456789abcdef"


def _delivered(app, receiver):
    """Emit one event, deliver it, return the request the receiver got."""
    count = len(receiver.received)
    emit(app)
    _process(app)
    return receiver.wait_for(count + 1, timeout=10)[-1]


def verifies(secrets, got) -> bool:
    """Whether receiver_kit (300 s tolerance, Standard Webhooks headers only) accepts request ``got``
    with ``secrets``; any refusal other than "no matching signature" fails the test."""
    try:
        return (
            WebhookVerifier(secrets, tolerance=300, allow_legacy=False).authenticate(got.body, got.headers)
            == SCHEME_STANDARD
        )
    except WebhookVerificationError as exc:
        assert exc.code == "no_matching_signature", exc
        return False


# -- generated secrets ----------------------------------------------------------------------------------


def test_generate_on_create_and_patch_answers_a_new_whsec_secret(local_app, local_client):
    created = _create(local_client, "https://r.example/h", signing_secret="generate")
    secret = created["signing_secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) == 32
    assert _row(local_app, created["id"]).signing_secret == secret
    patched = local_client.patch(f"/webhooks/{created['id']}", json={"signing_secret": "generate"}).get_json()
    assert patched["signing_secret"].startswith("whsec_") and patched["signing_secret"] != secret
    assert _row(local_app, created["id"]).signing_secret == patched["signing_secret"]


@pytest.mark.parametrize("secret", ["whsec_not-base64-at-all!", "whsec_abc_def_ghi_jkl", "whsec_a"])
def test_a_whsec_secret_must_be_base64(local_client, secret):
    error = _error(
        local_client.post(
            "/webhooks",
            json={
                "url": "https://r.example/h",
                "events": ["visibility_changed"],
                "brand_id": BRAND_ID,
                "signing_secret": secret,
            },
        ),
        400,
        "signing_secret",
    )
    assert any(
        "must be standard base64 after the prefix" in m or "at least 16" in m for m in error["fields"]["signing_secret"]
    )


# -- rotate-secret ---------------------------------------------------------------------------------------


def test_rotate_generates_a_secret_and_keeps_the_old_one_for_the_grace_period(local_app, local_client):
    hook = _create(local_client, "https://r.example/h", signing_secret=OLD)
    before = ids.utcnow()
    response = local_client.post(f"/webhooks/{hook['id']}/rotate-secret")
    assert response.status_code == 200
    body = response.get_json()
    assert body["object"] == "webhook" and body["id"] == hook["id"]
    assert body["signing_secret"].startswith("whsec_") and body["signing_secret"] != OLD
    row = _row(local_app, hook["id"])
    assert row.signing_secret == body["signing_secret"] and row.previous_signing_secret == OLD
    expires = ids.as_utc(row.previous_secret_expires_at)
    assert before + timedelta(hours=24) <= expires <= ids.utcnow() + timedelta(hours=24)
    assert body["previous_secret_expires_at"] == ids.isoformat(expires)
    assert local_client.get(f"/webhooks/{hook['id']}").get_json()["previous_secret_expires_at"] == ids.isoformat(
        expires
    )


def test_rotate_to_a_given_secret_and_the_body_rules(local_app, local_client):
    hook = _create(local_client, "https://r.example/h", signing_secret=OLD)
    url = f"/webhooks/{hook['id']}/rotate-secret"
    given = "brand-new-secret-0123456789"
    assert local_client.post(url, json={"signing_secret": given}).get_json()["signing_secret"] == given
    error = _error(local_client.post(url, json={"signing_secret": given}), 400, "signing_secret")
    assert error["fields"]["signing_secret"] == ["must differ from the current secret"]
    assert (
        _error(local_client.post(url, json={"signing_secret": "short"}), 400, "signing_secret")["type"]
        == ERROR_TYPES[400]
    )
    assert (
        _error(local_client.post(url, json={"signing_secret": None}), 400, "signing_secret")["type"] == ERROR_TYPES[400]
    )
    assert (
        _error(local_client.post(url, json={"signing_secret": "whsec_@@@@@@@@@@@@@@@@"}), 400, "signing_secret")["type"]
        == ERROR_TYPES[400]
    )
    assert _error(local_client.post(url, json={"secret": "x" * 20}), 400, "secret")["fields"]["secret"] == [
        "Unknown field."
    ]
    assert (
        _error(local_client.post(url, json=["generate"]), 400)["message"]
        == "Request body must be a JSON object, not list."
    )
    assert _error(local_client.post(url, data="generate", content_type="text/plain"), 415)["type"] == ERROR_TYPES[415]
    assert _error(local_client.post(url + "?x=1"), 400, "x")["type"] == ERROR_TYPES[400]
    assert _row(local_app, hook["id"]).signing_secret == given  # nothing refused changed it
    assert local_client.post(url, json={"signing_secret": "generate"}).get_json()["signing_secret"].startswith("whsec_")


def test_rotate_without_a_current_secret_or_without_grace_keeps_no_previous(make_app):
    local_app = make_app(TRAKKR_WEBHOOKS_SECRET_GRACE_PERIOD=0)
    local_client = local_app.test_client()
    plain = _create(local_client, "https://r.example/h")
    body = local_client.post(f"/webhooks/{plain['id']}/rotate-secret").get_json()
    assert body["signing_secret"].startswith("whsec_") and body["previous_secret_expires_at"] is None
    assert _row(local_app, plain["id"]).previous_signing_secret is None
    signed = _create(local_client, "https://r.example/h", signing_secret=OLD)
    body = local_client.post(f"/webhooks/{signed['id']}/rotate-secret").get_json()
    assert _row(local_app, signed["id"]).previous_signing_secret is None and body["previous_secret_expires_at"] is None


def test_rotate_unknown_or_deleted_webhook_is_404(local_client):
    assert (
        _error(local_client.post("/webhooks/wh_000000000000000000000000/rotate-secret"), 404)["type"]
        == ERROR_TYPES[404]
    )
    hook = _create(local_client, "https://r.example/h")
    local_client.delete(f"/webhooks/{hook['id']}")
    assert _error(local_client.post(f"/webhooks/{hook['id']}/rotate-secret"), 404)["type"] == ERROR_TYPES[404]
    assert _error(local_client.get("/webhooks/x/rotate-secret"), 405)["type"] == ERROR_TYPES[405]


def test_rotation_windows_on_real_deliveries(local_app, local_client, plain_receiver):
    """Old only, new only, both: all verify during the grace period; after it, only the new one."""
    hook = _create(local_client, plain_receiver.url + "/h", signing_secret=OLD)
    assert verifies([OLD], _delivered(local_app, plain_receiver))
    new = local_client.post(f"/webhooks/{hook['id']}/rotate-secret").get_json()["signing_secret"]

    got = _delivered(local_app, plain_receiver)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secrets in ([OLD], [new], [new, OLD]):
        assert verifies(secrets, got), secrets
    assert not verifies(["unrelated-secret-0123456789"], got)
    # The seed's scheme: the new secret only; a receiver on the plain snippet accepts either during the window.
    assert verify_signature(got.body, got.headers["X-Trakkr-Signature"], new)
    assert not verify_signature(got.body, got.headers["X-Trakkr-Signature"], OLD)
    assert verify_signature(got.body, got.headers["X-Trakkr-Signature"], [new, OLD])

    # /test and /preview are signed the same way during the window.
    test_send = (
        plain_receiver.received[-1] if local_client.post(f"/webhooks/{hook['id']}/test").get_json()["success"] else None
    )
    assert test_send is not None and verifies([OLD], test_send) and verifies([new], test_send)
    preview = local_client.post(f"/webhooks/{hook['id']}/preview").get_json()
    assert len(preview["headers"]["webhook-signature"].split(" ")) == 2

    with local_app.app_context():  # the grace period ends
        state = get_state(local_app)
        row = state.db.session.get(state.models.Webhook, hook["id"])
        row.previous_secret_expires_at = ids.utcnow() - timedelta(seconds=1)
        state.db.session.commit()
    got = _delivered(local_app, plain_receiver)
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    assert verifies([new], got) and verifies([new, OLD], got)
    assert not verifies([OLD], got)
    assert local_client.get(f"/webhooks/{hook['id']}").get_json()["previous_secret_expires_at"] is None


def test_rotating_twice_retires_the_first_secret_and_patch_ends_the_window(local_app, local_client, plain_receiver):
    hook = _create(local_client, plain_receiver.url + "/h", signing_secret=OLD)
    second = local_client.post(f"/webhooks/{hook['id']}/rotate-secret").get_json()["signing_secret"]
    third = local_client.post(f"/webhooks/{hook['id']}/rotate-secret").get_json()["signing_secret"]
    got = _delivered(local_app, plain_receiver)
    assert verifies([second], got) and verifies([third], got) and not verifies([OLD], got)
    fourth = "set-outright-0123456789abc"
    body = local_client.patch(f"/webhooks/{hook['id']}", json={"signing_secret": fourth}).get_json()
    assert body["previous_secret_expires_at"] is None
    got = _delivered(local_app, plain_receiver)
    assert verifies([fourth], got) and not verifies([third], got)


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "since"),
        ({"since": "2024-06-01T00:00:00"}, "since"),  # no time zone
        ({"since": "yesterday"}, "since"),
        ({"since": 1717200000}, "since"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # before year 1 in UTC
        ({"since": "2024-06-01T00:00:00Z", "status": "succeeded"}, "status"),
        ({"since": "2024-06-01T00:00:00Z", "status": []}, "status"),
        ({"since": "2024-06-01T00:00:00Z", "status": ["failed", 1]}, "status"),
        ({"since": "2024-06-01T00:00:00Z", "limit": 0}, "limit"),
        ({"since": "2024-06-01T00:00:00Z", "limit": 1001}, "limit"),
        ({"since": "2024-06-01T00:00:00Z", "limit": "5"}, "limit"),
        ({"since": "2024-06-01T00:00:00Z", "until": "2024-06-02T00:00:00Z"}, "until"),
        ({"since": "2024-06-01T00:00:00Z\ud800"}, "since"),
    ],
)
def test_replay_bad_input_is_400_on_the_field(local_app, local_client, body, field):
    hook = _create(local_client, "https://r.example/h")["id"]
    assert _error(local_client.post(f"/webhooks/{hook}/replay", json=body), 400, field)["type"] == ERROR_TYPES[400]


def test_replay_needs_a_json_body(local_client):
    hook = _create(local_client, "https://r.example/h")["id"]
    assert (
        _error(local_client.post(f"/webhooks/{hook}/replay"), 400)["message"]
        == "Request body is empty: send a JSON object."
    )
    assert (
        _error(local_client.post(f"/webhooks/{hook}/replay", data="x", content_type="text/plain"), 415)["type"]
        == ERROR_TYPES[415]
    )
    assert (
        _error(
            local_client.post("/webhooks/wh_000000000000000000000000/replay", json={"since": "2024-06-01T00:00:00Z"}),
            404,
        )["type"]
        == ERROR_TYPES[404]
    )


def field_error(response: Any, field: str) -> list[str]:
    """The messages on ``field`` of a 400 that names only that field."""
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == [field]
    return error["fields"][field]


def test_page_size_cap(limited):
    _, client, webhook_id = limited
    for path in ("/webhooks", f"/webhooks/{webhook_id}/deliveries"):
        assert field_error(client.get(f"{path}?limit=4"), "limit") == ["must be an integer from 1 to 3"]
        assert client.get(f"{path}?limit=3").status_code == 200


# -- issue 19 item 3: a credential written under another key never makes the API answer 500 --------

APP_KEY = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU="
FOREIGN_KEY = "BgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgY="


@pytest.fixture
def keyed(make_app) -> tuple[Any, Any]:
    """An app with an encryption key, and its client."""
    app = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=APP_KEY)
    return app, app.test_client()


def _foreign_webhook(client, **fields) -> dict:
    """A bearer webhook whose token and signing secret were written under another key."""
    with crypto.using_keys(FOREIGN_KEY):
        response = client.post(
            "/webhooks",
            json={**BASE, "auth_type": "bearer", "auth_token": "tok_x", "signing_secret": "generate", **fields},
        )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _conflict(response: Any, fields: set[str]) -> dict:
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == "conflict"
    assert set(error["fields"]) == fields
    assert "cannot be decrypted with the configured encryption key" in error["message"]
    assert "TRAKKR_WEBHOOKS_ENCRYPTION_KEY" in error["message"]
    return error


def test_read_and_list_answer_200_when_a_credential_cannot_be_decrypted(keyed, caplog):
    _, client = keyed
    healthy = client.post("/webhooks", json={**BASE, "auth_type": "bearer", "auth_token": "tok_ok"}).get_json()
    foreign = _foreign_webhook(client)
    with caplog.at_level("WARNING", logger="flask_trakkr_webhooks"):
        got = client.get(f"/webhooks/{foreign['id']}")
        listed = client.get("/webhooks")
    assert got.status_code == 200, got.get_json()
    assert got.get_json()["signing_secret"] is None
    assert got.get_json()["unreadable_credentials"] == ["auth_token", "signing_secret"]
    assert listed.status_code == 200
    by_id = {w["id"]: w for w in listed.get_json()["data"]}
    assert by_id[foreign["id"]]["unreadable_credentials"] == ["auth_token", "signing_secret"]
    assert by_id[healthy["id"]]["unreadable_credentials"] == []
    assert by_id[healthy["id"]]["signing_secret"] == healthy["signing_secret"]
    assert any(foreign["id"] in r.getMessage() and "auth_token" in r.getMessage() for r in caplog.records)


def test_patch_keeping_an_unreadable_credential_is_409_and_changes_nothing(keyed):
    _, client = keyed
    foreign = _foreign_webhook(client)
    _conflict(client.patch(f"/webhooks/{foreign['id']}", json={"description": "x"}), {"auth_token", "signing_secret"})
    _conflict(
        client.patch(f"/webhooks/{foreign['id']}", json={"signing_secret": "generate"}), {"auth_token"}
    )  # still keeps the token
    assert client.get(f"/webhooks/{foreign['id']}").get_json()["description"] is None


def test_patch_replacing_every_unreadable_credential_repairs_the_webhook(keyed):
    _, client = keyed
    foreign = _foreign_webhook(client)
    response = client.patch(f"/webhooks/{foreign['id']}", json={"auth_token": "tok_new", "signing_secret": "generate"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["unreadable_credentials"] == []
    assert response.get_json()["signing_secret"].startswith("whsec_")
    dropped = _foreign_webhook(client)
    response = client.patch(f"/webhooks/{dropped['id']}", json={"auth_type": "none", "signing_secret": None})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["unreadable_credentials"] == []


def test_rotate_secret_with_an_unreadable_secret_is_409(keyed):
    _, client = keyed
    foreign = _foreign_webhook(client)
    error = _conflict(client.post(f"/webhooks/{foreign['id']}/rotate-secret"), {"signing_secret"})
    assert error["fields"]["signing_secret"] == ["cannot be decrypted with the configured encryption key"]
    # Nothing was rotated: the stored secret is still the unreadable one.
    assert client.get(f"/webhooks/{foreign['id']}").get_json()["unreadable_credentials"] == [
        "auth_token",
        "signing_secret",
    ]


def test_delete_works_whatever_the_key(keyed):
    app, client = keyed
    foreign = _foreign_webhook(client)
    response = client.delete(f"/webhooks/{foreign['id']}")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"id": foreign["id"], "object": "webhook", "deleted": True}
    with app.app_context():
        raw = app.db.session.execute(
            sa.text("SELECT auth_token, signing_secret FROM trakkr_webhooks WHERE id = :id"), {"id": foreign["id"]}
        ).one()
    assert tuple(raw) == (None, None)


# -- issue 19 item 4: credentials never follow a changed URL ----------------------------------------

RESEND = "must be sent again when the URL's origin (scheme, host or port) changes"


@pytest.fixture
def bearer(client) -> dict:
    response = client.post(
        "/webhooks", json={**BASE, "auth_type": "bearer", "auth_token": "tok_PARTNER", "headers": {"X-Key": "k"}}
    )
    assert response.status_code == 201
    return response.get_json()


def _token(app, webhook_id: str) -> str | None:
    with app.app_context():
        return app.db.session.get(get_state(app).models.Webhook, webhook_id).auth_token


@pytest.mark.parametrize(
    "url",
    ["https://attacker.example/", "http://receiver.example.com/hooks", "https://receiver.example.com:8443/hooks"],
)
def test_patch_to_another_origin_must_send_credentials_and_headers_again(make_app, url):
    app = make_app(TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False)
    client = app.test_client()
    created = client.post(
        "/webhooks", json={**BASE, "auth_type": "bearer", "auth_token": "tok_PARTNER", "headers": {"X-Key": "k"}}
    ).get_json()
    response = client.patch(f"/webhooks/{created['id']}", json={"url": url})
    assert response.status_code == 400, response.get_json()
    fields = response.get_json()["error"]["fields"]
    assert fields == {"auth_token": [RESEND], "headers": [RESEND + " (or send {} or null for none)"]}
    assert client.get(f"/webhooks/{created['id']}").get_json()["url"] == BASE["url"]


def test_patch_to_another_origin_with_the_credentials_sent_again_is_200(app, client, bearer):
    response = client.patch(
        f"/webhooks/{bearer['id']}", json={"url": "https://new.example/h", "auth_token": "tok_NEW", "headers": {}}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["headers"] == {}
    assert _token(app, bearer["id"]) == "tok_NEW"


def test_patch_to_another_origin_dropping_the_credentials_is_200(client, bearer):
    response = client.patch(
        f"/webhooks/{bearer['id']}", json={"url": "https://new.example/h", "auth_type": "none", "headers": None}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["auth_type"] == "none"


def test_patch_to_another_origin_of_basic_auth_names_the_password(client):
    created = client.post(
        "/webhooks", json={**BASE, "auth_type": "basic", "auth_username": "u", "auth_password": "p"}
    ).get_json()
    response = client.patch(f"/webhooks/{created['id']}", json={"url": "https://new.example/h"})
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"] == {"auth_password": [RESEND]}


@pytest.mark.parametrize(
    "url", ["https://receiver.example.com/other/path?x=1", "https://RECEIVER.example.com:443/hooks"]
)
def test_patch_within_the_same_origin_keeps_the_credentials(app, client, bearer, url):
    response = client.patch(f"/webhooks/{bearer['id']}", json={"url": url})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["headers"] == {"X-Key": "k"}
    assert _token(app, bearer["id"]) == "tok_PARTNER"


# -- issue 19 item 11: edits lock the row FOR NO KEY UPDATE ---------------------------------------


def test_an_open_patch_does_not_hold_back_an_emit_for_the_same_webhook(app, client, monkeypatch, is_postgres):
    """A PATCH holds its row lock until commit; an emit inserting a delivery for that webhook must not wait
    for it (FOR UPDATE would block the delivery's foreign-key check; FOR NO KEY UPDATE does not)."""
    if not is_postgres:
        pytest.skip("row locks need PostgreSQL: set DATABASE_URL=postgresql://127.0.0.1/test")
    created = client.post("/webhooks", json=BASE).get_json()
    outcome: dict[str, Any] = {}

    def emit_for_the_webhook() -> None:
        started = time.monotonic()
        try:
            with app.app_context():
                app.db.session.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
                app.webhooks.emit("visibility_changed", brand={**E2E_BRAND, "id": BRAND}, data=VISIBILITY)
                app.db.session.commit()
        except Exception as exc:  # reported by the test below
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    real_prepare = schemas.prepare_update

    def prepare_while_an_emit_runs(*args: Any, **kwargs: Any) -> Any:
        # Here the PATCH holds the row lock: run a whole emit before letting it go on.
        thread = threading.Thread(target=emit_for_the_webhook)
        thread.start()
        thread.join(timeout=20)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(schemas, "prepare_update", prepare_while_an_emit_runs)
    response = client.patch(f"/webhooks/{created['id']}", json={"description": "edited"})
    assert response.status_code == 200, response.get_json()
    assert "error" not in outcome, outcome
    assert outcome["seconds"] < 2.5
    with app.app_context():
        D = get_state(app).models.Delivery
        count = app.db.session.execute(sa.select(sa.func.count()).where(D.webhook_id == created["id"])).scalar()
    assert count == 1


def test_edits_lock_the_row_for_no_key_update(app, client):
    """The statements PATCH, rotate-secret and DELETE send (SQLite renders no lock clause at all)."""
    created = client.post("/webhooks", json=BASE).get_json()
    seen: list[str] = []
    with app.app_context():
        engine = app.db.engine

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    try:
        for method, path, body in (
            ("patch", f"/webhooks/{created['id']}", {"description": "x"}),
            ("post", f"/webhooks/{created['id']}/rotate-secret", None),
            ("delete", f"/webhooks/{created['id']}", None),
        ):
            seen.clear()
            response = getattr(client, method)(path, json=body)
            assert response.status_code == 200, response.get_json()
            if engine.dialect.name == "postgresql":
                locking = [s for s in seen if "FOR " in s and "UPDATE" in s]
                assert locking and all("FOR NO KEY UPDATE" in s for s in locking), locking
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


# -- rate_limit (pacing) ------------------------------------------------------------------


def test_rate_limit_defaults_to_the_platforms_published_limit(client) -> None:
    slack = create(client, url="https://hooks.slack.com/services/T000/B000/XXXX")
    assert slack["rate_limit"] is None
    assert slack["effective_rate_limit"] == [{"requests": 1, "per_seconds": 1}]
    discord = create(client, url="https://discord.com/api/webhooks/123/abc")
    assert discord["effective_rate_limit"] == [{"requests": 5, "per_seconds": 2}, {"requests": 30, "per_seconds": 60}]
    plain = create(client)
    assert plain["rate_limit"] is None and plain["effective_rate_limit"] == []


def test_rate_limit_is_settable_on_create_and_patch_and_normalised(app, client) -> None:
    obj = create(client, rate_limit=[{"requests": 10, "per_seconds": 60}, {"per_seconds": 1.5, "requests": 2}])
    expected = [{"requests": 2, "per_seconds": 1.5}, {"requests": 10, "per_seconds": 60}]
    assert obj["rate_limit"] == expected and obj["effective_rate_limit"] == expected
    assert stored(app, obj["id"]).rate_limit == expected
    patched = client.patch(f"/webhooks/{obj['id']}", json={"rate_limit": []}).get_json()
    assert patched["rate_limit"] == [] and patched["effective_rate_limit"] == []
    back = client.patch(f"/webhooks/{obj['id']}", json={"rate_limit": None}).get_json()
    assert back["rate_limit"] is None and back["effective_rate_limit"] == []


def test_rate_limit_from_config_overrides_the_provider_default(make_app) -> None:
    app = make_app(TRAKKR_WEBHOOKS_RATE_LIMITS={"slack": ["3/2s"]})
    obj = create(app.test_client(), url="https://hooks.slack.com/services/T000/B000/YYYY")
    assert obj["effective_rate_limit"] == [{"requests": 3, "per_seconds": 2}]


@pytest.mark.parametrize(
    "value,message",
    [
        ("5/2s", "must be a list of windows"),
        ({"requests": 5, "per_seconds": 2}, "must be a list of windows"),
        ([{"requests": 0, "per_seconds": 2}], "window 0: 'requests' must be between 1 and 100000, got 0"),
        ([{"requests": 5}], "window 0: a window needs both 'requests' and 'per_seconds'"),
        ([{"requests": 5, "per_seconds": 0}], "window 0: 'per_seconds' must be between 0.001 and 86400"),
        ([{"requests": 5, "per_seconds": 2, "burst": 3}], "window 0: unknown key(s) ['burst']"),
        ([{"requests": True, "per_seconds": 2}], "window 0: 'requests' must be a whole number"),
        ([{"requests": 5, "per_seconds": "2"}], "window 0: 'per_seconds' must be a number of seconds"),
        ([[1, 1]] * 9, "at most 8 windows, got 9"),
    ],
)
def test_a_bad_rate_limit_is_400_naming_the_field(client, value, message) -> None:
    response = client.post("/webhooks", json=body(rate_limit=value))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert list(error["fields"]) == ["rate_limit"]
    assert message in error["fields"]["rate_limit"][0]
    obj = create(client)
    response = client.patch(f"/webhooks/{obj['id']}", json={"rate_limit": value})
    assert response.status_code == 400 and list(response.get_json()["error"]["fields"]) == ["rate_limit"]


# -- local development receivers: one setting; every reason at once ------------------------------


def test_a_local_http_receiver_needs_only_allow_private_networks(make_app):
    # REQUIRE_HTTPS stays on (its default): plain http may reach an admitted private receiver.
    client = make_app(TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True).test_client()
    for url in ("http://127.0.0.1:8000/hooks", "http://localhost:5001/hooks", "http://10.1.2.3/hooks"):
        response = client.post("/webhooks", json={**BASE, "url": url})
        assert response.status_code == 201, response.get_json()


def test_http_to_a_public_receiver_still_needs_https(make_app):
    client = make_app(TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True).test_client()
    message = url_error(client.post("/webhooks", json={**BASE, "url": "http://receiver.example.com/hooks"}))
    assert message.startswith("must use https (TRAKKR_WEBHOOKS_REQUIRE_HTTPS is on;")


def test_a_url_refused_for_two_reasons_says_both_in_one_answer(client):
    response = client.post("/webhooks", json={**BASE, "url": "http://127.0.0.1:8000/hooks"})
    assert response.status_code == 400
    https, loopback = response.get_json()["error"]["fields"]["url"]
    assert https.startswith("must use https (TRAKKR_WEBHOOKS_REQUIRE_HTTPS is on;")
    assert loopback.startswith("the URL's host 127.0.0.1, a loopback address;")
    assert "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True" in loopback


def test_a_http_url_with_private_networks_allowed_only_through_a_cidr(make_app):
    client = make_app(TRAKKR_WEBHOOKS_ALLOWED_CIDRS=["10.20.0.0/16"]).test_client()
    assert client.post("/webhooks", json={**BASE, "url": "http://10.20.1.5/hooks"}).status_code == 201
    refused = client.post("/webhooks", json={**BASE, "url": "http://10.30.1.5/hooks"})
    assert len(refused.get_json()["error"]["fields"]["url"]) == 2
