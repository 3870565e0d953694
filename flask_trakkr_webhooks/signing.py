"""Signatures a receiver uses to trust a delivery.

``X-Trakkr-Signature: sha256=<hex HMAC-SHA256(secret, exact body bytes)>`` is the product
page's scheme, verifiable by its ``verify_signature`` snippet unchanged.

:func:`signature_headers` is the one place :mod:`message` asks for every signature
header of a delivery, so further schemes (Standard Webhooks' ``webhook-id`` /
``webhook-timestamp`` / ``webhook-signature``) are added here without touching the
request builder.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

SIGNATURE_HEADER = "X-Trakkr-Signature"
SIGNATURE_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """Return ``"sha256=<hex>"``: HMAC-SHA256 of the exact ``body`` bytes keyed by ``secret`` (UTF-8)."""
    if not isinstance(body, (bytes, bytearray)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret must be a non-empty string")
    digest = hmac.new(secret.encode("utf-8"), bytes(body), hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


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
    seconds of this attempt) are what timestamped schemes sign besides the body;
    ``previous_secret`` is a secret still in its rotation grace period. The
    product-page signature uses the current secret only: its snippet compares one value.
    """
    if not secret:
        return {}
    return {SIGNATURE_HEADER: sign(body, secret)}
