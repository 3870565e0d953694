"""Credentials at rest: webhook secrets are stored Fernet-encrypted.

``TRAKKR_WEBHOOKS_ENCRYPTION_KEY`` holds one Fernet key, several comma-separated,
or a list. The first key encrypts; every key decrypts (``MultiFernet``), so a key is
rotated by putting the new one first, running :func:`rotate` (the
``flask webhooks rotate-key`` command), then removing the old one.

A column of type :class:`EncryptedText` stores ``"fernet:<token>"``. Values written
while no key was configured (testing/debug only, see :func:`check_key`) are stored as
they are and still read; :func:`rotate` encrypts them.

Where the key comes from, in order:

1. :func:`using_keys` (a context manager: scripts, the rotation command, tests);
2. the current Flask app: ``get_state().settings.encryption_key`` when the extension
   is initialised on it, else ``app.config["TRAKKR_WEBHOOKS_ENCRYPTION_KEY"]``.

Flask-SQLAlchemy needs an app context for every query, so the API (request
context) and workers (``flask webhooks worker``, or RQ jobs that push the host
app's context) both find the key the same way. Without either, reading or
writing an encrypted column raises ``RuntimeError``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app, has_app_context
from sqlalchemy.types import TypeDecorator

from .errors import ConfigError, TrakkrWebhooksError
from .progress import Progress
from .state import EXTENSION_KEY, WebhooksState

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

    from .config import Settings

SETTING = "TRAKKR_WEBHOOKS_ENCRYPTION_KEY"
#: Marker of an encrypted value in the database.
PREFIX = "fernet:"
#: Marker of a plaintext value that itself starts with a marker (written without a key).
PLAIN_PREFIX = "plain:"
GENERATE_HINT = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    " or `flask webhooks generate-key`"
)

log = logging.getLogger(__name__)


class DecryptionError(TrakkrWebhooksError, RuntimeError):
    """A stored credential cannot be decrypted with the configured key(s)."""


class EncryptionKeyError(TrakkrWebhooksError, RuntimeError):
    """No encryption key is configured where one is needed (start-up, rotation, no app context)."""


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 text) for ``TRAKKR_WEBHOOKS_ENCRYPTION_KEY``."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(value: Any) -> tuple[str, ...]:
    """Normalise the setting to a tuple of key strings (empty when unset).

    Accepts ``None``, a string (comma-separated for several keys), bytes, or a list of
    strings/bytes. Raises :class:`~.errors.ConfigError` (a ``ValueError``) naming the setting
    for a value of another type, and naming the position of a malformed key (never the key
    itself, which must not reach logs).
    """
    if value is None:
        return ()
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, (str, list, tuple)):
        raise ConfigError(
            f"{SETTING} must be a string (one key, or several comma-separated) or a list of strings, "
            f"not {type(value).__name__}"
        )
    items = value.split(",") if isinstance(value, str) else list(value)
    keys: list[str] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, (str, bytes)):
            raise ConfigError(f"{SETTING}: key #{index} must be a string, not {type(item).__name__}")
        text = (item.decode("ascii", "replace") if isinstance(item, bytes) else item).strip()
        if not text:
            continue
        try:
            Fernet(text)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{SETTING}: key #{index} is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                f"generate one with {GENERATE_HINT}"
            ) from None
        if text not in keys:
            keys.append(text)
    return tuple(keys)


class KeyRing:
    """The configured keys: the first encrypts, all of them decrypt."""

    def __init__(self, keys: Any) -> None:
        self.keys = parse_keys(keys)
        if not self.keys:
            raise ValueError(f"{SETTING}: no key given")
        self._primary = Fernet(self.keys[0])
        self._all = MultiFernet([Fernet(k) for k in self.keys])

    def encrypt(self, plaintext: str) -> str:
        """``"fernet:<token>"`` of ``plaintext``, with the first key."""
        return PREFIX + self._all.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The plaintext of a stored value (legacy plaintext values are returned as they are)."""
        if stored.startswith(PREFIX):
            try:
                return self._all.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
            except (InvalidToken, UnicodeError):
                raise DecryptionError(
                    f"cannot decrypt a stored webhook credential with the {len(self.keys)} key(s) in {SETTING}: "
                    "it was encrypted with a key that is not configured. Keep the old key in the list "
                    "(after the new one) until `flask webhooks rotate-key` has re-encrypted every row."
                ) from None
        return _strip_plain(stored)

    def is_current(self, stored: str) -> bool:
        """True when ``stored`` is encrypted with the first key (rotation can skip it)."""
        if not stored.startswith(PREFIX):
            return False
        try:
            self._primary.decrypt(stored[len(PREFIX) :].encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True


def _strip_plain(stored: str) -> str:
    return stored[len(PLAIN_PREFIX) :] if stored.startswith(PLAIN_PREFIX) else stored


@lru_cache(maxsize=32)
def _cached_keyring(value: Any) -> KeyRing | None:
    return KeyRing(value) if parse_keys(value) else None


def keyring_for(value: Any) -> KeyRing | None:
    """The :class:`KeyRing` of a setting value (cached), or ``None`` when no key is set."""
    if isinstance(value, KeyRing) or value is None:
        return value
    return _cached_keyring(value if isinstance(value, (str, bytes)) else tuple(value))


_UNSET = object()
_override: contextvars.ContextVar[object] = contextvars.ContextVar("trakkr_encryption_keys", default=_UNSET)


@contextmanager
def using_keys(keys: Any) -> Iterator[KeyRing | None]:
    """Within the block, encrypted columns use ``keys`` (a setting value, a :class:`KeyRing`, or
    ``None`` for no key) instead of the current app's. Yields the key ring.
    """
    ring = keyring_for(keys)
    token = _override.set(ring)
    try:
        yield ring
    finally:
        _override.reset(token)


def current_keyring() -> KeyRing | None:
    """The key ring in effect (see the module docstring); ``None`` when no key is configured.

    Raises ``RuntimeError`` outside an app context and outside :func:`using_keys`.
    """
    ring = _override.get()
    if ring is not _UNSET:
        return cast("KeyRing | None", ring)  # using_keys sets only a key ring or None
    if not has_app_context():
        raise EncryptionKeyError(
            "encrypted webhook credentials need the Flask app context (for "
            f"{SETTING}) or an explicit flask_trakkr_webhooks.crypto.using_keys(...) block"
        )
    state: WebhooksState | None = current_app.extensions.get(EXTENSION_KEY)
    value = state.settings.encryption_key if state is not None else current_app.config.get(SETTING)
    return keyring_for(value)


def encrypt_value(plaintext: str, ring: KeyRing | None = None) -> str:
    """The stored form of ``plaintext`` with ``ring`` (default: :func:`current_keyring`).

    Without a key the value is stored as it is (testing/debug only); a plaintext that
    looks like a marker gets ``"plain:"`` in front so it cannot be misread.
    """
    ring = ring if ring is not None else current_keyring()
    if ring is not None:
        return ring.encrypt(plaintext)
    return PLAIN_PREFIX + plaintext if plaintext.startswith((PREFIX, PLAIN_PREFIX)) else plaintext


def decrypt_value(stored: str, ring: KeyRing | None = None) -> str:
    """The plaintext of a stored value with ``ring`` (default: :func:`current_keyring`)."""
    ring = ring if ring is not None else current_keyring()
    if ring is not None:
        return ring.decrypt(stored)
    if stored.startswith(PREFIX):
        raise DecryptionError(
            f"a stored webhook credential is encrypted but {SETTING} is not set; configure the key it was written with"
        )
    return _strip_plain(stored)


class EncryptedText(TypeDecorator[str]):
    """A ``Text`` column stored Fernet-encrypted (``"fernet:<token>"``), read back as plaintext.

    Encryption is randomised, so a ``WHERE column = value`` filter never matches:
    never query by a credential.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        """Encrypt on the way into the database."""
        return None if value is None else encrypt_value(str(value))

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        """Decrypt on the way out."""
        return None if value is None else decrypt_value(value)


def encrypted_columns(models: Any) -> list[tuple[sa.Table, list[sa.Column[Any]]]]:
    """Every table among ``models`` with its :class:`EncryptedText` columns.

    ``models`` is a ``Models`` dataclass (``models_for(db)``), a mapped class, a
    ``Table``, or an iterable of those.
    """
    if dataclasses.is_dataclass(models) and not isinstance(models, type):
        items: Iterable[Any] = [getattr(models, f.name) for f in dataclasses.fields(models)]
    elif isinstance(models, (type, sa.Table)):
        items = [models]
    else:
        items = models
    found = []
    for item in items:
        table = item if isinstance(item, sa.Table) else item.__table__
        columns = [c for c in table.columns if isinstance(c.type, EncryptedText)]
        if columns:
            found.append((table, columns))
    return found


def rotate(
    session: Any,
    models: Any,
    *,
    keys: Any = _UNSET,
    commit: bool = True,
    progress: Callable[[str, int], Progress] | None = None,
) -> dict[str, int]:
    """Re-encrypt every credential column with the first key; return counts per ``table.column``.

    Values already encrypted with the first key are left alone, legacy plaintext values
    are encrypted, values under an older key (still configured) are re-encrypted. With
    ``keys`` given it uses those instead of the current app's setting. ``commit=True``
    commits the session (including anything else pending in it). ``progress(table, rows)``
    makes a :class:`~.progress.Progress` advanced per row read.
    """
    ring = keyring_for(keys) if keys is not _UNSET else current_keyring()
    if ring is None:
        raise EncryptionKeyError(f"cannot rotate: {SETTING} is not set; generate a key with {GENERATE_HINT}")
    counts: dict[str, int] = {}
    for table, columns in encrypted_columns(models):
        primary = list(table.primary_key.columns)
        # Read the stored text itself, bypassing the decrypting type.
        raw = [sa.type_coerce(c, sa.Text).label(f"raw_{c.name}") for c in columns]
        rows = session.execute(sa.select(*primary, *raw)).all()
        for column in columns:
            counts[f"{table.name}.{column.name}"] = 0
        bar = progress(table.name, len(rows)) if progress is not None else None
        for row in rows:
            if bar is not None:
                bar.advance()
            mapping = row._mapping
            changes = {}
            for column in columns:
                stored = mapping[f"raw_{column.name}"]
                if stored is None or ring.is_current(stored):
                    continue
                changes[column.name] = sa.literal(ring.encrypt(ring.decrypt(stored)), sa.Text)
                counts[f"{table.name}.{column.name}"] += 1
            if changes:
                where = [p == mapping[p.name] for p in primary]
                session.execute(sa.update(table).where(*where).values(changes))
        if bar is not None:
            bar.close()
    if commit:
        session.commit()
    return counts


def check_key(settings: Settings, app: Flask) -> None:
    """Startup rule, called by ``init_app``: a production app must have an encryption key.

    Raises :class:`~.errors.ConfigError` (a ``ValueError`` naming the setting) for a
    malformed key or a value of the wrong type, and ``RuntimeError`` (saying how to make a
    key) when none is set, unless ``app.testing`` or ``app.debug``.
    """
    if parse_keys(settings.encryption_key):
        return
    if app.testing or app.debug:
        if not app.testing:
            log.warning("%s is not set: webhook credentials are stored unencrypted (debug mode)", SETTING)
        return
    raise EncryptionKeyError(
        f"{SETTING} is not set. flask-trakkr-webhooks stores webhook credentials encrypted and will not "
        f"start without a key outside testing/debug. Generate one with {GENERATE_HINT}, and set it "
        f"from an environment variable or secret store (several keys, comma-separated, to rotate)."
    )
