"""FastAPI and Starlette: a dependency that verifies the raw body, and ``@idempotent`` for handlers.

FastAPI::

    from fastapi import Depends, FastAPI
    from receiver_kit.fastapi import idempotent, verify_webhook
    from receiver_kit.idempotency import AsyncRedisStore

    trakkr = verify_webhook(secret=os.environ["TRAKKR_SIGNING_SECRET"])

    @app.post("/hooks/trakkr")
    @idempotent(store=AsyncRedisStore(redis.asyncio.Redis()))
    async def on_trakkr(payload: dict = Depends(trakkr)):
        ...

Plain Starlette (no dependency injection)::

    routes = [Route("/hooks/trakkr", webhook_endpoint(trakkr, on_trakkr, store=MemoryStore()), methods=["POST"])]

The dependency reads the body once with ``await request.body()`` (Starlette
caches it on the request) and verifies those exact bytes; a bad or missing
signature raises :class:`WebhookRejected` (401; 400 for a signed body that is not
JSON), an ``HTTPException``, so the handler never runs. Only Starlette is
imported: FastAPI is the endpoint owner's.

This module deliberately has no ``from __future__ import annotations``: FastAPI
reads the dependency's annotations at runtime to inject the ``Request``.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .endpoint import AnyStore, Idempotency, Reply, SecretSource, SignatureGate, log, rejection
from .errors import WebhookVerificationError
from .idempotency.base import event_id_of
from .standard import DEFAULT_TOLERANCE

__all__ = ["WebhookDependency", "WebhookRejected", "idempotent", "verify_webhook", "webhook_endpoint"]

F = TypeVar("F", bound=Callable[..., Any])


def _response(reply: Reply) -> Response:
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def _status_of(result: Any) -> int:
    # A handler returning a plain value gets FastAPI's default 200.
    return result.status_code if isinstance(result, Response) else 200


class WebhookRejected(HTTPException):
    """A delivery that failed verification: 401, or 400 when only the body is not JSON.

    An ``HTTPException``, so FastAPI answers ``{"detail": message}`` and Starlette
    the message as text. ``code`` is the :class:`~receiver_kit.WebhookVerificationError` code,
    ``reply`` the JSON answer the other adapters give (``webhook_endpoint`` sends it).
    """

    def __init__(self, error: WebhookVerificationError, reply: Reply) -> None:
        super().__init__(status_code=reply.status, detail=error.message)
        self.code = error.code
        self.reply = reply


class WebhookDependency:
    """``await dependency(request)``: the verified, parsed payload, or :class:`WebhookRejected`.

    A FastAPI dependency (``Depends(dependency)``) and, under plain Starlette, a
    coroutine to await in the endpoint. Made by :func:`verify_webhook`.
    """

    def __init__(self, gate: SignatureGate) -> None:
        self.gate = gate

    async def __call__(self, request: Request) -> Any:
        """Read the raw body once, verify it against the request's headers, return the payload."""
        body = await request.body()
        try:
            return self.gate.check(body, request.headers, request)
        except WebhookVerificationError as exc:
            log.warning("webhook rejected on %s: %s", request.url.path, exc.message)
            raise WebhookRejected(exc, rejection(exc)) from None


def verify_webhook(
    secret: SecretSource,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    allow_legacy: bool = False,
) -> WebhookDependency:
    """A dependency that verifies each request's signature and returns the parsed payload.

    ``secret``: a string, a list (rotation: any may have signed) or a callable
    taking the Starlette ``Request`` returning either, or ``None`` when this request
    has no secret (401). ``tolerance``: seconds ``webhook-timestamp`` may be off.
    ``allow_legacy=True`` also accepts requests signed with ``X-Trakkr-Signature``
    alone (no replay window).
    """
    return WebhookDependency(SignatureGate(secret, tolerance=tolerance, allow_legacy=allow_legacy))


def idempotent(
    store: AnyStore,
    *,
    payload_param: str = "payload",
    key: Callable[[Any], str | None] = event_id_of,
    processing_ttl: float | None = None,
    completed_ttl: float | None = None,
    retry_after: int = 5,
) -> Callable[[F], F]:
    """Run a FastAPI handler at most once per event (``meta.event_id`` of its ``payload`` parameter).

    Put it between ``@app.post(...)`` and the handler. Completed repeat: 200
    ``{"received": true, "duplicate": true}`` without running it; repeat while the
    first runs: 503 with ``Retry-After``; an exception or a response of 500 or more
    releases the key. ``store``: ``AsyncRedisStore`` or ``MemoryStore`` never block
    the event loop; any other store's calls run in a worker thread. ``def``
    handlers run in Starlette's thread pool, as FastAPI would run them.
    """
    once = Idempotency(
        store, key=key, processing_ttl=processing_ttl, completed_ttl=completed_ttl, retry_after=retry_after
    )

    def decorator(view: F) -> F:
        # Annotations resolved in the handler's own module: FastAPI would look in this one.
        signature = inspect.signature(view, eval_str=True)
        if payload_param not in signature.parameters:
            raise TypeError(
                f"@idempotent needs a {payload_param!r} parameter on {view.__name__} "
                f"(e.g. {payload_param}: dict = Depends(verify_webhook(...))), or pass payload_param="
            )
        is_async = inspect.iscoroutinefunction(view)

        @functools.wraps(view)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)

            async def handler() -> Any:
                if is_async:
                    return await view(*args, **kwargs)
                return await run_in_threadpool(view, *args, **kwargs)

            return await once.arun(bound.arguments.get(payload_param), handler, _status_of, _response)

        wrapper.__signature__ = signature  # type: ignore[attr-defined]  # FastAPI reads it for dependencies
        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the handler's name, not its type

    return decorator


def webhook_endpoint(
    verify: WebhookDependency,
    handler: Callable[[Any], Any],
    *,
    store: AnyStore | None = None,
    **idempotency: Any,
) -> Callable[[Request], Awaitable[Response]]:
    """A plain Starlette endpoint: verify, then ``handler(payload)`` (once per event when ``store`` is given).

    ``handler`` may be ``async def`` or ``def`` (run in the thread pool); it returns a
    ``Response`` or something JSON-able (sent with 200). Rejections answer the same
    JSON as the Flask and Django adapters. ``idempotency``: ``idempotent``'s keywords.
    """
    once = None if store is None else Idempotency(store, **idempotency)
    is_async = inspect.iscoroutinefunction(handler)

    async def endpoint(request: Request) -> Response:
        try:
            payload = await verify(request)
        except WebhookRejected as exc:
            return _response(exc.reply)

        async def run() -> Response:
            result = await handler(payload) if is_async else await run_in_threadpool(handler, payload)
            return result if isinstance(result, Response) else JSONResponse(result)

        if once is None:
            return await run()
        return await once.arun(payload, run, _status_of, _response)

    return endpoint
