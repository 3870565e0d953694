"""The access policy on every route: hidden brands are 404, refused creates 403, 401 from the host."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from flask_trakkr_webhooks import get_state

ALLOWED = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
HIDDEN = "9d0c7b6a-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
URL = "https://receiver.example.com/hooks"
#: Not in testing mode (so the secure default applies); such an app needs an encryption key.
PRODUCTION = {"TESTING": False, "TRAKKR_WEBHOOKS_ENCRYPTION_KEY": Fernet.generate_key().decode()}


def new_body(brand: str) -> dict:
    return {"url": URL, "events": ["report_completed"], "brand_id": brand}


@pytest.fixture
def calls() -> list[str]:
    """Every brand id the policy was asked about."""
    return []


@pytest.fixture
def policy_app(make_app, calls):
    """A non-testing app whose policy allows ``ALLOWED`` only, with one webhook in each brand."""
    def policy(brand_id: str) -> bool:
        calls.append(brand_id)
        return brand_id == ALLOWED

    app = make_app(policy=policy, **PRODUCTION)
    with app.app_context():
        state = get_state(app)
        webhooks = {
            brand: state.models.Webhook(url=URL, events=["report_completed"], brand_id=brand)
            for brand in (ALLOWED, HIDDEN)
        }
        state.db.session.add_all(webhooks.values())
        state.db.session.commit()
        app.webhook_ids = {brand: w.id for brand, w in webhooks.items()}  # type: ignore[attr-defined]
    calls.clear()
    return app


def test_list_shows_only_allowed_brands(policy_app) -> None:
    data = policy_app.test_client().get("/webhooks").get_json()["data"]
    assert [w["id"] for w in data] == [policy_app.webhook_ids[ALLOWED]]


def test_list_asks_the_policy_once_per_brand(policy_app, calls) -> None:
    client = policy_app.test_client()
    for _ in range(5):
        assert client.post("/webhooks", json=new_body(ALLOWED)).status_code == 201
    calls.clear()
    assert len(client.get("/webhooks").get_json()["data"]) == 6
    assert sorted(calls) == sorted([ALLOWED, HIDDEN])


def test_list_pages_over_hidden_webhooks(policy_app) -> None:
    client = policy_app.test_client()
    mine = [client.post("/webhooks", json=new_body(ALLOWED)).get_json()["id"] for _ in range(3)]
    with policy_app.app_context():
        state = get_state(policy_app)
        state.db.session.add_all(
            state.models.Webhook(url=URL, events=["report_completed"], brand_id=HIDDEN) for _ in range(150)
        )
        state.db.session.commit()
    first = client.get("/webhooks?limit=3").get_json()
    assert [w["id"] for w in first["data"]] == list(reversed(mine)) and first["has_more"] is True
    rest = client.get(f"/webhooks?limit=3&starting_after={mine[0]}").get_json()
    assert [w["id"] for w in rest["data"]] == [policy_app.webhook_ids[ALLOWED]] and rest["has_more"] is False


def test_list_with_a_refused_brand_filter_is_403(policy_app) -> None:
    response = policy_app.test_client().get(f"/webhooks?brand_id={HIDDEN}")
    assert response.status_code == 403
    assert list(response.get_json()["error"]["fields"]) == ["brand_id"]


def test_a_hidden_webhook_is_not_a_cursor(policy_app) -> None:
    response = policy_app.test_client().get(f"/webhooks?starting_after={policy_app.webhook_ids[HIDDEN]}")
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["starting_after"]


@pytest.mark.parametrize("method,json", [("get", None), ("patch", {"active": False}), ("delete", None)])
def test_another_brands_webhook_is_404_and_untouched(policy_app, method, json) -> None:
    client = policy_app.test_client()
    hidden = policy_app.webhook_ids[HIDDEN]
    response = getattr(client, method)(f"/webhooks/{hidden}", json=json)
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "not_found"
    unknown = getattr(client, method)("/webhooks/wh_000000000000000000000000", json=json)
    assert unknown.get_json()["error"]["message"].replace("wh_000000000000000000000000", hidden) == \
        response.get_json()["error"]["message"]
    with policy_app.app_context():
        row = get_state(policy_app).db.session.get(get_state(policy_app).models.Webhook, hidden)
        assert row.active is True and row.deleted_at is None


@pytest.mark.parametrize("method,json", [("get", None), ("patch", {"active": False}), ("delete", None)])
def test_own_webhook_is_reachable(policy_app, method, json) -> None:
    response = getattr(policy_app.test_client(), method)(f"/webhooks/{policy_app.webhook_ids[ALLOWED]}", json=json)
    assert response.status_code == 200


def test_create_for_a_refused_brand_is_403_naming_brand_id(policy_app) -> None:
    response = policy_app.test_client().post("/webhooks", json=new_body(HIDDEN))
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["type"] == "forbidden" and list(error["fields"]) == ["brand_id"]


def test_create_asks_the_policy_with_the_canonical_brand_id(policy_app, calls) -> None:
    response = policy_app.test_client().post("/webhooks", json=new_body(ALLOWED.upper()))
    assert response.status_code == 201
    assert calls == [ALLOWED]


def test_policy_is_asked_before_the_rest_of_the_body_is_judged(policy_app) -> None:
    response = policy_app.test_client().post("/webhooks", json={**new_body(HIDDEN), "url": "nope"})
    assert response.status_code == 403


@pytest.fixture
def auth_app(make_app):
    """A policy that answers 401 without ``Authorization: Bearer good``."""
    from flask import request

    def policy(brand_id: str) -> bool:
        if request.headers.get("Authorization") != "Bearer good":
            raise Unauthorized("Send an API key.")
        return True

    app = make_app(policy=policy, **PRODUCTION)
    client = app.test_client()
    app.webhook_id = client.post(  # type: ignore[attr-defined]
        "/webhooks", json=new_body(ALLOWED), headers={"Authorization": "Bearer good"}
    ).get_json()["id"]
    return app


@pytest.mark.parametrize(
    "method,path,json",
    [
        ("post", "/webhooks", new_body(ALLOWED)),
        ("get", "/webhooks?brand_id=" + ALLOWED, None),
        ("get", "/webhooks", None),
        ("get", "/webhooks/{id}", None),
        ("patch", "/webhooks/{id}", {"active": False}),
        ("delete", "/webhooks/{id}", None),
    ],
)
def test_policy_raising_unauthorized_gives_401_json(auth_app, method, path, json) -> None:
    client = auth_app.test_client()
    response = getattr(client, method)(path.format(id=auth_app.webhook_id), json=json)
    assert response.status_code == 401
    assert response.get_json()["error"] == {"type": "unauthorized", "message": "Send an API key."}


@pytest.mark.parametrize(
    "method,path",
    [("post", "/webhooks"), ("get", "/webhooks"), ("get", "/webhooks/wh_x"), ("patch", "/webhooks/wh_x"),
     ("delete", "/webhooks/wh_x")],
)
def test_without_a_policy_every_route_is_403(make_app, method, path) -> None:
    client = make_app(**PRODUCTION).test_client()
    response = getattr(client, method)(path, json=new_body(ALLOWED) if method in ("post", "patch") else None)
    assert response.status_code == 403
    assert "access_policy" in response.get_json()["error"]["message"]


def test_open_api_setting_allows_requests_without_a_policy(make_app) -> None:
    client = make_app(**PRODUCTION, TRAKKR_WEBHOOKS_OPEN_API=True).test_client()
    assert client.post("/webhooks", json=new_body(ALLOWED)).status_code == 201
    assert client.get("/webhooks").status_code == 200


def test_testing_mode_allows_requests_without_a_policy(client) -> None:
    assert client.post("/webhooks", json=new_body(ALLOWED)).status_code == 201


def test_policy_answers_are_not_kept_across_requests_in_one_app_context(auth_app) -> None:
    client = auth_app.test_client()
    with auth_app.app_context():  # a test or script holding one app context over several requests
        assert client.get("/webhooks", headers={"Authorization": "Bearer good"}).status_code == 200
        assert client.get("/webhooks").status_code == 401
        assert client.get(f"/webhooks/{auth_app.webhook_id}", headers={"Authorization": "Bearer good"}).status_code == 200
        assert client.get(f"/webhooks/{auth_app.webhook_id}").status_code == 401


def test_401_keeps_the_hosts_www_authenticate_header(make_app) -> None:
    def policy(brand_id: str) -> bool:
        raise Unauthorized("Send an API key.", www_authenticate=WWWAuthenticate("Bearer", {"realm": "api"}))

    client = make_app(policy=policy, **PRODUCTION).test_client()
    response = client.post("/webhooks", json=new_body(ALLOWED))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer realm=api"
    assert response.get_json()["error"]["type"] == "unauthorized"
