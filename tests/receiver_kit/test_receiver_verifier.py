"""WebhookVerifier: which scheme decides, header lookup in every shape a framework hands over."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from receiver_kit import WebhookVerificationError, WebhookVerifier

WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
PAYLOAD = {"event": {"id": "evt_9", "type": "citation_gained"}, "meta": {"event_id": "evt_9"}}
BODY = json.dumps(PAYLOAD, separators=(",", ":")).encode()


def trakkr_sig(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def std_headers(body: bytes, secrets: list[str], ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    sigs = []
    for secret in secrets:
        key = base64.b64decode(secret[len("whsec_") :])
        digest = hmac.new(key, f"evt_9.{ts}.".encode() + body, hashlib.sha256).digest()
        sigs.append("v1," + base64.b64encode(digest).decode())
    return {"webhook-id": "evt_9", "webhook-timestamp": str(ts), "webhook-signature": " ".join(sigs)}


def failure(verifier: WebhookVerifier, body: bytes, headers) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as info:
        verifier.verify(body, headers)
    return info.value


def test_legacy_only_request():
    verifier = WebhookVerifier(WHSEC, allow_legacy=True)
    assert verifier.verify(BODY, {"X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)}) == PAYLOAD
    assert verifier.authenticate(BODY, {"X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)}) == "x-trakkr-signature"


def test_both_schemes_present_standard_decides():
    verifier = WebhookVerifier(WHSEC)
    headers = {**std_headers(BODY, [WHSEC]), "X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)}
    assert verifier.authenticate(BODY, headers) == "standard-webhooks"


def test_rotation_receiver_with_old_secret_passes_when_legacy_header_uses_new():
    """During rotation the legacy header carries one secret; the Standard header carries both."""
    headers = {**std_headers(BODY, [WHSEC, OLD]), "X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)}
    assert WebhookVerifier(OLD).verify(BODY, headers) == PAYLOAD


def test_standard_failure_is_not_rescued_by_a_good_legacy_signature():
    headers = {**std_headers(BODY, [WHSEC], ts=int(time.time()) - 3600), "X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)}
    assert failure(WebhookVerifier(WHSEC), BODY, headers).code == "timestamp_too_old"


def test_partial_standard_headers_plus_legacy_is_missing_header():
    """One webhook-* header present means the Standard scheme is chosen; no silent downgrade."""
    headers = {"webhook-id": "evt_9", "X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)}
    err = failure(WebhookVerifier(WHSEC), BODY, headers)
    assert (err.code, err.message) == ("missing_header", "missing required header: webhook-timestamp")


def test_no_signature_header_at_all():
    err = failure(WebhookVerifier(WHSEC), BODY, {"Content-Type": "application/json"})
    assert (err.code, err.message) == ("missing_header", "missing required header: webhook-id")
    err = failure(WebhookVerifier(WHSEC, allow_legacy=True), BODY, {"Content-Type": "application/json"})
    assert (err.code, err.message) == ("missing_header", "missing required header: X-Trakkr-Signature")


def test_replay_with_standard_headers_stripped_is_refused_by_default():
    """A captured delivery replayed days later without its timestamped headers: the default refuses it."""
    headers = {**std_headers(BODY, [WHSEC]), "X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)}
    assert WebhookVerifier(WHSEC).verify(BODY, headers) == PAYLOAD
    stripped = {"X-Trakkr-Signature": headers["X-Trakkr-Signature"]}
    assert failure(WebhookVerifier(WHSEC), BODY, stripped).code == "missing_header"


def test_allow_legacy_false_requires_standard_headers():
    verifier = WebhookVerifier(WHSEC, allow_legacy=False)
    err = failure(verifier, BODY, {"X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)})
    assert (err.code, err.message) == ("missing_header", "missing required header: webhook-id")
    assert verifier.verify(BODY, std_headers(BODY, [WHSEC])) == PAYLOAD


@pytest.mark.parametrize(
    "value",
    ["sha1=" + "0" * 40, "sha256=" + "A" * 64, "sha256=" + "0" * 63, "0" * 64, "sha256=" + "g" * 64],
)
def test_legacy_bad_format(value):
    err = failure(WebhookVerifier(WHSEC, allow_legacy=True), BODY, {"X-Trakkr-Signature": value})
    assert (err.code, err.message) == (
        "invalid_header",
        "invalid X-Trakkr-Signature header: expected 'sha256=' and 64 lowercase hex digits",
    )


def test_legacy_uppercase_of_a_valid_signature_is_a_format_error():
    upper = "sha256=" + trakkr_sig(BODY, WHSEC)[7:].upper()
    assert (
        failure(WebhookVerifier(WHSEC, allow_legacy=True), BODY, {"X-Trakkr-Signature": upper}).code == "invalid_header"
    )


def test_legacy_wrong_secret_and_tampered():
    verifier = WebhookVerifier(WHSEC, allow_legacy=True)
    err = failure(verifier, BODY, {"X-Trakkr-Signature": trakkr_sig(BODY, "nope")})
    assert (err.code, err.message, err.header) == (
        "no_matching_signature",
        "no matching signature",
        "X-Trakkr-Signature",
    )
    assert (
        failure(verifier, BODY + b"\n", {"X-Trakkr-Signature": trakkr_sig(BODY, WHSEC)}).code == "no_matching_signature"
    )


def test_legacy_rotation_list():
    assert (
        WebhookVerifier([WHSEC, OLD], allow_legacy=True).verify(BODY, {"X-Trakkr-Signature": trakkr_sig(BODY, OLD)})
        == PAYLOAD
    )


@pytest.mark.parametrize(
    "shape",
    ["lower", "upper", "title", "environ", "pairs", "bytes-pairs"],
)
def test_header_lookup_is_case_insensitive_in_every_shape(shape):
    base = {**std_headers(BODY, [WHSEC])}
    if shape == "lower":
        headers = base
    elif shape == "upper":
        headers = {k.upper(): v for k, v in base.items()}
    elif shape == "title":
        headers = {k.title(): v for k, v in base.items()}
    elif shape == "environ":
        headers = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in base.items()}
        headers["wsgi.input"] = object()
    elif shape == "pairs":
        headers = [("Content-Type", "application/json"), *base.items()]
    else:
        headers = [(k.encode(), v.encode()) for k, v in base.items()]
    assert WebhookVerifier(WHSEC).verify(BODY, headers) == PAYLOAD


def test_legacy_header_lookup_any_case():
    for name in ("x-trakkr-signature", "X-TRAKKR-SIGNATURE", "HTTP_X_TRAKKR_SIGNATURE"):
        assert WebhookVerifier(WHSEC, allow_legacy=True).verify(BODY, {name: trakkr_sig(BODY, WHSEC)}) == PAYLOAD


def test_parsed_payload_may_be_a_list_for_templated_bodies():
    body = b'[{"text":"hi"}]'
    assert WebhookVerifier(WHSEC, allow_legacy=True).verify(body, {"X-Trakkr-Signature": trakkr_sig(body, WHSEC)}) == [
        {"text": "hi"}
    ]


def test_authentic_but_not_json():
    body = b"not json"
    err = failure(WebhookVerifier(WHSEC, allow_legacy=True), body, {"X-Trakkr-Signature": trakkr_sig(body, WHSEC)})
    assert (err.code, err.message) == ("invalid_payload", "body is not valid JSON")


def test_str_body_is_refused():
    with pytest.raises(TypeError, match="raw request body"):
        WebhookVerifier(WHSEC).verify(BODY.decode(), {})  # type: ignore[arg-type]


def test_negative_tolerance_is_refused():
    with pytest.raises(ValueError, match="tolerance"):
        WebhookVerifier(WHSEC, tolerance=-1)
