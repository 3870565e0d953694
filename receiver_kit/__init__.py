"""receiver_kit: verify and process Trakkr webhooks exactly once (standard library only).

>>> from receiver_kit import verify_signature, sign_payload
>>> sig = sign_payload(b'{"a":1}', "s3cret")
>>> verify_signature(b'{"a":1}', sig, "s3cret")
True

``WebhookVerifier`` is the framework-agnostic core (both signature schemes);
``receiver_kit.flask`` has the Flask decorators, ``receiver_kit.idempotency`` the
stores, ``receiver_kit.testing`` helpers to sign requests in your own tests.
Importing this package loads nothing outside the standard library.
"""

from __future__ import annotations

from ._version import __version__
from .errors import WebhookVerificationError
from .signature import SIGNATURE_HEADER, sign_payload, verify_signature
from .standard import DEFAULT_TOLERANCE, sign_standard, standard_headers
from .verifier import SCHEME_STANDARD, SCHEME_TRAKKR, WebhookVerifier, parse_payload

__all__ = [
    "__version__",
    "DEFAULT_TOLERANCE",
    "SCHEME_STANDARD",
    "SCHEME_TRAKKR",
    "SIGNATURE_HEADER",
    "WebhookVerificationError",
    "WebhookVerifier",
    "parse_payload",
    "sign_payload",
    "sign_standard",
    "standard_headers",
    "verify_signature",
]
