"""X-Trakkr-Signature: vectors computed here with ``hmac``, independently of the kit."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver_kit import sign_payload, verify_signature

SECRET = "whsec_not-base64-here-but-legacy-does-not-care"
BODY = b'{"event":{"id":"evt_1","type":"visibility_changed"},"meta":{"event_id":"evt_1"}}'


def reference(payload: bytes, secret: str) -> str:
    """The product page's computation, written out again."""
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def seed_verify(payload: bytes, signature: str, secret: str) -> bool:
    """The product page's snippet, unchanged."""
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


def test_valid_signature_verifies_and_sign_payload_matches_reference():
    assert sign_payload(BODY, SECRET) == reference(BODY, SECRET)
    assert verify_signature(BODY, reference(BODY, SECRET), SECRET) is True


def test_known_vector():
    # Computed outside Python: printf hello | openssl dgst -sha256 -hmac key
    assert sign_payload(b"hello", "key") == ("sha256=9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b")


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_one_byte_tampered_body_fails(position):
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01
    assert verify_signature(bytes(tampered), reference(BODY, SECRET), SECRET) is False


def test_appended_byte_fails():
    assert verify_signature(BODY + b" ", reference(BODY, SECRET), SECRET) is False


def test_wrong_secret_fails():
    assert verify_signature(BODY, reference(BODY, "other"), SECRET) is False


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature_is_false_not_an_error(signature):
    assert verify_signature(BODY, signature, SECRET) is False


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.replace("sha256=", "sha1="),
        lambda s: s.replace("sha256=", "SHA256="),
        lambda s: s.replace("sha256=", ""),
        lambda s: s.replace("sha256=", "sha256:"),
        lambda s: " " + s,
        lambda s: s + "\n",
        lambda s: s[:-1],
        lambda s: s + "0",
    ],
    ids=["sha1", "upper-prefix", "no-prefix", "colon", "leading-space", "trailing-newline", "short", "long"],
)
def test_wrong_prefix_or_shape_fails(mangle):
    assert verify_signature(BODY, mangle(reference(BODY, SECRET)), SECRET) is False


def test_uppercase_hex_is_refused_like_the_seed_snippet():
    upper = "sha256=" + reference(BODY, SECRET)[len("sha256=") :].upper()
    assert seed_verify(BODY, upper, SECRET) is False
    assert verify_signature(BODY, upper, SECRET) is False


def test_non_ascii_signature_is_false_where_the_seed_would_raise():
    weird = "sha256=" + "é" * 64
    with pytest.raises(TypeError):
        seed_verify(BODY, weird, SECRET)
    assert verify_signature(BODY, weird, SECRET) is False


def test_empty_body():
    assert verify_signature(b"", reference(b"", SECRET), SECRET) is True
    assert verify_signature(b"", reference(b" ", SECRET), SECRET) is False


def test_non_utf8_body():
    body = b"\xff\xfe\x00\x80 not utf-8 \xc3\x28"
    assert verify_signature(body, reference(body, SECRET), SECRET) is True
    assert verify_signature(body[:-1], reference(body, SECRET), SECRET) is False


def test_huge_body_5mb():
    body = os.urandom(5 * 1024 * 1024)
    sig = reference(body, SECRET)
    assert verify_signature(body, sig, SECRET) is True
    tampered = bytearray(body)
    tampered[-1] ^= 0xFF
    assert verify_signature(bytes(tampered), sig, SECRET) is False


def test_bytearray_and_memoryview_bodies():
    sig = reference(BODY, SECRET)
    assert verify_signature(bytearray(BODY), sig, SECRET) is True
    assert verify_signature(memoryview(BODY), sig, SECRET) is True


def test_unicode_secret_is_utf8_encoded():
    secret = "sécret-ünïcode"
    assert verify_signature(BODY, reference(BODY, secret), secret) is True
    assert verify_signature(BODY, reference(BODY, secret), secret.encode("utf-8")) is True


def test_rotated_secrets_any_matches():
    old, new = "old-secret", "new-secret"
    assert verify_signature(BODY, reference(BODY, old), [new, old]) is True
    assert verify_signature(BODY, reference(BODY, new), [new, old]) is True
    assert verify_signature(BODY, reference(BODY, "third"), [new, old]) is False
    assert verify_signature(BODY, reference(BODY, new), (new,)) is True


def test_str_payload_is_refused():
    with pytest.raises(TypeError, match="raw request body"):
        verify_signature(BODY.decode(), reference(BODY, SECRET), SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="raw request body"):
        sign_payload(BODY.decode(), SECRET)  # type: ignore[arg-type]


@pytest.mark.parametrize("secret", ["", b"", [], ["ok", ""]])
def test_empty_secret_is_refused(secret):
    with pytest.raises(ValueError, match="secret"):
        verify_signature(BODY, "sha256=" + "0" * 64, secret)


@pytest.mark.parametrize("secret", [None, 42, [None]])
def test_secret_of_wrong_type_is_refused(secret):
    with pytest.raises(TypeError, match="secret"):
        verify_signature(BODY, "sha256=" + "0" * 64, secret)


def test_sign_payload_takes_one_secret():
    with pytest.raises(TypeError, match="exactly one secret"):
        sign_payload(BODY, ["a", "b"])  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=256),
    secret=st.text(min_size=1, max_size=40),
    signature=st.one_of(
        st.text(alphabet="sha256=0123456789abcdefABCDEF ", max_size=80),
        st.just(None),
    ),
    use_real=st.booleans(),
)
def test_same_answer_as_the_seed_snippet(payload, secret, signature, use_real):
    if use_real:
        signature = reference(payload, secret)
    ours = verify_signature(payload, signature, secret)
    if signature is None:
        assert ours is False  # the snippet would raise TypeError here
    else:
        assert ours is seed_verify(payload, signature, secret)
