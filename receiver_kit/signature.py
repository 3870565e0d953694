"""``X-Trakkr-Signature``: the product page's ``sha256=<hex>`` HMAC over the exact body bytes.

``verify_signature`` has the page snippet's semantics, byte for byte:
``hmac.compare_digest(f"sha256={hexdigest}", signature)``. Design decisions:

* **Uppercase hex is refused.** The page's snippet compares strings, so
  ``sha256=ABC…`` fails there; the sender always writes lowercase
  (``hexdigest()``). Accepting it here would make the kit and the page disagree
  on the same input, and no genuine sender produces it.
* Any other prefix (``sha1=``, ``SHA256=``, none), surrounding whitespace or a
  truncated digest is refused the same way.
* Where the snippet would crash, this returns ``False`` instead: a missing
  header (``None``) or a signature with non-ASCII characters (``compare_digest``
  raises ``TypeError`` on those).
* A ``str`` payload is a ``TypeError``: the body must be the raw bytes, never a
  decoded or re-serialised copy.
* An empty secret is a ``ValueError``, never a key.
* A list of secrets (rotation) is accepted: ``True`` when any of them signed.
"""

from __future__ import annotations

import hashlib
import hmac

from .keys import Secrets, legacy_key, secret_list

SIGNATURE_HEADER = "X-Trakkr-Signature"
SIGNATURE_PREFIX = "sha256="


def raw_bytes(payload: object, name: str = "payload") -> bytes | bytearray | memoryview:
    """``payload`` if it is bytes-like; ``TypeError`` otherwise (a ``str`` with a hint why).

    Typed ``object`` on purpose: callers without type checking do pass ``str``.
    """
    if isinstance(payload, str):
        raise TypeError(
            f"{name} must be the raw request body as bytes (e.g. request.get_data()), "
            "not a decoded or re-serialised str"
        )
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(payload).__name__}")
    return payload


def _hexdigest(payload: bytes | bytearray | memoryview, key: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, secret: str | bytes) -> str:
    """``"sha256=<lowercase hex HMAC-SHA256(secret, payload)>"``, the ``X-Trakkr-Signature`` value."""
    if not isinstance(secret, (str, bytes)):
        raise TypeError("sign_payload signs with exactly one secret (str or bytes)")
    (only,) = secret_list(secret)
    return SIGNATURE_PREFIX + _hexdigest(raw_bytes(payload), legacy_key(only))


def verify_signature(payload: bytes, signature: str | None, secret: Secrets) -> bool:
    """True when ``signature`` is ``sha256=<hex>`` of ``payload`` under ``secret`` (or any of a list).

    Constant-time comparison; same answer as the product page's snippet on every
    input that snippet accepts (see the module docstring for the few it crashes on).
    """
    # The common case (one str secret, a bytes body) skips the general checks: it is the
    # whole cost of a receiver's verification beside the HMAC itself.
    if type(secret) is str and secret and type(payload) is bytes:
        keys: tuple[bytes, ...] = (secret.encode("utf-8"),)
        body: bytes | bytearray | memoryview = payload
    else:
        body = raw_bytes(payload)
        keys = tuple(legacy_key(s) for s in secret_list(secret))
    if not isinstance(signature, str) or not signature.isascii():
        return False
    matched = False
    # Compare against every secret (no early exit) so timing does not tell which one matched.
    # ASCII str on both sides: compare_digest takes them as they are, no encoding needed.
    for key in keys:
        matched |= hmac.compare_digest(SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest(), signature)
    return matched
