"""Tenant isolation: two brands, two API keys; key A manages brand A only.

Every route of the blueprint is listed in :data:`CASES`; the parametrization comes from the
app's ``url_map``, so a new route without a case fails :func:`test_every_route_has_an_isolation_case`
and :func:`test_cross_brand_access_is_refused`. Across brands the answer is 404 (the other
brand's webhook or delivery does not exist for you), 403 where the request names the other
brand (create, ``brand_id`` filter), and nothing changes. List endpoints never show the
other brand's data, on any page.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from werkzeug.exceptions import Unauthorized

from e2e.helpers import clear_queue
from flask_trakkr_webhooks import TrakkrWebhooks, get_state
from flask_trakkr_webhooks.api import BLUEPRINT_NAME
from flask_trakkr_webhooks.openapi import OPERATIONS

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
            routes += [(endpoint, rule.rule, method) for method in sorted(set(documented or rule.methods) - {"HEAD", "OPTIONS"})]
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
            response = w.call("POST", "/webhooks", headers, json={
                "url": f"https://{name}{n}.example/hooks", "events": ["visibility_changed"], "brand_id": brand,
                "signing_secret": f"{name}-secret-0123456789", "auth_type": "bearer", "auth_token": f"{name}-token"})
            assert response.status_code == 201, response.get_json()
            w.ids[f"{name}{n}"] = response.get_json()["id"]
    with app.app_context():
        for brand in (BRAND_A, BRAND_B, BRAND_A):
            app.webhooks.emit("visibility_changed", brand={"id": brand, "name": brand[:4], "website": "https://x.example"},
                              data={"previous_score": 1.0, "current_score": 2.0, "change_percent": 100.0})
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
    assert response.get_json()["error"]["fields"] == {"brand_id": ["cannot be changed; create a webhook for the other brand"]}


def _delete(w: World) -> None:
    not_found(w.call("DELETE", f"/webhooks/{w.ids['b1']}"), "webhook", w.ids["b1"])


def _list_deliveries(w: World) -> None:
    not_found(w.call("GET", f"/webhooks/{w.ids['b1']}/deliveries"), "webhook", w.ids["b1"])
    not_found(w.call("GET", f"/webhooks/{w.ids['b1']}/deliveries", query_string={"status": "pending"}), "webhook",
              w.ids["b1"])
    mine = w.call("GET", f"/webhooks/{w.ids['a1']}/deliveries").get_json()["data"]
    assert {d["id"] for d in mine} == set(w.ids["a_deliveries"])
    with w.app.app_context():
        m = get_state(w.app).models
        brands = {w.app.db.session.get(m.Event, d["event_id"]).brand_id for d in mine}
    assert brands == {BRAND_A}
    response = w.call("GET", f"/webhooks/{w.ids['a1']}/deliveries", query_string={"starting_after": w.ids["b_deliveries"][0]})
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"] == {"starting_after": ["must be the id of a delivery of this webhook"]}


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


@pytest.mark.parametrize("endpoint,rule,method", [r for r in ROUTES if "<webhook_id>" in r[1]],
                         ids=[f"{m} {r}" for _, r, m in ROUTES if "<webhook_id>" in r])
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
    kwargs = {"json": {"url": "https://x.example/h", "events": ["visibility_changed"], "brand_id": BRAND_A}} \
        if endpoint == "create_webhook" else {}
    response = world.call(method, path, {"X-Nothing": "1"}, **kwargs)
    if endpoint == "openapi":
        assert response.status_code == 200
        return
    assert response.status_code == 401, (method, path, response.get_json())
    assert response.get_json()["error"]["type"] == "unauthorized"
