"""How a configured signing secret becomes HMAC key bytes, for each signature scheme.

* ``X-Trakkr-Signature`` (the product page's scheme): the key is the secret's UTF-8
  bytes, whatever the secret looks like, exactly as the page's ``secret.encode()``.
* Standard Webhooks (``webhook-signature``): a secret starting with ``whsec_`` is
  base64 after the prefix and the key is the decoded bytes; any other ``str``
  secret is its UTF-8 bytes. A ``bytes`` secret is the raw key in both schemes.

So one ``whsec_…`` secret gives two different keys: the legacy header signs with
the whole string, the Standard Webhooks header with the decoded bytes. Both are
what the sender does (see the README's key-mapping table).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

Secret = str | bytes
#: One secret, or several (during a rotation any of them may have signed).
Secrets = Secret | Sequence[Secret]

WHSEC_PREFIX = "whsec_"


def secret_list(secret: Secrets) -> tuple[Secret, ...]:
    """``secret`` as a non-empty tuple of non-empty secrets; ``ValueError``/``TypeError`` otherwise.

    An empty secret is refused rather than used: an unset environment variable
    would otherwise make every forged request with an empty-key HMAC pass.
    """
    items: tuple[object, ...]
    if isinstance(secret, (str, bytes, bytearray)):
        items = (secret,)
    elif isinstance(secret, Sequence):
        items = tuple(secret)
    else:
        raise TypeError(f"a webhook secret must be str, bytes or a list of them, not {type(secret).__name__}")
    if not items:
        raise ValueError("at least one webhook secret is required")
    out: list[Secret] = []
    for item in items:
        if isinstance(item, bytearray):
            item = bytes(item)
        if not isinstance(item, (str, bytes)):
            raise TypeError(f"a webhook secret must be str or bytes, not {type(item).__name__}")
        if not item:
            raise ValueError("a webhook secret may not be empty")
        out.append(item)
    return tuple(out)


def legacy_key(secret: Secret) -> bytes:
    """HMAC key of ``X-Trakkr-Signature``: the secret's UTF-8 bytes (``bytes`` as given)."""
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def standard_key(secret: Secret) -> bytes:
    """HMAC key of ``webhook-signature``: base64-decoded after ``whsec_``, else UTF-8 bytes.

    ``ValueError`` when a ``whsec_`` secret is not valid base64 (a copy-paste slip
    should fail loudly at start-up, not as 401s in production).
    """
    if isinstance(secret, bytes):
        return secret
    if not secret.startswith(WHSEC_PREFIX):
        return secret.encode("utf-8")
    encoded = secret[len(WHSEC_PREFIX) :].strip()
    # Some issuers drop the padding; restore it so strict decoding still works.
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret starting with 'whsec_' must be base64 after the prefix") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key
