"""How deliveries authenticate: one table of auth methods (pure).

Each :class:`AuthMethod` says which credential columns it needs (and the only ones it
accepts), which of them are secrets (write-only through the API, encrypted at rest, wiped
when a webhook is deleted) and how its request headers are built. Validation
(:mod:`.schemas`), request building (:mod:`.message`), loading (:mod:`.claim`), the
preview's masking and deletion all read this table, so adding a method is one
:func:`register` call (plus tests):

.. code-block:: python

    auth.register(auth.AuthMethod(
        name="token_header", fields=("auth_token",), secret_fields=("auth_token",),
        build=lambda c: {"X-Token": c["auth_token"]}, description="X-Token: <auth_token>"))

A method may only use the credential columns in :data:`CREDENTIAL_COLUMNS` (each one is a
column of the webhooks table; a new column needs a schema migration).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import MessageError
from .rules import is_reserved_header, is_sendable_header

#: The credential columns of a webhook, in the order the API documents them.
CREDENTIAL_COLUMNS: tuple[str, ...] = (
    "auth_token",
    "auth_username",
    "auth_password",
    "api_key_header",
    "api_key_value",
)

#: A method's header builder: the webhook's credentials (every column, ``None`` when unset) in,
#: the headers to add out; raises :class:`~.errors.MessageError` when they cannot be built.
HeaderBuilder = Callable[[Mapping[str, "str | None"]], dict[str, str]]


@dataclass(frozen=True)
class AuthMethod:
    """One way a delivery authenticates (an ``auth_type`` value)."""

    name: str
    #: Credential columns this method needs; the API refuses the others with it.
    fields: tuple[str, ...]
    #: Which of :attr:`fields` are secrets: never answered, encrypted at rest, masked in previews.
    secret_fields: tuple[str, ...]
    build: HeaderBuilder
    description: str = ""


def _required(credentials: Mapping[str, str | None], method: str, *names: str) -> list[str]:
    values = [credentials.get(name) for name in names]
    if any(v is None for v in values):
        raise MessageError(f"auth_type {method!r} needs {' and '.join(names)}")
    return [v for v in values if v is not None]


def _none(credentials: Mapping[str, str | None]) -> dict[str, str]:
    return {}


def _bearer(credentials: Mapping[str, str | None]) -> dict[str, str]:
    if not credentials.get("auth_token"):
        raise MessageError("auth_type 'bearer' needs an auth_token")
    return {"Authorization": f"Bearer {credentials['auth_token']}"}


def _basic(credentials: Mapping[str, str | None]) -> dict[str, str]:
    username, password = _required(credentials, "basic", "auth_username", "auth_password")
    raw = f"{username}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def _api_key(credentials: Mapping[str, str | None]) -> dict[str, str]:
    name, value = credentials.get("api_key_header"), credentials.get("api_key_value")
    if not name or value is None:
        raise MessageError("auth_type 'api_key' needs a valid api_key_header and api_key_value")
    if is_reserved_header(name):
        raise MessageError(f"api_key_header {name!r} is a reserved header")
    if not is_sendable_header(name, value):
        raise MessageError("auth_type 'api_key' needs a valid api_key_header and api_key_value")
    return {name: value}


_METHODS: dict[str, AuthMethod] = {}


def register(method: AuthMethod) -> None:
    """Add (or replace) an auth method; ``ValueError`` when it names an unknown column."""
    unknown = [f for f in (*method.fields, *method.secret_fields) if f not in CREDENTIAL_COLUMNS]
    if unknown:
        raise ValueError(
            f"auth method {method.name!r} uses unknown credential columns {unknown}; "
            f"known: {', '.join(CREDENTIAL_COLUMNS)}"
        )
    if not set(method.secret_fields) <= set(method.fields):
        raise ValueError(f"auth method {method.name!r}: secret_fields must be among its fields")
    _METHODS[method.name] = method


def unregister(name: str) -> None:
    """Remove a method added with :func:`register` (built-in ones stay)."""
    if name not in BUILTIN:
        _METHODS.pop(name, None)


def get(name: str) -> AuthMethod | None:
    """The method called ``name``, or ``None``."""
    return _METHODS.get(name)


def names() -> tuple[str, ...]:
    """Every ``auth_type`` value, built-in ones first."""
    return tuple(_METHODS)


def secret_columns() -> tuple[str, ...]:
    """Every credential column some method treats as a secret."""
    return tuple(c for c in CREDENTIAL_COLUMNS if any(c in m.secret_fields for m in _METHODS.values()))


def owner_of(column: str) -> str | None:
    """The first method that uses ``column`` (for an error message), or ``None``."""
    return next((m.name for m in _METHODS.values() if column in m.fields), None)


def headers_for(auth_type: str, credentials: Mapping[str, str | None]) -> dict[str, str]:
    """The auth headers of a webhook (``MessageError`` for an unknown type or missing credentials)."""
    method = _METHODS.get(auth_type or "none")
    if method is None:
        raise MessageError(f"unknown auth_type {auth_type!r}; expected one of {', '.join(_METHODS)}")
    return method.build(credentials)


#: The built-in methods (the contract's): none, bearer, basic and api_key.
BUILTIN: dict[str, AuthMethod] = {
    m.name: m
    for m in (
        AuthMethod("none", (), (), _none, "No auth header"),
        AuthMethod("bearer", ("auth_token",), ("auth_token",), _bearer, "Authorization: Bearer <auth_token>"),
        AuthMethod(
            "basic",
            ("auth_username", "auth_password"),
            ("auth_password",),
            _basic,
            "Authorization: Basic base64(<auth_username>:<auth_password>)",
        ),
        AuthMethod(
            "api_key",
            ("api_key_header", "api_key_value"),
            ("api_key_value",),
            _api_key,
            "<api_key_header>: <api_key_value>",
        ),
    )
}
for _method in BUILTIN.values():
    register(_method)
