"""The deliveries routes (``flask_trakkr_webhooks/api/deliveries.py``): log, detail, redeliver,
test send (``POST /webhooks/<id>/test``); errors and the access policy.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from rq import Queue

from e2e.helpers import BRAND_ID, emit, make_webhook
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import crypto, get_state, ids
from flask_trakkr_webhooks.errors import ERROR_TYPES
from receiver_kit import verify_signature

HIDDEN_BRAND = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4"  # fixed: test ids stay stable under xdist


def _delivery_ids(app, webhook_id):
    with app.app_context():
        D = get_state(app).models.Delivery
        return [d.id for d in D.query.filter_by(webhook_id=webhook_id).order_by(D.created_at, D.id)]


def _age(app, delivery_ids):
    """Spread created_at one second apart, oldest first (a stable 'newest first' order)."""
    with app.app_context():
        D = get_state(app).models.Delivery
        base = ids.utcnow() - timedelta(hours=1)
        for n, delivery_id in enumerate(delivery_ids):
            D.query.filter_by(id=delivery_id).update({"created_at": base + timedelta(seconds=n)})
        app.db.session.commit()


def _error(response, status, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()["error"]
    assert body["message"]
    if field is not None:
        assert field in body["fields"], body
    return body


# -- list and detail -------------------------------------------------------------------------------


def test_list_is_newest_first_with_cursor_pagination(brand_app, brand_client):
    hook = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    for _ in range(5):
        emit(brand_app)
    oldest_first = _delivery_ids(brand_app, hook)
    _age(brand_app, oldest_first)
    newest_first = oldest_first[::-1]

    page = brand_client.get(f"/webhooks/{hook}/deliveries?limit=2").get_json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [d["id"] for d in page["data"]] == newest_first[:2]
    item = page["data"][0]
    assert item["object"] == "delivery" and item["webhook_id"] == hook
    assert item["event_type"] == "visibility_changed" and item["event_id"].startswith("evt_")
    assert item["status"] == "queued" and item["is_test"] is False and item["attempt_count"] == 0
    assert item["created_at"].endswith("Z") and "attempts" not in item

    page = brand_client.get(f"/webhooks/{hook}/deliveries?limit=2&starting_after={newest_first[1]}").get_json()
    assert [d["id"] for d in page["data"]] == newest_first[2:4] and page["has_more"] is True
    page = brand_client.get(f"/webhooks/{hook}/deliveries?limit=2&starting_after={newest_first[3]}").get_json()
    assert [d["id"] for d in page["data"]] == newest_first[4:] and page["has_more"] is False


def test_list_filters_by_status(brand_app, brand_client):
    hook = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    emit(brand_app)
    emit(brand_app)
    first, second = _delivery_ids(brand_app, hook)
    with brand_app.app_context():
        get_state(brand_app).models.Delivery.query.filter_by(id=first).update({"status": "failed"})
        brand_app.db.session.commit()
    assert [d["id"] for d in brand_client.get(f"/webhooks/{hook}/deliveries?status=failed").get_json()["data"]] == [
        first
    ]
    assert [d["id"] for d in brand_client.get(f"/webhooks/{hook}/deliveries?status=queued").get_json()["data"]] == [
        second
    ]
    assert brand_client.get(f"/webhooks/{hook}/deliveries?status=succeeded").get_json()["data"] == []


@pytest.mark.parametrize(
    "query,field",
    [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1000", "limit"),
        ("starting_after=dlv_unknown", "starting_after"),
        ("starting_after=nonsense", "starting_after"),
        ("colour=blue", "colour"),
        ("status=failed&status=queued", "status"),
    ],
)
def test_list_rejects_bad_query_parameters(brand_app, brand_client, query, field):
    hook = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    assert _error(brand_client.get(f"/webhooks/{hook}/deliveries?{query}"), 400, field)["type"] == ERROR_TYPES[400]


def test_detail_has_the_payload_and_every_attempt(brand_app, brand_client, receiver):
    hook = make_webhook(brand_app, receiver.url + "/hooks")
    receiver.script(Reply(500, body=b"oops"))
    event_id = emit(brand_app)
    [delivery_id] = _delivery_ids(brand_app, hook)
    with brand_app.app_context():
        from flask_trakkr_webhooks import jobs

        jobs.process_batch(get_state(brand_app), [delivery_id])
    body = brand_client.get(f"/webhooks/{hook}/deliveries/{delivery_id}").get_json()
    assert body["id"] == delivery_id and body["status"] == "retrying" and body["attempt_count"] == 1
    assert body["payload"]["meta"]["event_id"] == event_id
    assert body["next_attempt_at"].endswith("Z") and body["last_status_code"] == 500
    [attempt] = body["attempts"]
    assert attempt["object"] == "attempt" and attempt["number"] == 1
    assert attempt["status_code"] == 500 and attempt["outcome"] == "retry"
    assert attempt["response_body"] == "oops" and attempt["duration_ms"] >= 0
    assert attempt["started_at"].endswith("Z") and attempt["next_retry_at"] == body["next_attempt_at"]
    assert set(attempt) == {
        "id",
        "object",
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "outcome",
        "error_type",
        "error_message",
        "response_headers",
        "response_body",
        "next_retry_at",
    }


# -- access ------------------------------------------------------------------------------------------


def test_other_brands_deleted_webhooks_and_foreign_deliveries_are_404(brand_app, brand_client):
    hidden = make_webhook(brand_app, "http://127.0.0.1:9/hooks", brand_id=HIDDEN_BRAND)
    mine = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    other = make_webhook(brand_app, "http://127.0.0.1:9/other")
    gone = make_webhook(brand_app, "http://127.0.0.1:9/gone", deleted_at=ids.utcnow())
    emit(brand_app)
    emit(brand_app, brand={"id": HIDDEN_BRAND, "name": "Hidden"})
    [mine_delivery] = _delivery_ids(brand_app, mine)
    [hidden_delivery] = _delivery_ids(brand_app, hidden)
    paths = [
        ("GET", f"/webhooks/{hidden}/deliveries"),
        ("GET", f"/webhooks/{hidden}/deliveries/{hidden_delivery}"),
        ("POST", f"/webhooks/{hidden}/deliveries/{hidden_delivery}/redeliver"),
        ("POST", f"/webhooks/{hidden}/test"),
        ("GET", f"/webhooks/{gone}/deliveries"),
        ("POST", f"/webhooks/{gone}/test"),
        ("GET", "/webhooks/wh_doesnotexist/deliveries"),
        ("GET", f"/webhooks/{other}/deliveries/{mine_delivery}"),  # a delivery of another webhook
        ("POST", f"/webhooks/{other}/deliveries/{mine_delivery}/redeliver"),
        ("GET", f"/webhooks/{mine}/deliveries/not-a-delivery-id"),
        ("GET", f"/webhooks/{mine}/deliveries/dlv_unknown"),
    ]
    for method, path in paths:
        body = _error(brand_client.open(path, method=method), 404)
        assert body["type"] == "not_found", path


def test_method_not_allowed_is_json(brand_app, brand_client):
    hook = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    response = brand_client.delete(f"/webhooks/{hook}/deliveries")
    assert response.status_code == 405 and response.get_json()["error"]["type"] == "method_not_allowed"


# -- redeliver -------------------------------------------------------------------------------------


def test_redeliver_makes_a_new_delivery_of_the_same_event(brand_app, brand_client):
    hook = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    event_id = emit(brand_app)
    [original] = _delivery_ids(brand_app, hook)
    with brand_app.app_context():
        get_state(brand_app).models.Delivery.query.filter_by(id=original).update({"status": "failed"})
        brand_app.db.session.commit()
    response = brand_client.post(f"/webhooks/{hook}/deliveries/{original}/redeliver")
    assert response.status_code == 202
    body = response.get_json()
    assert body["id"] != original and body["id"].startswith("dlv_")
    assert body["event_id"] == event_id and body["payload"]["meta"]["event_id"] == event_id
    assert body["status"] == "queued" and body["attempts"] == []  # enqueued when the request committed
    state = get_state(brand_app)
    queue = Queue(state.settings.queue, connection=state.redis())
    assert [body["id"]] in [job.args[0] for job in queue.jobs]
    assert brand_client.get(f"/webhooks/{hook}/deliveries/{original}").get_json()["status"] == "failed"


def test_redeliver_refusals(brand_app, brand_client):
    hook = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    emit(brand_app)
    [original] = _delivery_ids(brand_app, hook)
    assert (
        _error(
            brand_client.post(f"/webhooks/{hook}/deliveries/{original}/redeliver", json={"force": True}), 400, "force"
        )["type"]
        == ERROR_TYPES[400]
    )
    assert (
        _error(
            brand_client.post(f"/webhooks/{hook}/deliveries/{original}/redeliver", data="x", content_type="text/plain"),
            415,
        )["type"]
        == ERROR_TYPES[415]
    )
    with brand_app.app_context():
        W = get_state(brand_app).models.Webhook
        W.query.filter_by(id=hook).update({"active": False})
        brand_app.db.session.commit()
    assert _error(brand_client.post(f"/webhooks/{hook}/deliveries/{original}/redeliver"), 409)["type"] == "conflict"


# -- test sends ------------------------------------------------------------------------------------


def test_test_send_is_one_signed_authenticated_attempt_logged_as_a_delivery(brand_app, brand_client, receiver):
    hook = make_webhook(
        brand_app, receiver.url + "/hooks", events=["citation_gained", "citation_lost"], headers={"X-Team": "growth"}
    )
    response = brand_client.post(f"/webhooks/{hook}/test")
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True and body["status_code"] == 200 and body["error"] is None
    assert body["duration_ms"] > 0
    [got] = receiver.received
    assert (
        got.signature_ok and got.auth_ok and verify_signature(got.body, got.headers["X-Trakkr-Signature"], "whsec_e2e")
    )
    assert got.headers["X-Trakkr-Event"] == "citation_gained" and got.headers["X-Team"] == "growth"
    payload = got.json
    assert payload["meta"]["test"] is True and payload["event"]["type"] == "citation_gained"
    assert payload["brand"]["id"] == BRAND_ID and payload["summary"]
    delivery = body["delivery"]
    assert delivery["id"] == got.headers["X-Trakkr-Delivery"]
    assert delivery["is_test"] is True and delivery["status"] == "succeeded" and len(delivery["attempts"]) == 1
    listed = brand_client.get(f"/webhooks/{hook}/deliveries").get_json()["data"]
    assert [d["id"] for d in listed] == [delivery["id"]]


def test_test_send_of_a_named_event(brand_app, brand_client, receiver):
    hook = make_webhook(brand_app, receiver.url + "/hooks")
    body = brand_client.post(f"/webhooks/{hook}/test", json={"event": "report_completed"}).get_json()
    assert body["success"] and receiver.received[0].json["event"]["type"] == "report_completed"


def test_a_failing_test_send_reports_the_error_and_is_not_retried(brand_app, brand_client, receiver):
    hook = make_webhook(brand_app, receiver.url + "/hooks")
    receiver.script(Reply(500, body=b"boom"))
    body = brand_client.post(f"/webhooks/{hook}/test").get_json()
    assert body["success"] is False and body["status_code"] == 500
    assert body["error"]["message"] == "HTTP 500 (test deliveries are not retried)"
    assert body["delivery"]["status"] == "failed" and body["delivery"]["next_attempt_at"] is None
    state = get_state(brand_app)
    assert state.redis().hlen(state.jobs_key) == 0  # nothing scheduled


def test_a_test_send_to_an_unreachable_endpoint_reports_the_error(brand_app, brand_client):
    from flask_trakkr_webhooks.testing import free_port

    hook = make_webhook(brand_app, f"http://127.0.0.1:{free_port()}/hooks")
    body = brand_client.post(f"/webhooks/{hook}/test").get_json()
    assert body["success"] is False and body["status_code"] is None
    assert body["error"]["type"] == "ConnectionError"


@pytest.mark.parametrize(
    "payload,field",
    [({"event": "nope"}, "event"), ({"event": 5}, "event"), ({"evnt": "report_completed"}, "evnt")],
)
def test_test_send_rejects_bad_bodies(brand_app, brand_client, payload, field):
    hook = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    assert _error(brand_client.post(f"/webhooks/{hook}/test", json=payload), 400, field)["type"] == ERROR_TYPES[400]


def test_test_send_rejects_malformed_or_non_json_bodies(brand_app, brand_client):
    hook = make_webhook(brand_app, "http://127.0.0.1:9/hooks")
    assert (
        _error(brand_client.post(f"/webhooks/{hook}/test", data="{", content_type="application/json"), 400)["type"]
        == ERROR_TYPES[400]
    )
    assert (
        _error(brand_client.post(f"/webhooks/{hook}/test", data=json.dumps([1]), content_type="application/json"), 400)[
            "type"
        ]
        == ERROR_TYPES[400]
    )
    assert (
        _error(
            brand_client.post(
                f"/webhooks/{hook}/test", data="event=x", content_type="application/x-www-form-urlencoded"
            ),
            415,
        )["type"]
        == ERROR_TYPES[415]
    )


BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


BASE = {"url": "https://receiver.example.com/hooks", "events": ["visibility_changed"], "brand_id": BRAND}


def test_a_test_send_with_event_null_uses_the_webhook_s_first_event(make_app):
    """schemathesis found ``{"event": null}`` accepted while documented as a string; it is now documented nullable."""
    client = make_app(TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False, TRAKKR_WEBHOOKS_ALLOWED_CIDRS=["127.0.0.1/32"]).test_client()
    with Receiver() as receiver:
        created = client.post(
            "/webhooks", json={**BASE, "url": receiver.url + "/h", "events": ["report_completed", "visibility_changed"]}
        ).get_json()
        response = client.post(f"/webhooks/{created['id']}/test", json={"event": None})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["delivery"]["event_type"] == "report_completed"
        assert [r.json["event"]["type"] for r in receiver.received] == ["report_completed"]
    doc = client.get("/webhooks/openapi.json").get_json()
    event = doc["components"]["schemas"]["TestRequest"]["properties"]["event"]
    assert event["nullable"] is True and "report_completed" in event["anyOf"][0]["enum"]


# -- issue 19 item 3: a credential written under another key ---------------------------------------


def test_test_send_with_an_undecryptable_credential_is_409_and_the_log_still_reads(make_app) -> None:
    app = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=crypto.generate_key())
    client = app.test_client()
    with crypto.using_keys(crypto.generate_key()):
        webhook_id = make_webhook(app, "https://receiver.example.com/h")
    response = client.post(f"/webhooks/{webhook_id}/test")
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == ERROR_TYPES[409] == "conflict"
    assert set(error["fields"]) == {"auth_token", "signing_secret"}
    assert "cannot be decrypted with the configured encryption key" in error["message"]
    listed = client.get(f"/webhooks/{webhook_id}/deliveries")
    assert listed.status_code == 200, listed.get_json()
    assert listed.get_json()["data"] == []  # the 409 wrote nothing
