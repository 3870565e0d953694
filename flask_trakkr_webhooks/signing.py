"""Signatures a receiver uses to trust a delivery, and the signing secrets themselves.

Two schemes, both over the exact body bytes:

* ``X-Trakkr-Signature: sha256=<hex HMAC-SHA256(secret, body)>``: the product page's
  scheme, verifiable by its ``verify_signature`` snippet unchanged. The key is the
  secret's UTF-8 bytes, whatever the secret looks like. Current secret only: the
  snippet compares one value.
* Standard Webhooks: ``webhook-id`` (the event id, the same on every retry and
  redelivery), ``webhook-timestamp`` (Unix seconds of this attempt) and
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>``,
  one ``v1,`` entry per secret (space-separated) while a rotated-out secret is in its
  grace period. The key mapping is receiver_kit's (:func:`receiver_kit.keys.standard_key`,
  shared so sender and receiver cannot drift): a ``whsec_`` secret is base64 after the
  prefix; any other secret is its UTF-8 bytes.

:func:`signature_headers` is the one place :mod:`message` asks for these headers. Both
HMACs are computed by receiver_kit (:func:`receiver_kit.sign_payload`,
:func:`receiver_kit.standard.sign_standard`): one implementation of each scheme, shared by
sender and receiver so they cannot drift.
"""

from __future__ import annotations

import base64
import secrets as _secrets
from collections.abc import Mapping

from receiver_kit.keys import WHSEC_PREFIX
from receiver_kit.keys import standard_key as _standard_key
from receiver_kit.signature import sign_payload
from receiver_kit.standard import sign_standard as _sign_standard

SIGNATURE_HEADER = "X-Trakkr-Signature"
SIGNATURE_PREFIX = "sha256="
#: Standard Webhooks header names (lower case, as the specification writes them).
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
#: The value of ``signing_secret`` that asks the API to generate one.
GENERATE = "generate"
#: Random bytes in a generated secret: 256 bits, the full strength of HMAC-SHA256.
GENERATED_KEY_BYTES = 32


def sign(body: bytes, secret: str) -> str:
    """Return ``"sha256=<hex>"``: HMAC-SHA256 of the exact ``body`` bytes keyed by ``secret`` (UTF-8)."""
    if not isinstance(body, (bytes, bytearray)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret must be a non-empty string")
    return sign_payload(bytes(body), secret)


def generate_secret() -> str:
    """A new signing secret: ``"whsec_"`` + standard base64 of 32 random bytes (Standard Webhooks form)."""
    return WHSEC_PREFIX + base64.b64encode(_secrets.token_bytes(GENERATED_KEY_BYTES)).decode("ascii")


def standard_key(secret: str) -> bytes | None:
    """The Standard Webhooks HMAC key of ``secret``, or ``None`` when a ``whsec_`` secret is not base64.

    The API refuses such secrets; one written around it still gets ``X-Trakkr-Signature``.
    """
    try:
        return _standard_key(secret)
    except ValueError:
        return None


def secret_problems(secret: str) -> list[str]:
    """Why ``secret`` cannot sign Standard Webhooks (empty list: it can)."""
    if standard_key(secret) is None:
        return [
            "starts with 'whsec_', so it must be standard base64 after the prefix (Standard Webhooks); "
            'use "generate" for a new one'
        ]
    return []


def sign_standard(body: bytes, key: bytes, *, message_id: str, timestamp: int) -> str:
    """One ``v1,<base64>`` Standard Webhooks signature of ``body`` with the HMAC ``key``."""
    return _sign_standard(bytes(body), key, msg_id=message_id, timestamp=int(timestamp))


def signature_headers(
    body: bytes,
    *,
    secret: str | None,
    message_id: str,
    timestamp: int,
    previous_secret: str | None = None,
) -> Mapping[str, str]:
    """Every signature header for one request (empty without a secret).

    ``message_id`` (the event id, stable across retries) and ``timestamp`` (Unix
    seconds of this attempt) are signed by Standard Webhooks besides the body;
    ``previous_secret`` is a secret still in its rotation grace period: it signs
    ``webhook-signature`` too, never ``X-Trakkr-Signature``. Without a usable
    Standard Webhooks key for the current secret (a ``whsec_`` secret that is not
    base64) only ``X-Trakkr-Signature`` is sent.
    """
    if not secret:
        return {}
    headers = {SIGNATURE_HEADER: sign(body, secret)}
    key = standard_key(secret)
    if key is None:
        return headers
    keys = [key]
    old = standard_key(previous_secret) if previous_secret else None
    if old is not None and old != key:
        keys.append(old)
    headers[ID_HEADER] = message_id
    headers[TIMESTAMP_HEADER] = str(int(timestamp))
    headers[STANDARD_SIGNATURE_HEADER] = " ".join(
        sign_standard(body, k, message_id=message_id, timestamp=timestamp) for k in keys
    )
    return headers
