"""Generated secrets, ``POST /webhooks/<id>/rotate-secret`` (rotation windows checked with receiver_kit on
real deliveries) and ``POST /webhooks/<id>/replay``.

Real database, real Redis, a real HTTP receiver on 127.0.0.1; deliveries are processed in-process.
"""
from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest

from e2e.helpers import BRAND, BRAND_ID, clear_queue, emit, new_brand
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import delivery, get_state, ids
from flask_trakkr_webhooks.errors import ERROR_TYPES
from receiver_kit import SCHEME_STANDARD, WebhookVerificationError, WebhookVerifier, verify_signature

CONFIG = dict(TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False, TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
              TRAKKR_WEBHOOKS_TIMEOUT=2, TRAKKR_WEBHOOKS_RETRY_DELAYS=[])
OLD = "old-secret-0123456789abcdef"


@pytest.fixture
def app(make_app):
    app = make_app(**CONFIG)
    yield app
    clear_queue(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


def _create(client, url, **fields):
    response = client.post("/webhooks", json={"url": url, "events": ["visibility_changed"], "brand_id": BRAND_ID,
                                              **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _row(app, webhook_id):
    with app.app_context():
        state = get_state(app)
        state.db.session.expire_all()
        row = state.db.session.get(state.models.Webhook, webhook_id)
        state.db.session.expunge(row)
        return row


def _error(response, status, field=None):
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    if field is not None:
        assert list(error["fields"]) == [field], error
    return error


def _process(app, status=None):
    """Attempt every open delivery once; return their ids."""
    with app.app_context():
        state = get_state(app)
        D = state.models.Delivery
        open_ids = [d.id for d in D.query.filter(D.status.in_(("pending", "queued"))).order_by(D.created_at, D.id)]
        delivery.process_batch(state, open_ids)
        return open_ids


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
        return WebhookVerifier(secrets, tolerance=300, allow_legacy=False).authenticate(got.body, got.headers) \
            == SCHEME_STANDARD
    except WebhookVerificationError as exc:
        assert exc.code == "no_matching_signature", exc
        return False


# -- generated secrets ----------------------------------------------------------------------------------


def test_generate_on_create_and_patch_answers_a_new_whsec_secret(app, client):
    created = _create(client, "https://r.example/h", signing_secret="generate")
    secret = created["signing_secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) == 32
    assert _row(app, created["id"]).signing_secret == secret
    patched = client.patch(f"/webhooks/{created['id']}", json={"signing_secret": "generate"}).get_json()
    assert patched["signing_secret"].startswith("whsec_") and patched["signing_secret"] != secret
    assert _row(app, created["id"]).signing_secret == patched["signing_secret"]


@pytest.mark.parametrize("secret", ["whsec_not-base64-at-all!", "whsec_abc_def_ghi_jkl", "whsec_a"])
def test_a_whsec_secret_must_be_base64(client, secret):
    error = _error(client.post("/webhooks", json={"url": "https://r.example/h", "events": ["visibility_changed"],
                                                  "brand_id": BRAND_ID, "signing_secret": secret}), 400,
                   "signing_secret")
    assert any("must be standard base64 after the prefix" in m or "at least 16" in m
               for m in error["fields"]["signing_secret"])


# -- rotate-secret ---------------------------------------------------------------------------------------


def test_rotate_generates_a_secret_and_keeps_the_old_one_for_the_grace_period(app, client):
    hook = _create(client, "https://r.example/h", signing_secret=OLD)
    before = ids.utcnow()
    response = client.post(f"/webhooks/{hook['id']}/rotate-secret")
    assert response.status_code == 200
    body = response.get_json()
    assert body["object"] == "webhook" and body["id"] == hook["id"]
    assert body["signing_secret"].startswith("whsec_") and body["signing_secret"] != OLD
    row = _row(app, hook["id"])
    assert row.signing_secret == body["signing_secret"] and row.previous_signing_secret == OLD
    expires = ids.as_utc(row.previous_secret_expires_at)
    assert before + timedelta(hours=24) <= expires <= ids.utcnow() + timedelta(hours=24)
    assert body["previous_secret_expires_at"] == ids.isoformat(expires)
    assert client.get(f"/webhooks/{hook['id']}").get_json()["previous_secret_expires_at"] == ids.isoformat(expires)


def test_rotate_to_a_given_secret_and_the_body_rules(app, client):
    hook = _create(client, "https://r.example/h", signing_secret=OLD)
    url = f"/webhooks/{hook['id']}/rotate-secret"
    given = "brand-new-secret-0123456789"
    assert client.post(url, json={"signing_secret": given}).get_json()["signing_secret"] == given
    error = _error(client.post(url, json={"signing_secret": given}), 400, "signing_secret")
    assert error["fields"]["signing_secret"] == ["must differ from the current secret"]
    assert _error(client.post(url, json={"signing_secret": "short"}), 400, "signing_secret")["type"] == ERROR_TYPES[400]
    assert _error(client.post(url, json={"signing_secret": None}), 400, "signing_secret")["type"] == ERROR_TYPES[400]
    assert _error(client.post(url, json={"signing_secret": "whsec_@@@@@@@@@@@@@@@@"}), 400, "signing_secret")["type"] == ERROR_TYPES[400]
    assert _error(client.post(url, json={"secret": "x" * 20}), 400, "secret")["fields"]["secret"] == ["Unknown field."]
    assert _error(client.post(url, json=["generate"]), 400)["message"] == "Request body must be a JSON object, not list."
    assert _error(client.post(url, data="generate", content_type="text/plain"), 415)["type"] == ERROR_TYPES[415]
    assert _error(client.post(url + "?x=1"), 400, "x")["type"] == ERROR_TYPES[400]
    assert _row(app, hook["id"]).signing_secret == given  # nothing refused changed it
    assert client.post(url, json={"signing_secret": "generate"}).get_json()["signing_secret"].startswith("whsec_")


def test_rotate_without_a_current_secret_or_without_grace_keeps_no_previous(make_app):
    app = make_app(TRAKKR_WEBHOOKS_SECRET_GRACE_PERIOD=0)
    client = app.test_client()
    plain = _create(client, "https://r.example/h")
    body = client.post(f"/webhooks/{plain['id']}/rotate-secret").get_json()
    assert body["signing_secret"].startswith("whsec_") and body["previous_secret_expires_at"] is None
    assert _row(app, plain["id"]).previous_signing_secret is None
    signed = _create(client, "https://r.example/h", signing_secret=OLD)
    body = client.post(f"/webhooks/{signed['id']}/rotate-secret").get_json()
    assert _row(app, signed["id"]).previous_signing_secret is None and body["previous_secret_expires_at"] is None


def test_rotate_unknown_or_deleted_webhook_is_404(client):
    assert _error(client.post("/webhooks/wh_000000000000000000000000/rotate-secret"), 404)["type"] == ERROR_TYPES[404]
    hook = _create(client, "https://r.example/h")
    client.delete(f"/webhooks/{hook['id']}")
    assert _error(client.post(f"/webhooks/{hook['id']}/rotate-secret"), 404)["type"] == ERROR_TYPES[404]
    assert _error(client.get("/webhooks/x/rotate-secret"), 405)["type"] == ERROR_TYPES[405]


def test_rotation_windows_on_real_deliveries(app, client, receiver):
    """Old only, new only, both: all verify during the grace period; after it, only the new one."""
    hook = _create(client, receiver.url + "/h", signing_secret=OLD)
    assert verifies([OLD], _delivered(app, receiver))
    new = client.post(f"/webhooks/{hook['id']}/rotate-secret").get_json()["signing_secret"]

    got = _delivered(app, receiver)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secrets in ([OLD], [new], [new, OLD]):
        assert verifies(secrets, got), secrets
    assert not verifies(["unrelated-secret-0123456789"], got)
    # The seed's scheme: the new secret only; a receiver on the plain snippet accepts either during the window.
    assert verify_signature(got.body, got.headers["X-Trakkr-Signature"], new)
    assert not verify_signature(got.body, got.headers["X-Trakkr-Signature"], OLD)
    assert verify_signature(got.body, got.headers["X-Trakkr-Signature"], [new, OLD])

    # /test and /preview are signed the same way during the window.
    test_send = receiver.received[-1] if client.post(f"/webhooks/{hook['id']}/test").get_json()["success"] else None
    assert test_send is not None and verifies([OLD], test_send) and verifies([new], test_send)
    preview = client.post(f"/webhooks/{hook['id']}/preview").get_json()
    assert len(preview["headers"]["webhook-signature"].split(" ")) == 2

    with app.app_context():  # the grace period ends
        state = get_state(app)
        row = state.db.session.get(state.models.Webhook, hook["id"])
        row.previous_secret_expires_at = ids.utcnow() - timedelta(seconds=1)
        state.db.session.commit()
    got = _delivered(app, receiver)
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    assert verifies([new], got) and verifies([new, OLD], got)
    assert not verifies([OLD], got)
    assert client.get(f"/webhooks/{hook['id']}").get_json()["previous_secret_expires_at"] is None


def test_rotating_twice_retires_the_first_secret_and_patch_ends_the_window(app, client, receiver):
    hook = _create(client, receiver.url + "/h", signing_secret=OLD)
    second = client.post(f"/webhooks/{hook['id']}/rotate-secret").get_json()["signing_secret"]
    third = client.post(f"/webhooks/{hook['id']}/rotate-secret").get_json()["signing_secret"]
    got = _delivered(app, receiver)
    assert verifies([second], got) and verifies([third], got) and not verifies([OLD], got)
    fourth = "set-outright-0123456789abc"
    body = client.patch(f"/webhooks/{hook['id']}", json={"signing_secret": fourth}).get_json()
    assert body["previous_secret_expires_at"] is None
    got = _delivered(app, receiver)
    assert verifies([fourth], got) and not verifies([third], got)


def test_retries_keep_the_webhook_id_and_sign_a_fresh_timestamp(make_app, receiver):
    app = make_app(**{**CONFIG, "TRAKKR_WEBHOOKS_RETRY_DELAYS": [1]})
    try:
        hook = _create(app.test_client(), receiver.url + "/h", signing_secret="generate")
        receiver.script(Reply(500), Reply(200))
        event = emit(app)
        _process(app)
        time.sleep(1.05)  # the retry's delay: the second attempt is a second later
        with app.app_context():
            delivery.process_batch(get_state(app), [d.id for d in get_state(app).models.Delivery.query])
        first, second = receiver.wait_for(2, timeout=10)
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == event
        assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
        assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
        assert verifies([hook["signing_secret"]], first) and verifies([hook["signing_secret"]], second)
    finally:
        clear_queue(app)


# -- replay ---------------------------------------------------------------------------------------------


def _replay(client, hook_id, **body):
    return client.post(f"/webhooks/{hook_id}/replay", json=body)


def _since(moment) -> str:
    return ids.isoformat(moment)


def _status_of(app, delivery_ids):
    with app.app_context():
        D = get_state(app).models.Delivery
        return {d.id: d.status for d in D.query.filter(D.id.in_(delivery_ids))}


def test_replay_after_an_outage_redelivers_failed_cancelled_and_missed_with_their_event_ids(app, client, receiver):
    start = ids.utcnow() - timedelta(seconds=1)
    hook = _create(client, receiver.url + "/h", signing_secret="generate")["id"]
    receiver.script(Reply(404), Reply(404))
    failed = [emit(app), emit(app)]
    _process(app)
    receiver.script(Reply(410))
    gone, cancelled = emit(app), emit(app)
    with app.app_context():  # only the first: the second is still pending when the 410 disables the webhook
        D = get_state(app).models.Delivery
        delivery.process_batch(get_state(app), [D.query.filter_by(event_id=gone).one().id])
    missed = emit(app)  # while disabled: no delivery row at all
    assert _row(app, hook).active is False

    error = _error(_replay(client, hook, since=_since(start)), 409)
    assert error["message"] == 'The webhook is inactive: activate it (PATCH {"active": true}) before replaying.'
    assert client.patch(f"/webhooks/{hook}", json={"active": True}).status_code == 200

    response = _replay(client, hook, since=_since(start))
    assert response.status_code == 202
    body = response.get_json()
    assert body["object"] == "replay" and body["webhook_id"] == hook and body["status"] == ["failed"]
    assert body["count"] == 3 and body["has_more"] is False
    assert [d["event_id"] for d in body["deliveries"]] == [*failed, gone]  # oldest first
    assert {d["replayed_status"] for d in body["deliveries"]} == {"failed"}
    new_ids = [d["id"] for d in body["deliveries"]]
    assert set(_status_of(app, new_ids).values()) == {"queued"}  # enqueued at commit
    assert _replay(client, hook, since=_since(start)).get_json()["count"] == 0  # already replaying

    rest = _replay(client, hook, since=_since(start), status=["cancelled", "missed"]).get_json()
    assert [(d["event_id"], d["replayed_status"]) for d in rest["deliveries"]] == [(cancelled, "cancelled"),
                                                                                    (missed, "missed")]
    count = len(receiver.received)
    _process(app)
    got = receiver.wait_for(count + 5, timeout=10)[count:]
    assert sorted(r.json["meta"]["event_id"] for r in got) == sorted([*failed, gone, cancelled, missed])
    assert all(r.headers["webhook-id"] == r.json["event"]["id"] == r.json["meta"]["event_id"] for r in got)
    assert set(_status_of(app, new_ids).values()) == {"succeeded"}
    assert _replay(client, hook, since=_since(start), status=["failed", "cancelled", "missed"]).get_json()["count"] == 0


def test_replay_since_limit_and_what_is_never_replayed(app, client, receiver):
    hook = _create(client, receiver.url + "/h")["id"]
    other = _create(client, receiver.url + "/other")["id"]  # same brand, its own test event below
    receiver.default = Reply(404)
    early = emit(app)
    _process(app)
    middle = ids.utcnow()
    late = [emit(app) for _ in range(3)]
    emit(app, "report_completed", data={"report_id": "r1", "report_name": "Weekly"})  # not subscribed
    emit(app, brand=new_brand())  # another brand
    _process(app)
    client.post(f"/webhooks/{other}/test")  # a test event of the same brand is never "missed"

    body = _replay(client, hook, since=_since(middle), limit=2).get_json()
    assert [d["event_id"] for d in body["deliveries"]] == late[:2] and body["has_more"] is True
    body = _replay(client, hook, since=_since(middle), limit=2).get_json()
    assert [d["event_id"] for d in body["deliveries"]] == late[2:] and body["has_more"] is False
    assert _replay(client, hook, since=_since(middle), status="missed").get_json()["count"] == 0
    # Redelivered successfully since: the latest delivery decides.
    receiver.default = Reply(200)
    _process(app)
    body = _replay(client, hook, since="2000-01-01T00:00:00+02:00").get_json()
    assert [d["event_id"] for d in body["deliveries"]] == [early]


@pytest.mark.parametrize("body,field", [
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
])
def test_replay_bad_input_is_400_on_the_field(app, client, body, field):
    hook = _create(client, "https://r.example/h")["id"]
    assert _error(client.post(f"/webhooks/{hook}/replay", json=body), 400, field)["type"] == ERROR_TYPES[400]


def test_replay_needs_a_json_body(client):
    hook = _create(client, "https://r.example/h")["id"]
    assert _error(client.post(f"/webhooks/{hook}/replay"), 400)["message"] == "Request body is empty: send a JSON object."
    assert _error(client.post(f"/webhooks/{hook}/replay", data="x", content_type="text/plain"), 415)["type"] == ERROR_TYPES[415]
    assert _error(client.post("/webhooks/wh_000000000000000000000000/replay", json={"since": "2024-06-01T00:00:00Z"}), 404)["type"] == ERROR_TYPES[404]
