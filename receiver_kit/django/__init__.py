"""Django view decorators: ``@verify_webhook`` (signature) and ``@idempotent`` (once per event).

::

    from receiver_kit.django import DjangoStore, idempotent, verify_webhook

    @verify_webhook(secret=settings.TRAKKR_SIGNING_SECRET)
    @idempotent(store=DjangoStore())
    def on_trakkr(request, payload):
        ...
        return JsonResponse({"ok": True})

``verify_webhook`` makes the view CSRF-exempt (the signature is the
authentication), reads the raw ``request.body`` before anything parses it,
answers 401 JSON without running the view when verification fails (400 when a
correctly signed body is not JSON) and calls the view as
``view(request, payload, *args, **kwargs)``. ``idempotent`` sits below it and
runs the view once per ``meta.event_id``; the answers are the Flask adapter's.

``DjangoStore`` keeps the keys in your database through the ORM: add
``"receiver_kit.django"`` to ``INSTALLED_APPS`` and run ``manage.py migrate``
(table ``receiver_kit_idempotency``). Any other store works too
(``MemoryStore``, ``RedisStore``, ``SQLStore``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.http import HttpRequest, HttpResponse, JsonResponse

from ..endpoint import Idempotency, Reply, SecretSource, SignatureGate
from ..idempotency.base import IdempotencyStore, event_id_of
from ..standard import DEFAULT_TOLERANCE

if TYPE_CHECKING:
    from .store import DjangoStore

__all__ = ["DjangoStore", "idempotent", "verify_webhook"]

F = TypeVar("F", bound=Callable[..., Any])


def _response(reply: Reply) -> HttpResponse:
    response = JsonResponse(reply.body, status=reply.status)
    for name, value in reply.headers.items():
        response[name] = value
    return response


def _sync_only(view: Callable[..., Any], decorator: str) -> None:
    if inspect.iscoroutinefunction(view):
        raise TypeError(
            f"@{decorator} from receiver_kit.django wraps synchronous views "
            "(Django runs them in a thread under ASGI too); make the view a plain def"
        )


def verify_webhook(
    secret: SecretSource,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    allow_legacy: bool = False,
) -> Callable[[F], F]:
    """Verify each request's signature before the view runs; call the view with the parsed payload.

    ``secret``: a string, a list (rotation: any may have signed) or a callable
    taking the ``HttpRequest`` returning either, or ``None`` when this request has
    no secret (401). Failures answer
    ``401 {"error": {"type": "invalid_signature", "code": …, "message": …}}``;
    a correctly signed body that is not JSON answers 400 (``invalid_payload``).
    ``tolerance``: seconds ``webhook-timestamp`` may be off. ``allow_legacy=True``
    also accepts requests signed with ``X-Trakkr-Signature`` alone (no replay window).
    """
    gate = SignatureGate(secret, tolerance=tolerance, allow_legacy=allow_legacy)

    def decorator(view: F) -> F:
        _sync_only(view, "verify_webhook")

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            # request.body is the raw bytes: verified as received, never re-serialised.
            payload, reply = gate.payload_or_reply(request.body, request.headers, request, path=request.path)
            if reply is not None:
                return _response(reply)
            return view(request, payload, *args, **kwargs)

        # What django.views.decorators.csrf.csrf_exempt does: the signature authenticates the caller.
        wrapper.csrf_exempt = True  # type: ignore[attr-defined]  # Django reads this attribute on views
        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the view's name, not its type

    return decorator


def idempotent(
    store: IdempotencyStore,
    *,
    key: Callable[[Any], str | None] = event_id_of,
    processing_ttl: float | None = None,
    completed_ttl: float | None = None,
    retry_after: int = 5,
) -> Callable[[F], F]:
    """Run the view at most once per event (``meta.event_id``); put it below ``@verify_webhook``.

    Completed repeat: 200 ``{"received": true, "duplicate": true}`` without running
    the view; repeat while the first runs: 503 with ``Retry-After``; a response
    of 500 or more, or an exception, releases the key so the sender's retry runs
    the view again. ``processing_ttl``/``completed_ttl`` override the store's.
    """
    once = Idempotency(
        store, key=key, processing_ttl=processing_ttl, completed_ttl=completed_ttl, retry_after=retry_after
    )

    def decorator(view: F) -> F:
        _sync_only(view, "idempotent")

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not args:
                raise TypeError(
                    "@idempotent needs the verified payload as the view's second argument: put it below @verify_webhook"
                )
            return once.run(
                args[0], lambda: view(request, *args, **kwargs), lambda response: response.status_code, _response
            )

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the view's name, not its type

    return decorator


def __getattr__(name: str) -> Any:
    # Lazy: the store imports the model, which needs Django's app registry to be ready.
    if name == "DjangoStore":
        from .store import DjangoStore

        return DjangoStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
