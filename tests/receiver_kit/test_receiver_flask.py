"""Flask decorators through Flask's test client: exact statuses and error bodies, view never run on failure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from flask import jsonify, request

from receiver_kit.flask import idempotent, verify_webhook
from receiver_kit.idempotency import COMPLETED, PROCESSING, MemoryStore
from receiver_kit.testing import sample_payload, signed_request

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()


def legacy_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Signed independently of the kit: the product page's computation."""
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Trakkr-Signature": sig, "Content-Type": "application/json"}


@pytest.fixture
def received():
    return []


@pytest.fixture
def client(flask_app, received):
    @flask_app.post("/hooks")
    @verify_webhook(secret=SECRET, allow_legacy=True)
    def hook(payload):
        received.append(payload)
        return jsonify({"ok": True, "raw_len": len(request.get_data())})

    @flask_app.post("/rotating")
    @verify_webhook(secret=[SECRET, OLD_SECRET], allow_legacy=True)
    def rotating(payload):
        received.append(payload)
        return jsonify({"ok": True})

    tenants = {"acme": SECRET, "globex": OLD_SECRET}

    @flask_app.post("/tenants/<tenant>/hooks")
    @verify_webhook(secret=lambda: tenants.get(request.view_args["tenant"]), allow_legacy=True)
    def per_tenant(payload, tenant):
        received.append((tenant, payload))
        return jsonify({"tenant": tenant})

    @flask_app.post("/strict")
    @verify_webhook(secret=SECRET)  # the default: Standard Webhooks headers required
    def strict(payload):
        received.append(payload)
        return jsonify({"ok": True})

    return flask_app.test_client()


def assert_error(response, status: int, code: str, message: str, type_: str = "invalid_signature") -> None:
    assert response.status_code == status
    assert response.get_json() == {"error": {"type": type_, "code": code, "message": message}}


@pytest.mark.parametrize("scheme", ["both", "trakkr", "standard"])
def test_valid_request_reaches_the_view_with_the_parsed_payload(client, received, scheme):
    payload = sample_payload("report_completed")
    req = signed_request(payload, SECRET, scheme=scheme)
    response = client.post("/hooks", **req.kwargs())
    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "raw_len": len(req.body)}  # the raw body stays readable
    assert received == [payload]


def test_independently_signed_request_is_accepted(client, received):
    body = b'{"meta": {"event_id": "evt_x"}}'
    assert client.post("/hooks", data=body, headers=legacy_headers(body)).status_code == 200
    assert received == [{"meta": {"event_id": "evt_x"}}]


@pytest.mark.parametrize("scheme", ["both", "trakkr", "standard"])
def test_tampered_request_gets_401_and_the_view_never_runs(client, received, scheme):
    req = signed_request(sample_payload(), SECRET, scheme=scheme)
    tampered = req.body.replace(b'"Acme"', b'"Acmf"')
    assert tampered != req.body
    response = client.post("/hooks", data=tampered, headers=req.headers)
    assert_error(response, 401, "no_matching_signature", "no matching signature")
    assert received == []


@pytest.mark.parametrize("scheme", ["trakkr", "standard"])
def test_same_json_with_other_whitespace_than_signed_fails(client, received, scheme):
    payload = sample_payload()
    req = signed_request(payload, SECRET, scheme=scheme)  # compact separators
    reserialised = json.dumps(payload, indent=2).encode()
    assert json.loads(reserialised) == json.loads(req.body)
    response = client.post("/hooks", data=reserialised, headers=req.headers)
    assert_error(response, 401, "no_matching_signature", "no matching signature")
    assert received == []


def test_missing_signature(client, received):
    response = client.post("/hooks", data=b"{}", content_type="application/json")
    assert_error(response, 401, "missing_header", "missing required header: X-Trakkr-Signature")
    assert received == []


def test_wrong_prefix(client, received):
    body = b"{}"
    headers = legacy_headers(body)
    headers["X-Trakkr-Signature"] = headers["X-Trakkr-Signature"].replace("sha256=", "sha512=")
    response = client.post("/hooks", data=body, headers=headers)
    assert_error(
        response,
        401,
        "invalid_header",
        "invalid X-Trakkr-Signature header: expected 'sha256=' and 64 lowercase hex digits",
    )
    assert received == []


def test_wrong_secret(client, received):
    req = signed_request(sample_payload(), "whsec_" + base64.b64encode(b"x" * 32).decode())
    assert_error(client.post("/hooks", **req.kwargs()), 401, "no_matching_signature", "no matching signature")
    assert received == []


@pytest.mark.parametrize(
    ("offset", "code", "message"),
    [(-301, "timestamp_too_old", "message timestamp too old"), (301, "timestamp_too_new", "message timestamp too new")],
)
def test_replayed_or_future_timestamp(client, received, offset, code, message):
    req = signed_request(sample_payload(), SECRET, timestamp=int(time.time()) + offset)
    assert_error(client.post("/hooks", **req.kwargs()), 401, code, message)
    assert received == []


def test_signed_body_that_is_not_json_is_400(client, received):
    body = b"\xff\xfenot json"
    response = client.post("/hooks", data=body, headers=legacy_headers(body))
    assert_error(response, 400, "invalid_payload", "body is not valid JSON", type_="invalid_request")
    assert received == []


def test_empty_body_signed_is_400_not_json(client, received):
    response = client.post("/hooks", data=b"", headers=legacy_headers(b""))
    assert_error(response, 400, "invalid_payload", "body is not valid JSON", type_="invalid_request")
    assert received == []


def test_huge_body(client, received):
    payload = {"meta": {"event_id": "evt_big"}, "blob": "x" * (5 * 1024 * 1024)}
    req = signed_request(payload, SECRET)
    assert client.post("/hooks", **req.kwargs()).status_code == 200
    assert received[0]["meta"]["event_id"] == "evt_big"


def test_secret_list_accepts_either_secret(client, received):
    for secret in (SECRET, OLD_SECRET):
        assert client.post("/rotating", **signed_request(sample_payload(), secret).kwargs()).status_code == 200
    assert len(received) == 2
    third = "whsec_" + base64.b64encode(b"t" * 32).decode()
    assert client.post("/rotating", **signed_request(sample_payload(), third).kwargs()).status_code == 401


def test_sender_signing_with_both_secrets_during_rotation(client, received):
    req = signed_request(sample_payload(), [SECRET, OLD_SECRET], scheme="standard")
    assert client.post("/hooks", **req.kwargs()).status_code == 200


def test_callable_secret_resolved_per_request_and_url_kwargs_kept(client, received):
    payload = sample_payload()
    assert client.post("/tenants/acme/hooks", **signed_request(payload, SECRET).kwargs()).get_json() == {
        "tenant": "acme"
    }
    assert client.post("/tenants/globex/hooks", **signed_request(payload, OLD_SECRET).kwargs()).status_code == 200
    wrong = client.post("/tenants/globex/hooks", **signed_request(payload, SECRET).kwargs())
    assert_error(wrong, 401, "no_matching_signature", "no matching signature")
    unknown = client.post("/tenants/initech/hooks", **signed_request(payload, SECRET).kwargs())
    assert_error(unknown, 401, "no_secret", "no signing secret is configured for this endpoint")
    assert received == [("acme", payload), ("globex", payload)]


def test_allow_legacy_false_refuses_the_legacy_header_alone(client, received):
    req = signed_request(sample_payload(), SECRET, scheme="trakkr")
    assert_error(client.post("/strict", **req.kwargs()), 401, "missing_header", "missing required header: webhook-id")
    assert client.post("/strict", **signed_request(sample_payload(), SECRET).kwargs()).status_code == 200
    assert len(received) == 1


@pytest.mark.parametrize("bad", ["", [], "whsec_!!!"])
def test_bad_static_secret_fails_at_decoration_time(bad):
    with pytest.raises(ValueError):
        verify_webhook(secret=bad)


# --- @idempotent -------------------------------------------------------------------------


@pytest.fixture
def idem(flask_app, make_store, calls):
    """An app with ``/idem`` (verify + idempotent) on the parametrised store; returns (client, store, behaviour)."""
    store = make_store()
    behaviour = {"raise": 0, "status": 200}

    @flask_app.post("/idem")
    @verify_webhook(secret=SECRET)
    @idempotent(store=store)
    def handler(payload):
        calls.hit()
        if behaviour["raise"]:
            behaviour["raise"] -= 1
            raise RuntimeError("handler crashed half-way")
        return jsonify({"handled": payload["meta"]["event_id"]}), behaviour["status"]

    return flask_app.test_client(), store, behaviour


def post(client, payload):
    return client.post("/idem", **signed_request(payload, SECRET).kwargs())


def test_completed_repeat_is_200_without_running(idem, calls):
    client, store, _ = idem
    payload = sample_payload()
    event_id = payload["meta"]["event_id"]
    assert post(client, payload).get_json() == {"handled": event_id}
    repeat = post(client, payload)
    assert repeat.status_code == 200
    assert repeat.get_json() == {"received": True, "duplicate": True, "event_id": event_id}
    assert calls.count == 1
    assert store.state(event_id) == COMPLETED


def test_in_progress_repeat_is_503_with_retry_after(idem, calls):
    client, store, _ = idem
    payload = sample_payload()
    event_id = payload["meta"]["event_id"]
    assert store.claim(event_id).acquired  # another worker is running it right now
    response = post(client, payload)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json() == {
        "error": {
            "type": "in_progress",
            "message": f"event {event_id} is being processed; retry later",
            "event_id": event_id,
        }
    }
    assert calls.count == 0


@pytest.mark.parametrize(("failure", "status"), [("raise", 500), ("answer-503", 503)])
def test_failed_handler_releases_the_key_and_the_retry_runs_it_once_more(idem, calls, failure, status):
    client, store, behaviour = idem
    if failure == "raise":
        behaviour["raise"] = 1
    else:
        behaviour["status"] = 503
    payload = sample_payload()
    event_id = payload["meta"]["event_id"]
    assert post(client, payload).status_code == status
    assert store.state(event_id) is None  # released
    behaviour["status"] = 200
    assert post(client, payload).status_code == 200
    assert post(client, payload).get_json()["duplicate"] is True
    assert calls.count == 2


def test_handler_answering_4xx_completes(idem, calls):
    client, store, behaviour = idem
    behaviour["status"] = 422
    payload = sample_payload()
    assert post(client, payload).status_code == 422
    assert store.state(payload["meta"]["event_id"]) == COMPLETED
    assert post(client, payload).get_json()["duplicate"] is True
    assert calls.count == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"event": {"id": "evt_1"}},
        {"meta": {}},
        {"meta": {"event_id": ""}},
        {"meta": {"event_id": 123}},
        {"meta": "evt_1"},
        {"meta": {"event_id": "e" * 256}},
        [{"meta": {"event_id": "evt_1"}}],
        "evt_1",
    ],
    ids=["no-meta", "no-event-id", "empty", "number", "meta-not-object", "too-long", "list-body", "string-body"],
)
def test_missing_or_unusable_event_id_is_400(idem, calls, payload):
    client, _, _ = idem
    response = post(client, payload)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": {
            "type": "invalid_request",
            "message": "payload has no usable meta.event_id",
            "fields": {"meta.event_id": ["required: a string of 1 to 255 characters"]},
        }
    }
    assert calls.count == 0


def test_custom_key_ttls_and_retry_after(flask_app, calls):
    store = MemoryStore()

    @flask_app.post("/custom")
    @verify_webhook(secret=SECRET)
    @idempotent(store=store, key=lambda p: p.get("id"), processing_ttl=0.2, completed_ttl=0.2, retry_after=9)
    def handler(payload):
        calls.hit()
        return "", 204

    client = flask_app.test_client()
    store.claim("abc", processing_ttl=60)
    busy = client.post("/custom", **signed_request({"id": "abc"}, SECRET).kwargs())
    assert (busy.status_code, busy.headers["Retry-After"]) == (503, "9")
    assert client.post("/custom", **signed_request({"id": "xyz"}, SECRET).kwargs()).status_code == 204
    time.sleep(0.3)  # the per-view completed TTL has passed: the key is forgotten
    assert client.post("/custom", **signed_request({"id": "xyz"}, SECRET).kwargs()).status_code == 204
    assert calls.count == 2


def test_idempotent_above_verify_webhook_is_a_clear_error(flask_app):
    @idempotent(store=MemoryStore())
    def handler(payload):
        return "unreachable"

    with flask_app.test_request_context("/"):
        with pytest.raises(TypeError, match="below @verify_webhook"):
            handler()


class FlakyStore(MemoryStore):
    """A store whose complete/release fail, as when Redis goes away mid-request."""

    def complete(self, key, token, *, completed_ttl=None):
        raise ConnectionError("store down")

    def release(self, key, token):
        raise ConnectionError("store down")


def test_store_failing_after_the_handler_ran_still_answers_2xx(flask_app, calls, caplog):
    store = FlakyStore()

    @flask_app.post("/flaky")
    @verify_webhook(secret=SECRET)
    @idempotent(store=store)
    def handler(payload):
        if calls.hit() == 2:
            raise ValueError("boom")
        return jsonify({"ok": True})

    client = flask_app.test_client()
    first = sample_payload()
    assert client.post("/flaky", **signed_request(first, SECRET).kwargs()).status_code == 200
    assert "could not mark idempotency key" in caplog.text
    assert store.state(first["meta"]["event_id"]) == PROCESSING  # frees itself after the processing TTL
    # The handler's own exception wins over the failed release.
    assert client.post("/flaky", **signed_request(sample_payload(), SECRET).kwargs()).status_code == 500
    assert "could not release idempotency key" in caplog.text
