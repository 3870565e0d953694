"""Signatures (``flask_trakkr_webhooks/signing.py``): the legacy HMAC, Standard Webhooks
signatures on every signed delivery, generated secrets, rotation, and a fresh signature per retry.

Checked by two verifiers that share nothing with the sender's HMAC code: the
``standardwebhooks`` package and ``receiver_kit.WebhookVerifier`` (which shares only the
key mapping, tested against the package here). Each attack a receiver must refuse is
tried: a tampered id, timestamp or body, a replayed old capture, a signature moved to
another message, a foreign secret, stripped Standard Webhooks headers.

Most tests are pure (``message.build`` and ``signing``); the retry test delivers to a real
HTTP receiver on 127.0.0.1 with real Redis and a real database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError as StandardError

from e2e.helpers import api_create as _create
from e2e.helpers import clear_queue, emit
from e2e.helpers import process_open as _process
from e2e.receiver import Reply
from flask_trakkr_webhooks import get_state, jobs, signing
from flask_trakkr_webhooks.message import Endpoint, build
from flask_trakkr_webhooks.providers.samples import sample_payload
from receiver_kit import SCHEME_STANDARD, WebhookVerificationError, WebhookVerifier, verify_signature

PAYLOAD = sample_payload("visibility_changed", test=False)


EVENT_ID = PAYLOAD["event"]["id"]


WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()


PLAIN = "a-plain-secret-0123456789"


def _build(secret: str | None = WHSEC, *, previous: str | None = None, timestamp: int | None = None, **endpoint):
    ts = int(time.time()) if timestamp is None else timestamp
    return build(
        Endpoint(url="https://hooks.example/t", signing_secret=secret, previous_signing_secret=previous, **endpoint),
        PAYLOAD,
        delivery_id="dlv_1",
        timestamp=ts,
    )


def _kit(secret, **kwargs) -> WebhookVerifier:
    return WebhookVerifier(secret, allow_legacy=False, **kwargs)


def _refused(verifier: WebhookVerifier, body: bytes, headers: dict, **kwargs) -> str:
    """The ``code`` of the ``WebhookVerificationError`` the verifier raises (it must raise)."""
    with pytest.raises(WebhookVerificationError) as info:
        verifier.authenticate(body, headers, **kwargs)
    return info.value.code


# -- the headers -----------------------------------------------------------------------------


def test_a_signed_delivery_carries_the_three_standard_headers_and_the_legacy_one():
    msg = _build(timestamp=1736933400)
    assert msg.headers["webhook-id"] == EVENT_ID
    assert msg.headers["webhook-timestamp"] == "1736933400"
    assert msg.headers["webhook-signature"].startswith("v1,")
    assert verify_signature(msg.body, msg.headers["X-Trakkr-Signature"], WHSEC)  # unchanged scheme


def test_no_secret_means_no_signature_headers():
    headers = {k.lower() for k in _build(None).headers}
    assert not headers & {"webhook-id", "webhook-timestamp", "webhook-signature", "x-trakkr-signature"}


def test_known_vector_computed_independently():
    # The signed content is f"{id}.{timestamp}.{body}"; the key is the base64-decoded whsec_ part.
    msg = _build(timestamp=1736933400)
    content = f"{EVENT_ID}.1736933400.".encode() + msg.body
    expected = base64.b64encode(hmac.new(bytes(range(32)), content, hashlib.sha256).digest()).decode()
    assert msg.headers["webhook-signature"] == "v1," + expected
    # ... and what the standardwebhooks package itself would sign.
    stamp = datetime.fromtimestamp(1736933400, tz=timezone.utc)
    assert StandardWebhook(WHSEC).sign(EVENT_ID, stamp, msg.body.decode()) == msg.headers["webhook-signature"]


def test_plain_secret_key_is_its_utf8_bytes():
    msg = _build(PLAIN, timestamp=1736933400)
    content = f"{EVENT_ID}.1736933400.".encode() + msg.body
    digest = hmac.new(PLAIN.encode(), content, hashlib.sha256).digest()
    assert msg.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def test_verified_by_the_standardwebhooks_package():
    msg = _build()
    assert StandardWebhook(WHSEC).verify(msg.body, msg.headers) == PAYLOAD
    # A plain secret: that package base64-decodes every str, so it is given the UTF-8 bytes.
    plain = _build(PLAIN)
    assert StandardWebhook(PLAIN.encode()).verify(plain.body, plain.headers) == PAYLOAD


@pytest.mark.parametrize("secret", [WHSEC, PLAIN, "whsec_" + "a" * 20])
def test_verified_by_receiver_kit_with_both_secret_forms(secret):
    msg = _build(secret)
    assert _kit(secret, tolerance=300).authenticate(msg.body, msg.headers) == SCHEME_STANDARD
    assert _kit(secret).verify(msg.body, msg.headers) == PAYLOAD


def test_custom_headers_cannot_forge_the_standard_headers():
    msg = _build(
        headers={
            "webhook-id": "evt_forged",
            "Webhook-Timestamp": "1",
            "WEBHOOK-SIGNATURE": "v1,Zm9v",
            "X-Team": "growth",
        }
    )
    lowered = {k.lower(): v for k, v in msg.headers.items()}
    assert lowered["webhook-id"] == EVENT_ID and lowered["webhook-timestamp"] != "1"
    assert len(lowered) == len(msg.headers) and lowered["x-team"] == "growth"
    assert _kit(WHSEC).authenticate(msg.body, msg.headers) == SCHEME_STANDARD


# -- attacks a receiver must refuse ---------------------------------------------------------------


def test_a_replayed_old_capture_is_refused_and_the_window_is_300_seconds():
    now = time.time()
    old = _build(timestamp=int(now) - 301)
    assert _refused(_kit(WHSEC), old.body, old.headers, now=now) == "timestamp_too_old"
    with pytest.raises(StandardError, match="too old"):
        StandardWebhook(WHSEC).verify(old.body, old.headers)
    future = _build(timestamp=int(now) + 301)
    assert _refused(_kit(WHSEC), future.body, future.headers, now=now) == "timestamp_too_new"
    edge = _build(timestamp=int(now) - 299)
    assert _kit(WHSEC, tolerance=300).authenticate(edge.body, edge.headers, now=now) == SCHEME_STANDARD


def test_refreshing_the_timestamp_of_a_capture_breaks_its_signature():
    old = _build(timestamp=int(time.time()) - 3600)
    forged = {**old.headers, "webhook-timestamp": str(int(time.time()))}
    assert _refused(_kit(WHSEC), old.body, forged) == "no_matching_signature"
    with pytest.raises(StandardError, match="No matching signature"):
        StandardWebhook(WHSEC).verify(old.body, forged)


@pytest.mark.parametrize("secret", [WHSEC, PLAIN])
def test_tampered_id_body_or_foreign_secret_is_refused(secret):
    msg = _build(secret)
    kit = _kit(secret)
    assert _refused(kit, msg.body, {**msg.headers, "webhook-id": "evt_other"}) == "no_matching_signature"
    assert _refused(kit, msg.body.replace(b"visibility", b"Visibility"), msg.headers) == "no_matching_signature"
    assert _refused(kit, msg.body + b" ", msg.headers) == "no_matching_signature"
    assert _refused(_kit("another-secret-0123456789"), msg.body, msg.headers) == "no_matching_signature"


def test_a_signature_moved_onto_another_message_is_refused():
    first, second = (
        _build(),
        build(
            Endpoint(url="https://hooks.example/t", signing_secret=WHSEC),
            {
                **PAYLOAD,
                "event": {**PAYLOAD["event"], "id": "evt_second"},
                "meta": {**PAYLOAD["meta"], "event_id": "evt_second"},
            },
            delivery_id="dlv_2",
            timestamp=int(time.time()),
        ),
    )
    spliced = {**second.headers, "webhook-signature": first.headers["webhook-signature"]}
    assert _refused(_kit(WHSEC), second.body, spliced) == "no_matching_signature"


def test_stripping_the_standard_headers_is_refused_once_legacy_is_off():
    msg = _build()
    legacy_only = {"X-Trakkr-Signature": msg.headers["X-Trakkr-Signature"]}
    assert _refused(_kit(WHSEC), msg.body, legacy_only) == "missing_header"
    partial = {k: v for k, v in msg.headers.items() if k != "webhook-timestamp"}
    assert _refused(WebhookVerifier(WHSEC), msg.body, partial) == "missing_header"  # even with legacy allowed


# -- secrets ----------------------------------------------------------------------------------------


def test_generated_secrets_are_whsec_base64_of_32_random_bytes():
    made = {signing.generate_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[6:], validate=True)) == 32
        assert signing.standard_key(secret) == base64.b64decode(secret[6:])


def test_a_whsec_secret_that_is_not_base64_still_gets_the_legacy_signature_only():
    msg = _build("whsec_not-base64!")
    assert verify_signature(msg.body, msg.headers["X-Trakkr-Signature"], "whsec_not-base64!")
    assert not {"webhook-id", "webhook-timestamp", "webhook-signature"} & set(msg.headers)
    assert signing.secret_problems("whsec_not-base64!") and not signing.secret_problems(WHSEC)
    assert not signing.secret_problems(PLAIN)


# -- rotation at the message level ---------------------------------------------------------------------

NEW = signing.generate_secret()


OLD = "the-old-secret-0123456789"


def test_during_the_grace_period_both_secrets_sign_webhook_signature():
    msg = _build(NEW, previous=OLD)
    entries = msg.headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    for secrets in ([OLD], [NEW], [NEW, OLD], [OLD, NEW]):
        assert _kit(secrets).authenticate(msg.body, msg.headers) == SCHEME_STANDARD
    assert StandardWebhook(NEW).verify(msg.body, msg.headers) == PAYLOAD
    assert StandardWebhook(OLD.encode()).verify(msg.body, msg.headers) == PAYLOAD
    # X-Trakkr-Signature: the new secret only (the seed's snippet compares one value).
    assert verify_signature(msg.body, msg.headers["X-Trakkr-Signature"], NEW)
    assert not verify_signature(msg.body, msg.headers["X-Trakkr-Signature"], OLD)
    assert verify_signature(msg.body, msg.headers["X-Trakkr-Signature"], [NEW, OLD])  # receiver_kit's list


def test_without_a_previous_secret_only_the_new_one_verifies():
    msg = _build(NEW)
    assert len(msg.headers["webhook-signature"].split(" ")) == 1
    assert _refused(_kit(OLD), msg.body, msg.headers) == "no_matching_signature"
    assert _kit([OLD, NEW]).authenticate(msg.body, msg.headers) == SCHEME_STANDARD


def test_a_previous_secret_equal_to_the_current_one_signs_once():
    assert len(_build(NEW, previous=NEW).headers["webhook-signature"].split(" ")) == 1


def test_sign_known_vector():
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published test vector.
    assert signing.sign(b"The quick brown fox jumps over the lazy dog", "key") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )
    with pytest.raises(TypeError):
        signing.sign("text", "key")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        signing.sign(b"x", "")


CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False,
    TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
    TRAKKR_WEBHOOKS_TIMEOUT=2,
    TRAKKR_WEBHOOKS_RETRY_DELAYS=[],
)


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


def test_retries_keep_the_webhook_id_and_sign_a_fresh_timestamp(make_app, plain_receiver):
    local_app = make_app(**{**CONFIG, "TRAKKR_WEBHOOKS_RETRY_DELAYS": [1]})
    try:
        hook = _create(local_app.test_client(), plain_receiver.url + "/h", signing_secret="generate")
        plain_receiver.script(Reply(500), Reply(200))
        event = emit(local_app)
        _process(local_app)
        time.sleep(1.05)  # the retry's delay: the second attempt is a second later
        with local_app.app_context():
            jobs.process_batch(get_state(local_app), [d.id for d in get_state(local_app).models.Delivery.query])
        first, second = plain_receiver.wait_for(2, timeout=10)
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == event
        assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
        assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
        assert verifies([hook["signing_secret"]], first) and verifies([hook["signing_secret"]], second)
    finally:
        clear_queue(local_app)
