"""Standard Webhooks: vectors from the ``standardwebhooks`` package (and ``hmac`` where it cannot)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

from receiver_kit import WebhookVerificationError, WebhookVerifier, sign_standard, standard_headers

KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
BODY = b'{"event":{"id":"evt_1"},"meta":{"event_id":"evt_1"}}'
MSG_ID = "evt_1"


def lib_headers(body: bytes, secret: str | bytes, *, msg_id: str = MSG_ID, ts: int | None = None) -> dict[str, str]:
    """Headers signed by the reference package."""
    ts = int(time.time()) if ts is None else ts
    sig = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def raw_signature(body: bytes, key: bytes, msg_id: str, ts: int) -> str:
    """The scheme written out with hmac (for bodies the package cannot take: non-UTF-8)."""
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(body: bytes, headers, secret=WHSEC, **kwargs):
    return WebhookVerifier(secret, **kwargs).verify(body, headers)


def error_of(body: bytes, headers, secret=WHSEC, **kwargs) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as info:
        WebhookVerifier(secret, **kwargs).authenticate(body, headers)
    return info.value


def test_valid_whsec_secret_signed_by_the_reference_package():
    assert verify(BODY, lib_headers(BODY, WHSEC)) == {"event": {"id": "evt_1"}, "meta": {"event_id": "evt_1"}}


def test_plain_secret_is_its_utf8_bytes():
    plain = "plain-secret-é"
    # The package base64-decodes every str, so it is given the UTF-8 bytes as the raw key.
    assert verify(BODY, lib_headers(BODY, plain.encode("utf-8")), secret=plain)["meta"]["event_id"] == "evt_1"


def test_unpadded_whsec_secret():
    key = b"sixteen-byte-key!"  # 17 bytes: base64 needs padding
    unpadded = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    assert verify(BODY, lib_headers(BODY, key), secret=unpadded)


def test_our_signatures_verify_with_the_reference_package():
    headers = standard_headers(BODY, WHSEC, msg_id=MSG_ID)
    assert Webhook(WHSEC).verify(BODY, headers) == {"event": {"id": "evt_1"}, "meta": {"event_id": "evt_1"}}
    ts = int(time.time())
    assert sign_standard(BODY, WHSEC, msg_id=MSG_ID, timestamp=ts) == raw_signature(BODY, KEY, MSG_ID, ts)


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_one_byte_tampered_body(position):
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01
    err = error_of(bytes(tampered), lib_headers(BODY, WHSEC))
    assert (err.code, err.message) == ("no_matching_signature", "no matching signature")


def test_tampered_id_or_timestamp_fails():
    headers = lib_headers(BODY, WHSEC)
    assert error_of(BODY, {**headers, "webhook-id": "evt_2"}).code == "no_matching_signature"
    moved = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)}
    assert error_of(BODY, moved).code == "no_matching_signature"


def test_wrong_secret():
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert error_of(BODY, lib_headers(BODY, other)).code == "no_matching_signature"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(missing):
    headers = lib_headers(BODY, WHSEC)
    del headers[missing]
    err = error_of(BODY, headers)
    assert (err.code, err.message, err.header) == ("missing_header", f"missing required header: {missing}", missing)


def test_empty_header_counts_as_missing():
    headers = {**lib_headers(BODY, WHSEC), "webhook-id": "  "}
    assert error_of(BODY, headers).message == "missing required header: webhook-id"


@pytest.mark.parametrize("value", ["abc", "1.5e9", "-1", "17000000000000", "١٢٣"])
def test_bad_timestamp_format(value):
    err = error_of(BODY, {**lib_headers(BODY, WHSEC), "webhook-timestamp": value})
    assert (err.code, err.message) == (
        "invalid_header",
        "invalid webhook-timestamp header: expected integer Unix seconds",
    )


@pytest.mark.parametrize(
    "value",
    ["garbage", "v1", "v1,", ",abc", "v1,not*base64!"],
)
def test_bad_signature_format(value):
    err = error_of(BODY, {**lib_headers(BODY, WHSEC), "webhook-signature": value})
    assert err.code == "invalid_header"
    assert err.message == "invalid webhook-signature header: expected space-separated '<version>,<base64>' signatures"


def test_wrong_version_prefix_does_not_match():
    headers = lib_headers(BODY, WHSEC)
    v2 = headers["webhook-signature"].replace("v1,", "v2,")
    assert error_of(BODY, {**headers, "webhook-signature": v2}).code == "no_matching_signature"


def test_expired_and_future_timestamps():
    now = int(time.time())
    old = error_of(BODY, lib_headers(BODY, WHSEC, ts=now - 301))
    new = error_of(BODY, lib_headers(BODY, WHSEC, ts=now + 301))
    assert (old.code, old.message) == ("timestamp_too_old", "message timestamp too old")
    assert (new.code, new.message) == ("timestamp_too_new", "message timestamp too new")


def test_tolerance_boundaries_are_inclusive():
    now = 1_700_000_000
    verifier = WebhookVerifier(WHSEC)
    for ts in (now - 300, now + 300):
        assert verifier.verify(BODY, lib_headers(BODY, WHSEC, ts=ts), now=now)
    for ts, code in ((now - 301, "timestamp_too_old"), (now + 301, "timestamp_too_new")):
        with pytest.raises(WebhookVerificationError) as info:
            verifier.verify(BODY, lib_headers(BODY, WHSEC, ts=ts), now=now)
        assert info.value.code == code


def test_custom_tolerance():
    now = int(time.time())
    assert verify(BODY, lib_headers(BODY, WHSEC, ts=now - 1000), tolerance=3600)
    assert error_of(BODY, lib_headers(BODY, WHSEC, ts=now - 20), tolerance=10).code == "timestamp_too_old"


def test_stale_timestamp_wins_over_bad_signature():
    """A replay of an old capture is reported as old, whatever its signature."""
    headers = {**lib_headers(BODY, WHSEC, ts=int(time.time()) - 3600), "webhook-signature": "v1,AAAA"}
    assert error_of(BODY, headers).code == "timestamp_too_old"


def test_several_signatures_in_one_header():
    old_key = "whsec_" + base64.b64encode(b"old" * 11).decode()
    headers = standard_headers(BODY, [old_key, WHSEC], msg_id=MSG_ID)
    assert len(headers["webhook-signature"].split(" ")) == 2
    # A receiver holding either secret verifies; so does the reference package.
    assert verify(BODY, headers, secret=WHSEC)
    assert verify(BODY, headers, secret=old_key)
    assert Webhook(WHSEC).verify(BODY, headers)
    # Unknown versions and junk beside a good signature are skipped.
    noisy = {**headers, "webhook-signature": "v1a,AAAA v9,QUJD  garbage " + headers["webhook-signature"]}
    assert verify(BODY, noisy, secret=WHSEC)


def test_rotated_secrets_on_the_receiver():
    headers = lib_headers(BODY, WHSEC)
    newer = "whsec_" + base64.b64encode(b"n" * 32).decode()
    assert verify(BODY, headers, secret=[newer, WHSEC])
    assert error_of(BODY, headers, secret=[newer, "plain"]).code == "no_matching_signature"


def test_empty_body():
    ts = int(time.time())
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(ts),
        "webhook-signature": raw_signature(b"", KEY, MSG_ID, ts),
    }
    assert WebhookVerifier(WHSEC).authenticate(b"", headers) == "standard-webhooks"
    assert error_of(b" ", headers).code == "no_matching_signature"
    # Authentic but not JSON: the parse step says so.
    with pytest.raises(WebhookVerificationError) as info:
        WebhookVerifier(WHSEC).verify(b"", headers)
    assert (info.value.code, info.value.message) == ("invalid_payload", "body is not valid JSON")


def test_non_utf8_body():
    body = b"\xff\xfe\x80{}"
    ts = int(time.time())
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(ts),
        "webhook-signature": raw_signature(body, KEY, MSG_ID, ts),
    }
    assert WebhookVerifier(WHSEC).authenticate(body, headers) == "standard-webhooks"
    assert error_of(body + b"x", headers).code == "no_matching_signature"
    with pytest.raises(WebhookVerificationError) as info:
        WebhookVerifier(WHSEC).verify(body, headers)
    assert info.value.code == "invalid_payload"


def test_huge_body_5mb():
    body = b'{"blob":"' + base64.b64encode(os.urandom(3_900_000)) + b'"}'
    assert len(body) > 5_000_000
    headers = lib_headers(body, WHSEC)
    assert WebhookVerifier(WHSEC).authenticate(body, headers) == "standard-webhooks"
    assert error_of(body[:-1] + b" ", headers).code == "no_matching_signature"


@pytest.mark.parametrize("secret", ["whsec_***not base64***", "whsec_"])
def test_bad_whsec_secret_fails_at_construction(secret):
    with pytest.raises(ValueError, match="whsec_|empty"):
        WebhookVerifier(secret)
