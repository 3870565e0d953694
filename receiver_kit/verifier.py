"""The framework-agnostic core: raw body bytes and headers in, verified payload out.

Which scheme decides:

* If any Standard Webhooks header (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``) is present, those headers alone decide, and all three
  are required. ``X-Trakkr-Signature`` is then ignored, on purpose: the
  Standard Webhooks signature is the stronger one (it also covers the id and a
  timestamp), and during a secret rotation the sender puts both secrets in
  ``webhook-signature`` but only one in ``X-Trakkr-Signature``; requiring both
  would turn away a receiver that still holds the other secret.
* Otherwise the request is refused (``missing_header: webhook-id``): the sender
  always sends the Standard Webhooks headers, so a delivery without them is a
  captured request replayed with its timestamped headers stripped. Only with
  ``allow_legacy=True`` (a sender that signs with ``X-Trakkr-Signature`` alone,
  as the product page's first version did) does ``X-Trakkr-Signature`` decide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import WebhookVerificationError
from .keys import Secrets, legacy_key, secret_list
from .signature import SIGNATURE_HEADER, SIGNATURE_PREFIX, raw_bytes, verify_signature
from .standard import DEFAULT_TOLERANCE, HEADERS, ID_HEADER, TIMESTAMP_HEADER, standard_keys, verify_standard
from .standard import SIGNATURE_HEADER as STD_SIGNATURE_HEADER

#: A headers mapping (any case), a WSGI environ (``HTTP_X_TRAKKR_SIGNATURE``) or
#: ``(name, value)`` pairs as ``str`` or ``bytes`` (ASGI scope headers).
Headers = Mapping[str, Any] | Iterable[tuple[str | bytes, str | bytes]]

SCHEME_STANDARD = "standard-webhooks"
SCHEME_TRAKKR = "x-trakkr-signature"
_WANTED = {name.lower() for name in (*HEADERS, SIGNATURE_HEADER)}
_LEGACY_FORMAT = "'sha256=' and 64 lowercase hex digits"


def _normalise(name: str | bytes) -> str:
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    if name.startswith("HTTP_"):  # WSGI/CGI environ spelling
        name = name[5:].replace("_", "-")
    return name.lower()


def find_headers(headers: Headers) -> dict[str, str]:
    """The signature headers in ``headers``, keyed by lower-case name, found case-insensitively."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for name, value in items:
        if not isinstance(name, (str, bytes)):
            continue
        key = _normalise(name)
        if key in _WANTED and key not in found:  # first occurrence wins, like most frameworks
            found[key] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return found


def _legacy_format_ok(signature: str) -> bool:
    hexpart = signature[len(SIGNATURE_PREFIX) :]
    return (
        signature.startswith(SIGNATURE_PREFIX) and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)
    )


class WebhookVerifier:
    """Verifies deliveries signed with ``secret`` (one, or a list during rotation).

    ``tolerance``: seconds a ``webhook-timestamp`` may differ from this host's
    clock, either way. ``allow_legacy`` (default ``False``): also accept requests
    signed only with ``X-Trakkr-Signature`` (no timestamp, so no replay window).
    """

    def __init__(self, secret: Secrets, *, tolerance: float = DEFAULT_TOLERANCE, allow_legacy: bool = False) -> None:
        self.secrets = secret_list(secret)
        if tolerance < 0:
            raise ValueError("tolerance must be >= 0 seconds")
        self.tolerance = tolerance
        self.allow_legacy = allow_legacy
        # Derived once: decoding whsec_ secrets at start-up surfaces a bad one at once.
        self._std_keys = standard_keys(self.secrets)
        self._legacy_keys = tuple(legacy_key(s) for s in self.secrets)

    def authenticate(self, body: bytes, headers: Headers, *, now: float | None = None) -> str:
        """Check the signature of ``body``; return the scheme that vouched for it.

        Raises ``WebhookVerificationError`` (``missing_header``, ``invalid_header``,
        ``timestamp_too_old``, ``timestamp_too_new``, ``no_matching_signature``).
        """
        raw_bytes(body, "body")
        found = find_headers(headers)
        if any(name in found for name in HEADERS):
            verify_standard(
                body,
                msg_id=found.get(ID_HEADER),
                timestamp=found.get(TIMESTAMP_HEADER),
                signature=found.get(STD_SIGNATURE_HEADER),
                keys=self._std_keys,
                tolerance=self.tolerance,
                now=now,
            )
            return SCHEME_STANDARD
        if not self.allow_legacy:
            raise WebhookVerificationError.missing_header(ID_HEADER)
        signature = found.get(SIGNATURE_HEADER.lower())
        if signature is None or not signature.strip():
            raise WebhookVerificationError.missing_header(SIGNATURE_HEADER)
        if not _legacy_format_ok(signature):
            raise WebhookVerificationError.invalid_header(SIGNATURE_HEADER, _LEGACY_FORMAT)
        if not verify_signature(body, signature, self._legacy_keys):
            raise WebhookVerificationError.no_matching_signature(SIGNATURE_HEADER)
        return SCHEME_TRAKKR

    def verify(self, body: bytes, headers: Headers, *, now: float | None = None) -> Any:
        """Authenticate ``body`` then parse it as JSON; the parsed payload (a dict for Trakkr's format).

        A body whose signature is good but which is not UTF-8 JSON raises
        ``WebhookVerificationError`` with code ``invalid_payload``.
        """
        self.authenticate(body, headers, now=now)
        return parse_payload(body)


def parse_payload(body: bytes) -> Any:
    """``body`` parsed as UTF-8 JSON, or ``WebhookVerificationError('invalid_payload')``."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else bytes(body).decode("utf-8")
        return json.loads(text)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        raise WebhookVerificationError.invalid_payload() from None
