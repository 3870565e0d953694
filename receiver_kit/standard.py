"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signed content is ``f"{webhook-id}.{webhook-timestamp}.".encode() + body``; each
signature is ``v1,<base64 HMAC-SHA256>``; a header may carry several, separated by
spaces (a sender rotating its secret signs with the old and the new one). The
timestamp bounds replays: it must lie within ``tolerance`` seconds (300 by
default) of the receiver's clock, in the past *or* the future.

Key mapping: see :mod:`receiver_kit.keys` (a ``whsec_`` secret is base64 after
the prefix; any other string is its UTF-8 bytes). Interoperable with the
``standardwebhooks`` package for ``whsec_`` secrets; for a plain string secret
give that package ``secret.encode()`` (it base64-decodes every ``str``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence

from .errors import WebhookVerificationError
from .keys import Secrets, secret_list, standard_key

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
DEFAULT_TOLERANCE = 300
VERSION = "v1"


def _digest(key: bytes, msg_id: str, timestamp: int, payload: bytes) -> bytes:
    # Feed the body separately: a 5 MB body is hashed in place, never copied.
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode(), hashlib.sha256)
    mac.update(payload)
    return mac.digest()


def sign_standard(payload: bytes, secret: str | bytes, *, msg_id: str, timestamp: int) -> str:
    """One ``v1,<base64>`` signature of ``payload`` for the given id and Unix timestamp."""
    digest = _digest(standard_key(secret), msg_id, int(timestamp), payload)
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


def standard_headers(payload: bytes, secret: Secrets, *, msg_id: str, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given (rotation)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signatures = " ".join(sign_standard(payload, s, msg_id=msg_id, timestamp=ts) for s in secret_list(secret))
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signatures}


def standard_keys(secret: Secrets) -> tuple[bytes, ...]:
    """The Standard Webhooks HMAC keys of one secret or a list of them."""
    return tuple(standard_key(s) for s in secret_list(secret))


def parse_timestamp(value: str) -> int:
    """``webhook-timestamp`` as an int: ASCII digits only (integer Unix seconds)."""
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        raise WebhookVerificationError.invalid_header(TIMESTAMP_HEADER, "integer Unix seconds")
    return int(value)


def check_timestamp(timestamp: int, *, tolerance: float, now: float | None = None) -> None:
    """Raise unless ``timestamp`` is within ``tolerance`` seconds of ``now`` either way."""
    now = time.time() if now is None else now
    if timestamp < now - tolerance:
        raise WebhookVerificationError.timestamp_too_old()
    if timestamp > now + tolerance:
        raise WebhookVerificationError.timestamp_too_new()


def parse_signatures(value: str) -> list[bytes]:
    """The decoded ``v1`` signatures in a ``webhook-signature`` header.

    Entries of other versions (e.g. ``v1a`` asymmetric ones) are skipped, as are
    malformed entries beside well-formed ones (forward compatibility); a header
    with no well-formed entry at all is a format error.
    """
    wellformed = 0
    found: list[bytes] = []
    for entry in value.split():
        version, sep, encoded = entry.partition(",")
        if not (sep and version and encoded):
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        wellformed += 1
        if version == VERSION:
            found.append(raw)
    if not wellformed:
        raise WebhookVerificationError.invalid_header(
            SIGNATURE_HEADER, "space-separated '<version>,<base64>' signatures"
        )
    return found


def verify_standard(
    payload: bytes,
    *,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    keys: Sequence[bytes],
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check the three header values against ``payload``; raise ``WebhookVerificationError`` if bad.

    Order of checks (and so which error wins): missing header, timestamp format,
    timestamp window, signature format, signature match. ``keys`` are HMAC keys
    (see :func:`standard_keys`).
    """
    for name, value in zip(HEADERS, (msg_id, timestamp, signature), strict=True):
        if value is None or not value.strip():
            raise WebhookVerificationError.missing_header(name)
    assert msg_id is not None and timestamp is not None and signature is not None
    ts = parse_timestamp(timestamp)
    check_timestamp(ts, tolerance=tolerance, now=now)
    given = parse_signatures(signature)
    if not _any_match(payload, msg_id, ts, keys, given):
        raise WebhookVerificationError.no_matching_signature(SIGNATURE_HEADER)


def _any_match(payload: bytes, msg_id: str, ts: int, keys: Iterable[bytes], given: list[bytes]) -> bool:
    matched = False
    for key in keys:
        expected = _digest(key, msg_id, ts, payload)
        for candidate in given:
            matched |= hmac.compare_digest(expected, candidate)
    return matched
