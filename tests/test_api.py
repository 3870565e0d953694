"""The blueprint and its request guards (``flask_trakkr_webhooks/api/__init__.py``): the access
policy, request-level failures and tenant isolation, on every route.

* The access policy on every route: hidden brands are 404, refused creates 403, 401 from the host.
* Request-level failures: bad JSON, wrong content type, oversized bodies (every body route refuses an
  oversized body with 413 before anything else, a non-JSON one with 415), routing errors.
* Tenant isolation: two brands, two API keys; key A manages brand A only.

  Every route of the blueprint is listed in :data:`CASES`; the parametrization comes from the
  app's ``url_map``, so a new route without a case fails :func:`test_every_route_has_an_isolation_case`
  and :func:`test_cross_brand_access_is_refused`. Across brands the answer is 404 (the other
  brand's webhook or delivery does not exist for you), 403 where the request names the other
  brand (create, ``brand_id`` filter), and nothing changes. List endpoints never show the
  other brand's data, on any page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from e2e.helpers import clear_queue
from flask_trakkr_webhooks import TrakkrWebhooks, get_state
from flask_trakkr_webhooks.api import BLUEPRINT_NAME
from flask_trakkr_webhooks.openapi import OPERATIONS

ALLOWED = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


HIDDEN = "9d0c7b6a-1e2f-4a3b-8c4d-5e6f7a8b9c0d"


URL = "https://receiver.example.com/hooks"


#: Not in testing mode (so the secure default applies); such an app needs an encryption key.
PRODUCTION = {"TESTING": False, "TRAKKR_WEBHOOKS_ENCRYPTION_KEY": "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="}


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
    assert (
        unknown.get_json()["error"]["message"].replace("wh_000000000000000000000000", hidden)
        == response.get_json()["error"]["message"]
    )
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
    [
        ("post", "/webhooks"),
        ("get", "/webhooks"),
        ("get", "/webhooks/wh_x"),
        ("patch", "/webhooks/wh_x"),
        ("delete", "/webhooks/wh_x"),
    ],
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
        assert (
            client.get(f"/webhooks/{auth_app.webhook_id}", headers={"Authorization": "Bearer good"}).status_code == 200
        )
        assert client.get(f"/webhooks/{auth_app.webhook_id}").status_code == 401


def test_401_keeps_the_hosts_www_authenticate_header(make_app) -> None:
    def policy(brand_id: str) -> bool:
        raise Unauthorized("Send an API key.", www_authenticate=WWWAuthenticate("Bearer", {"realm": "api"}))

    client = make_app(policy=policy, **PRODUCTION).test_client()
    response = client.post("/webhooks", json=new_body(ALLOWED))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer realm=api"
    assert response.get_json()["error"]["type"] == "unauthorized"


BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


VALID = f'{{"url": "https://receiver.example.com/h", "events": ["report_completed"], "brand_id": "{BRAND}"}}'


@pytest.fixture
def webhook_id(client) -> str:
    response = client.post("/webhooks", data=VALID, content_type="application/json")
    assert response.status_code == 201
    return response.get_json()["id"]


def assert_error(response, status: int, type_: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["type"] == type_ and isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert field in error["fields"]
    return error


BAD_JSON = [
    pytest.param(b"{", id="truncated"),
    pytest.param(b"{'url': 1}", id="single-quotes"),
    pytest.param(b'{"url": "x",}', id="trailing-comma"),
    pytest.param(b'{"a": NaN}', id="nan"),
    pytest.param(b'{"a": Infinity}', id="infinity"),
    pytest.param(b'{"a": -Infinity}', id="minus-infinity"),
    pytest.param(b'{"a": 1e999}', id="float-overflow"),
    pytest.param(b'{"a": 1, "a": 2}', id="duplicate-key"),
    pytest.param(b'{"a": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b"[" * 20000 + b"]" * 20000, id="nested-too-deep"),
    pytest.param(b'{"a": ' + b"9" * 5000 + b"}", id="huge-integer"),
]


@pytest.mark.parametrize("raw", BAD_JSON)
@pytest.mark.parametrize("method", ["post", "patch"])
def test_malformed_json_is_400(client, webhook_id, method, raw) -> None:
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    error = assert_error(
        getattr(client, method)(path, data=raw, content_type="application/json"), 400, "invalid_request"
    )
    assert "JSON" in error["message"] or "UTF-8" in error["message"]


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null", b"true", b"[{}]"])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_json_that_is_not_an_object_is_400(client, webhook_id, method, raw) -> None:
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    error = assert_error(
        getattr(client, method)(path, data=raw, content_type="application/json"), 400, "invalid_request"
    )
    assert "must be a JSON object" in error["message"]


@pytest.mark.parametrize("method", ["post", "patch"])
def test_empty_body_is_400(client, webhook_id, method) -> None:
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    error = assert_error(getattr(client, method)(path, content_type="application/json"), 400, "invalid_request")
    assert "empty" in error["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_non_json_content_type_is_415(client, webhook_id, method, content_type) -> None:
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    headers = {"Content-Type": content_type} if content_type else {}
    response = getattr(client, method)(path, data=VALID.encode(), headers=headers)
    assert_error(response, 415, "unsupported_media_type", "Content-Type")


def test_json_suffix_media_types_are_accepted(client) -> None:
    response = client.post("/webhooks", data=VALID, content_type="application/merge-patch+json; charset=utf-8")
    assert response.status_code == 201


@pytest.mark.parametrize("method", ["post", "patch"])
def test_oversized_body_is_413(make_app, method) -> None:
    client = make_app(TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES=2048).test_client()
    webhook_id = client.post("/webhooks", data=VALID, content_type="application/json").get_json()["id"]
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    big = '{"description": "%s"}' % ("x" * 3000)
    assert_error(getattr(client, method)(path, data=big, content_type="application/json"), 413, "request_too_large")


def test_oversized_body_without_content_length_is_413(make_app) -> None:
    import io

    client = make_app(TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES=2048).test_client()
    stream = io.BytesIO(b'{"description": "' + b"x" * 5000 + b'"}')
    response = client.post(
        "/webhooks",
        input_stream=stream,
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        # What a WSGI server sets for a chunked body (the test client does not).
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_error(response, 413, "request_too_large")


@pytest.mark.parametrize(
    "method,path",
    [
        ("put", "/webhooks"),
        ("patch", "/webhooks"),
        ("delete", "/webhooks"),
        ("put", "/webhooks/{id}"),
        ("post", "/webhooks/{id}"),
    ],
)
def test_wrong_method_is_405_with_allow(client, webhook_id, method, path) -> None:
    response = getattr(client, method)(path.format(id=webhook_id), data=VALID, content_type="application/json")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"]


@pytest.mark.parametrize("path", ["/webhooks/", "/webhooks/{id}/nope", "/webhooks/wh_000000000000000000000000"])
def test_unknown_paths_are_404_json(client, webhook_id, path) -> None:
    assert_error(client.get(path.format(id=webhook_id)), 404, "not_found")


@pytest.mark.parametrize("method", ["get", "delete"])
def test_unknown_query_parameter_on_one_webhook_is_400(client, webhook_id, method) -> None:
    assert_error(getattr(client, method)(f"/webhooks/{webhook_id}?expand=all"), 400, "invalid_request", "expand")


def test_pages_of_the_host_app_are_left_alone(app, client) -> None:
    @app.get("/elsewhere")
    def elsewhere():
        return "host page"

    assert client.get("/elsewhere").get_data(as_text=True) == "host page"
    assert client.get("/missing").mimetype == "text/html"


BRAND_A = "aaaaaaaa-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


BRAND_B = "bbbbbbbb-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


KEYS = {"key-a": BRAND_A, "key-b": BRAND_B}


A = {"Authorization": "Bearer key-a"}


B = {"Authorization": "Bearer key-b"}


def policy(brand_id: str) -> bool:
    """The host's policy: an API key in ``Authorization: Bearer``, valid for its own brand only."""
    key = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if key not in KEYS:
        raise Unauthorized("Send an API key: Authorization: Bearer <key>.")
    return KEYS[key] == brand_id


def _routes() -> list[tuple[str, str, str]]:
    """(endpoint, rule, method) of every route of the blueprint, read from a throwaway app."""
    app = Flask("routes_only")
    app.config.update(TESTING=True, SQLALCHEMY_DATABASE_URI="sqlite://")
    db = SQLAlchemy()
    db.init_app(app)
    TrakkrWebhooks().init_app(app, db)
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(BLUEPRINT_NAME + "."):
            endpoint = rule.endpoint.split(".", 1)[1]
            # The document's rule takes every method only to answer the others 405.
            documented = getattr(OPERATIONS.get(endpoint), "methods", None)
            routes += [
                (endpoint, rule.rule, method)
                for method in sorted(set(documented or rule.methods) - {"HEAD", "OPTIONS"})
            ]
    return sorted(routes)


ROUTES = _routes()


class World:
    """The seeded app: per brand a webhook (with two deliveries) and a second webhook."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.ids: dict[str, Any] = {}

    def call(self, method: str, path: str, headers: dict | None = None, **kwargs: Any) -> Any:
        return self.client.open(path, method=method, headers=headers or A, **kwargs)

    def snapshot(self) -> dict[str, Any]:
        """Every row of every table, to prove a refused request changed nothing."""
        m = get_state(self.app).models
        with self.app.app_context():
            session = self.app.db.session
            return {
                model.__tablename__: sorted(
                    tuple(sorted((c.name, repr(getattr(row, c.key))) for c in model.__table__.columns))
                    for row in session.execute(sa.select(model)).scalars()
                )
                for model in (m.Webhook, m.Event, m.Delivery, m.Attempt)
            }


@pytest.fixture
def world(make_app) -> Iterator[World]:
    app = make_app(policy=policy)
    w = World(app)
    for brand, headers, name in ((BRAND_A, A, "a"), (BRAND_B, B, "b")):
        for n in (1, 2):
            response = w.call(
                "POST",
                "/webhooks",
                headers,
                json={
                    "url": f"https://{name}{n}.example/hooks",
                    "events": ["visibility_changed"],
                    "brand_id": brand,
                    "signing_secret": f"{name}-secret-0123456789",
                    "auth_type": "bearer",
                    "auth_token": f"{name}-token",
                },
            )
            assert response.status_code == 201, response.get_json()
            w.ids[f"{name}{n}"] = response.get_json()["id"]
    with app.app_context():
        for brand in (BRAND_A, BRAND_B, BRAND_A):
            app.webhooks.emit(
                "visibility_changed",
                brand={"id": brand, "name": brand[:4], "website": "https://x.example"},
                data={"previous_score": 1.0, "current_score": 2.0, "change_percent": 100.0},
            )
        app.db.session.commit()
    for name, headers in (("a", A), ("b", B)):
        listed = w.call("GET", f"/webhooks/{w.ids[name + '1']}/deliveries", headers).get_json()["data"]
        w.ids[f"{name}_deliveries"] = [d["id"] for d in listed]
    assert len(w.ids["a_deliveries"]) == 2 and len(w.ids["b_deliveries"]) == 1
    yield w
    clear_queue(app)


def not_found(response: Any, what: str, shown: str) -> None:
    """404 with exactly the answer an id that never existed gets: the other brand's row is not revealed."""
    assert response.status_code == 404, response.get_json()
    assert response.get_json() == {"error": {"type": "not_found", "message": f"No such {what}: {shown!r}."}}


# -- one case per route: key A against brand B ---------------------------------------------------------


def _create(w: World) -> None:
    body = {"url": "https://evil.example/h", "events": ["visibility_changed"]}
    for brand_id in (BRAND_B, BRAND_B.upper(), BRAND_B.replace("-", "")):  # every spelling of brand B
        response = w.call("POST", "/webhooks", json={**body, "brand_id": brand_id})
        assert response.status_code == 403, brand_id
        assert response.get_json()["error"]["fields"] == {"brand_id": ["the access policy refused this brand"]}
    assert w.call("POST", "/webhooks", json={**body, "brand_id": BRAND_A}).status_code == 201  # control


def _list(w: World) -> None:
    assert _visible_webhooks(w, A) == {w.ids["a1"], w.ids["a2"]}
    assert _visible_webhooks(w, B) == {w.ids["b1"], w.ids["b2"]}
    for brand_id in (BRAND_B, BRAND_B.upper()):
        response = w.call("GET", "/webhooks", query_string={"brand_id": brand_id})
        assert response.status_code == 403
    # The other brand's webhook is no cursor: same answer as an id that never existed.
    for cursor in (w.ids["b1"], "wh_doesnotexist"):
        response = w.call("GET", "/webhooks", query_string={"starting_after": cursor})
        assert response.status_code == 400
        assert response.get_json()["error"]["fields"] == {"starting_after": ["must be the id of a webhook you can see"]}


def _visible_webhooks(w: World, headers: dict) -> set[str]:
    """Every webhook id a key sees, paging one at a time (pages never include the other brand)."""
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 1, **({"starting_after": cursor} if cursor else {})}
        page = w.call("GET", "/webhooks", headers, query_string=query).get_json()
        seen += [item["id"] for item in page["data"]]
        assert {item["brand_id"] for item in page["data"]} <= {KEYS[headers["Authorization"][7:]]}
        if not page["has_more"]:
            break
        cursor = seen[-1]
    full = w.call("GET", "/webhooks", headers).get_json()["data"]
    assert [item["id"] for item in full] == seen
    return set(seen)


def _get(w: World) -> None:
    not_found(w.call("GET", f"/webhooks/{w.ids['b1']}"), "webhook", w.ids["b1"])


def _update(w: World) -> None:
    for body in ({"url": "https://evil.example/h"}, {"active": False}, {"brand_id": BRAND_A}, {}):
        not_found(w.call("PATCH", f"/webhooks/{w.ids['b1']}", json=body), "webhook", w.ids["b1"])
    # Nor can a webhook hop to the other brand.
    response = w.call("PATCH", f"/webhooks/{w.ids['a1']}", json={"brand_id": BRAND_B})
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"] == {
        "brand_id": ["cannot be changed; create a webhook for the other brand"]
    }


def _delete(w: World) -> None:
    not_found(w.call("DELETE", f"/webhooks/{w.ids['b1']}"), "webhook", w.ids["b1"])


def _list_deliveries(w: World) -> None:
    not_found(w.call("GET", f"/webhooks/{w.ids['b1']}/deliveries"), "webhook", w.ids["b1"])
    not_found(
        w.call("GET", f"/webhooks/{w.ids['b1']}/deliveries", query_string={"status": "pending"}), "webhook", w.ids["b1"]
    )
    mine = w.call("GET", f"/webhooks/{w.ids['a1']}/deliveries").get_json()["data"]
    assert {d["id"] for d in mine} == set(w.ids["a_deliveries"])
    with w.app.app_context():
        m = get_state(w.app).models
        brands = {w.app.db.session.get(m.Event, d["event_id"]).brand_id for d in mine}
    assert brands == {BRAND_A}
    response = w.call(
        "GET", f"/webhooks/{w.ids['a1']}/deliveries", query_string={"starting_after": w.ids["b_deliveries"][0]}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"] == {
        "starting_after": ["must be the id of a delivery of this webhook"]
    }


def _get_delivery(w: World) -> None:
    theirs = w.ids["b_deliveries"][0]
    not_found(w.call("GET", f"/webhooks/{w.ids['b1']}/deliveries/{theirs}"), "webhook", w.ids["b1"])
    not_found(w.call("GET", f"/webhooks/{w.ids['a1']}/deliveries/{theirs}"), "delivery", theirs)


def _redeliver(w: World) -> None:
    theirs = w.ids["b_deliveries"][0]
    not_found(w.call("POST", f"/webhooks/{w.ids['b1']}/deliveries/{theirs}/redeliver"), "webhook", w.ids["b1"])
    not_found(w.call("POST", f"/webhooks/{w.ids['a1']}/deliveries/{theirs}/redeliver"), "delivery", theirs)
    not_found(w.call("POST", f"/webhooks/{w.ids['a1']}/deliveries/{theirs}/redeliver", json={}), "delivery", theirs)


def _test(w: World) -> None:
    for body in (None, {}, {"event": "visibility_changed"}):
        kwargs = {} if body is None else {"json": body}
        not_found(w.call("POST", f"/webhooks/{w.ids['b1']}/test", **kwargs), "webhook", w.ids["b1"])


def _preview(w: World) -> None:
    for body in (None, {}, {"event": "visibility_changed"}, {"event": "no_such_type"}):
        kwargs = {} if body is None else {"json": body}
        not_found(w.call("POST", f"/webhooks/{w.ids['b1']}/preview", **kwargs), "webhook", w.ids["b1"])
    assert w.call("POST", f"/webhooks/{w.ids['a1']}/preview").status_code == 200  # control


def _rotate_secret(w: World) -> None:
    for body in (None, {}, {"signing_secret": "taken-over-secret-0123"}, {"signing_secret": "generate"}):
        kwargs = {} if body is None else {"json": body}
        not_found(w.call("POST", f"/webhooks/{w.ids['b1']}/rotate-secret", **kwargs), "webhook", w.ids["b1"])
    assert w.call("GET", f"/webhooks/{w.ids['b1']}", B).get_json()["signing_secret"] == "b-secret-0123456789"


def _replay(w: World) -> None:
    every = {"since": "2000-01-01T00:00:00Z", "status": ["failed", "cancelled", "missed"]}
    for body in (every, {"since": "2000-01-01T00:00:00Z"}, {}):
        not_found(w.call("POST", f"/webhooks/{w.ids['b1']}/replay", json=body), "webhook", w.ids["b1"])
    # Brand B's event has no delivery to a1, yet it is never a "missed" event of brand A's webhook.
    mine = w.call("POST", f"/webhooks/{w.ids['a1']}/replay", json=every)
    assert mine.status_code == 202 and mine.get_json()["count"] == 0


def _openapi(w: World) -> None:
    # Public and the same for everyone: it holds no brand's data.
    answers = [w.call("GET", "/webhooks/openapi.json", headers).get_json() for headers in (A, B, {"X": "none"})]
    assert answers[0] == answers[1] == answers[2]
    text = str(answers[0])
    assert not any(value in text for value in (BRAND_A, BRAND_B, *[v for v in w.ids.values() if isinstance(v, str)]))


#: endpoint -> the cross-brand attempts for it. Add one for every new route.
CASES: dict[str, Callable[[World], None]] = {
    "create_webhook": _create,
    "list_webhooks": _list,
    "get_webhook": _get,
    "update_webhook": _update,
    "delete_webhook": _delete,
    "list_deliveries": _list_deliveries,
    "get_delivery": _get_delivery,
    "redeliver": _redeliver,
    "test_webhook": _test,
    "preview_webhook": _preview,
    "rotate_secret": _rotate_secret,
    "replay_webhook": _replay,
    "openapi": _openapi,
}


#: Routes not scoped to a webhook (no ``<webhook_id>``): the generic 404 sweep skips them.
UNSCOPED = {"create_webhook", "list_webhooks", "openapi"}


def test_every_route_has_an_isolation_case():
    missing = sorted({endpoint for endpoint, _, _ in ROUTES} - set(CASES))
    assert missing == [], f"add a tenant-isolation case to CASES for {missing}"
    assert len({endpoint for endpoint, _, _ in ROUTES}) >= 10


@pytest.mark.parametrize("endpoint,rule,method", ROUTES, ids=[f"{m} {r}" for _, r, m in ROUTES])
def test_cross_brand_access_is_refused(world, endpoint, rule, method):
    case = CASES.get(endpoint)
    if case is None:
        pytest.fail(f"no tenant-isolation case for {method} {rule} ({endpoint}): add one to CASES")
    before = world.snapshot()
    unchanged = endpoint not in ("create_webhook",)  # its control creates one webhook of brand A
    case(world)
    if unchanged:
        assert world.snapshot() == before
    # Brand B's own view is untouched.
    for name in ("b1", "b2"):
        assert world.call("GET", f"/webhooks/{world.ids[name]}", B).status_code == 200


def _fill(rule: str, w: World, webhook: str, delivery: str) -> str:
    values = {"webhook_id": w.ids[webhook], "delivery_id": delivery}
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m[1]], rule)


@pytest.mark.parametrize(
    "endpoint,rule,method",
    [r for r in ROUTES if "<webhook_id>" in r[1]],
    ids=[f"{m} {r}" for _, r, m in ROUTES if "<webhook_id>" in r],
)
def test_every_webhook_scoped_route_is_404_for_the_other_brand(world, endpoint, rule, method):
    """A sweep over the url_map: any route under /<webhook_id> answers key A 404 for brand B's webhook,
    with any body, and changes nothing (new routes are covered before anyone writes their case)."""
    before = world.snapshot()
    path = _fill(rule, world, "b1", world.ids["b_deliveries"][0])
    for kwargs in ({}, {"json": {}}, {"json": {"status": "failed", "since": "2020-01-01T00:00:00Z"}}):
        response = world.call(method, path, **kwargs)
        assert response.status_code == 404, (method, path, kwargs, response.get_json())
        assert response.get_json()["error"]["type"] == "not_found"
    assert world.snapshot() == before


@pytest.mark.parametrize("endpoint,rule,method", ROUTES, ids=[f"{m} {r}" for _, r, m in ROUTES])
def test_without_a_key_no_route_answers_data(world, endpoint, rule, method):
    """No key: 401 wherever a brand's data would be touched; never a 2xx with data (the document excepted)."""
    path = _fill(rule, world, "a1", world.ids["a_deliveries"][0])
    kwargs = (
        {"json": {"url": "https://x.example/h", "events": ["visibility_changed"], "brand_id": BRAND_A}}
        if endpoint == "create_webhook"
        else {}
    )
    response = world.call(method, path, {"X-Nothing": "1"}, **kwargs)
    if endpoint == "openapi":
        assert response.status_code == 200
        return
    assert response.status_code == 401, (method, path, response.get_json())
    assert response.get_json()["error"]["type"] == "unauthorized"


def _body_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every API route that takes a body, with placeholder ids."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("trakkr_webhooks."):
            continue
        path = re.sub(
            r"<(?:[^:<>]+:)?([^<>]+)>",
            lambda m: {"webhook_id": "wh_x", "delivery_id": "dlv_x"}.get(m[1], "x"),
            rule.rule,
        )
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
        assert response.get_json() == {
            "error": {"type": "request_too_large", "message": "Request body is larger than the limit of 2048 bytes."}
        }


def test_every_body_route_refuses_a_non_json_body_with_415(limited):
    app, client, _ = limited
    for method, path in _body_routes(app):
        response = client.open(path, method=method, data="url=x", content_type="application/x-www-form-urlencoded")
        assert response.status_code == 415, (method, path)
        error = response.get_json()["error"]
        assert error["type"] == "unsupported_media_type"
        assert error["fields"] == {"Content-Type": ["expected application/json, got application/x-www-form-urlencoded"]}


# -- issue 19 item 9: paths with "//" under the prefix answer the JSON error shape -----------------


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks//wh_0123456789abcdef01234567",
        "/webhooks///wh_0123456789abcdef01234567/test",
        "/webhooks//",
        "/webhooks/wh_x//deliveries",
        "/webhooks/wh_0123456789abcdef01234567/deliveries//dlv_x",
    ],
)
def test_double_slashes_under_the_prefix_answer_json_not_a_redirect(client, path) -> None:
    response = client.get(path)
    assert response.status_code in (404, 405), (response.status_code, response.headers.get("Location"))
    assert response.is_json
    error = response.get_json()["error"]
    assert error["type"] in ("not_found", "method_not_allowed") and error["message"]
    assert "Location" not in response.headers


def test_double_slashes_outside_the_prefix_are_left_to_the_host(make_app) -> None:
    app = make_app()
    app.add_url_rule("/host/page", "host_page", lambda: "ok")
    response = app.test_client().get("/host//page")
    assert response.status_code == 308  # werkzeug's own behaviour for the host's pages
