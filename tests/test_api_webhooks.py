"""The webhooks registry routes: create, list (cursor pagination), retrieve, update, delete."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from flask_trakkr_webhooks import get_state, ids
from flask_trakkr_webhooks.models import (
    CANCELLED, FAILED, PENDING, QUEUED, RETRYING, SENDING, SUCCEEDED,
)

BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
OTHER_BRAND = "9d0c7b6a-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OBJECT_KEYS = {
    "id", "object", "url", "events", "brand_id", "provider", "active", "description", "signing_secret",
    "auth_type", "auth_username", "api_key_header", "headers", "template", "created_at", "updated_at",
    "disabled_reason", "disabled_at", "previous_secret_expires_at", "consecutive_failures", "failing_since",
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
    assert obj["signing_secret"] is None
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
        ({"auth_type": "basic", "auth_username": "sk_live_key", "auth_password": ""}, {"auth_username": "sk_live_key"},
         {"auth_password": ""}),
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
    assert all(getattr(row, n) is None for n in ("auth_token", "auth_username", "auth_password",
                                                 "api_key_header", "api_key_value"))


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
