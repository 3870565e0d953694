"""The behaviour every framework adapter shares, with no framework in it.

An adapter (``receiver_kit.flask``, ``receiver_kit.django``, ``receiver_kit.fastapi``,
or your own for another framework) only moves bytes, headers and responses
between its framework and these two objects:

* :class:`SignatureGate`: raw body and headers in, parsed payload out, or a
  :class:`Reply` to send instead (401 bad or missing signature, 400 not JSON);
* :class:`Idempotency`: runs a handler once per ``meta.event_id`` and answers
  repeats itself (200 completed, 503 + ``Retry-After`` in progress, 400 no id).

So every adapter answers the same statuses and the same JSON bodies.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from .errors import INVALID_PAYLOAD, WebhookVerificationError
from .idempotency.base import COMPLETED, Claim, IdempotencyStore, event_id_of
from .idempotency.memory import MemoryStore
from .keys import Secrets
from .standard import DEFAULT_TOLERANCE
from .verifier import Headers, WebhookVerifier

log = logging.getLogger("receiver_kit")

R = TypeVar("R")
#: A secret, a list of secrets (rotation), or a callable returning either (``None``: no secret, 401).
#: The callable gets what the adapter passes: nothing for Flask, the request for Django and FastAPI.
SecretSource = Secrets | Callable[..., Secrets | None]
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Reply:
    """An answer the kit gives instead of running the handler: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(status: int, type_: str, message: str, **extra: Any) -> Reply:
    """``{"error": {"type": …, "message": …, **extra}}`` with ``status``."""
    return Reply(status, {"error": {"type": type_, "message": message, **extra}})


def rejection(exc: WebhookVerificationError) -> Reply:
    """The answer to a failed verification: 400 when only the body is wrong, 401 otherwise."""
    if exc.code == INVALID_PAYLOAD:
        return error_reply(400, "invalid_request", exc.message, code=exc.code)
    return error_reply(401, "invalid_signature", exc.message, code=exc.code)


class SignatureGate:
    """Verifies requests against a fixed secret (checked now) or one looked up per request.

    ``allow_legacy`` is ``False`` by default: the sender always sends the Standard
    Webhooks headers, so a delivery without them (a captured request replayed with
    its timestamp stripped) is refused. Set it to ``True`` only for a sender that
    signs with ``X-Trakkr-Signature`` alone.
    """

    def __init__(
        self, secret: SecretSource, *, tolerance: float = DEFAULT_TOLERANCE, allow_legacy: bool = False
    ) -> None:
        self.source = secret
        self.tolerance = tolerance
        self.allow_legacy = allow_legacy
        # A fixed secret is checked once, now: a bad whsec_ value fails at import, not per request.
        self.static = (
            None if callable(secret) else WebhookVerifier(secret, tolerance=tolerance, allow_legacy=allow_legacy)
        )

    def _verifier(self, secret: Secrets | None) -> WebhookVerifier:
        if secret is None or (hasattr(secret, "__len__") and len(secret) == 0):
            raise WebhookVerificationError.no_secret()
        return WebhookVerifier(secret, tolerance=self.tolerance, allow_legacy=self.allow_legacy)

    def verifier(self, *args: Any) -> WebhookVerifier:
        """The verifier for this request; ``args`` go to a callable secret."""
        if self.static is not None:
            return self.static
        assert callable(self.source)
        return self._verifier(self.source(*args))

    def check(self, body: bytes, headers: Headers, *args: Any) -> Any:
        """The parsed payload, or ``WebhookVerificationError``; ``args`` go to a callable secret."""
        return self.verifier(*args).verify(body, headers)

    def payload_or_reply(self, body: bytes, headers: Headers, *args: Any, path: str = "") -> tuple[Any, Reply | None]:
        """``(payload, None)`` when the request verifies, else ``(None, reply)`` (and a log line)."""
        try:
            return self.check(body, headers, *args), None
        except WebhookVerificationError as exc:
            log.warning("webhook rejected on %s: %s", path or "?", exc.message)
            return None, rejection(exc)


@runtime_checkable
class AsyncIdempotencyStore(Protocol):
    """:class:`~receiver_kit.idempotency.IdempotencyStore` with ``async`` methods (e.g. ``AsyncRedisStore``)."""

    processing_ttl: float
    completed_ttl: float

    async def claim(self, key: str, *, processing_ttl: float | None = None) -> Claim:
        """Atomically claim ``key`` unless it is completed or claimed by a live handler."""
        ...

    async def complete(self, key: str, token: str, *, completed_ttl: float | None = None) -> bool:
        """Mark ``key`` completed if the claim ``token`` still owns it (or nobody does)."""
        ...

    async def release(self, key: str, token: str) -> bool:
        """Forget ``key`` if the claim ``token`` still owns it."""
        ...


AnyStore = IdempotencyStore | AsyncIdempotencyStore


class Idempotency:
    """Runs a handler at most once per event key, however often the event is delivered.

    * no usable key: 400 ``invalid_request``, handler not run;
    * first delivery: the handler runs; an answer below 500 marks the event
      completed, a 5xx answer or an exception releases it (the exception
      propagates, so the sender sees a 500 and retries);
    * repeat of a completed event: 200 ``{"received": true, "duplicate": true}``;
    * repeat while the first is still running: 503 with ``Retry-After: retry_after``.

    ``run`` is for synchronous code and stores; ``arun`` for ``async`` code with an
    async store, a ``MemoryStore`` (never blocks), or any other synchronous store
    (its calls then run in a worker thread, off the event loop).
    """

    def __init__(
        self,
        store: AnyStore,
        *,
        key: Callable[[Any], str | None] = event_id_of,
        processing_ttl: float | None = None,
        completed_ttl: float | None = None,
        retry_after: int = 5,
    ) -> None:
        self.store = store
        self.key = key
        self.processing_ttl = processing_ttl
        self.completed_ttl = completed_ttl
        self.retry_after = retry_after
        self.is_async = inspect.iscoroutinefunction(getattr(store, "claim", None))

    def _key_or_reply(self, payload: Any) -> str | Reply:
        event_id = self.key(payload)
        if event_id is None or len(event_id) > MAX_KEY_LENGTH:
            return error_reply(
                400,
                "invalid_request",
                "payload has no usable meta.event_id",
                fields={"meta.event_id": [f"required: a string of 1 to {MAX_KEY_LENGTH} characters"]},
            )
        return event_id

    def _claim_reply(self, event_id: str, claim: Claim) -> Reply | None:
        if claim.state == COMPLETED:
            return Reply(200, {"received": True, "duplicate": True, "event_id": event_id})
        if not claim.acquired:
            reply = error_reply(
                503, "in_progress", f"event {event_id} is being processed; retry later", event_id=event_id
            )
            return Reply(reply.status, reply.body, {"Retry-After": str(self.retry_after)})
        return None

    def _sync_store(self) -> IdempotencyStore:
        if self.is_async:
            raise TypeError(f"{type(self.store).__name__} is async: use it from an async handler")
        return self.store  # type: ignore[return-value]  # is_async is False: the sync protocol

    def run(
        self, payload: Any, handler: Callable[[], R], status_of: Callable[[R], int], respond: Callable[[Reply], R]
    ) -> R:
        """Run ``handler`` unless ``payload``'s event is done or in progress; ``respond`` builds the kit's answers."""
        store = self._sync_store()
        event_id = self._key_or_reply(payload)
        if isinstance(event_id, Reply):
            return respond(event_id)
        claim = store.claim(event_id, processing_ttl=self.processing_ttl)
        reply = self._claim_reply(event_id, claim)
        if reply is not None:
            return respond(reply)
        assert claim.token is not None
        try:
            result = handler()
        except BaseException:
            _log_failure(store.release, "release", event_id, claim.token)
            raise
        if status_of(result) >= 500:
            _log_failure(store.release, "release", event_id, claim.token)
        else:
            self._completed(
                _log_failure(store.complete, "complete", event_id, claim.token, self.completed_ttl), event_id
            )
        return result

    async def arun(
        self,
        payload: Any,
        handler: Callable[[], Awaitable[R]],
        status_of: Callable[[R], int],
        respond: Callable[[Reply], R],
    ) -> R:
        """``run`` for ``async`` handlers; never blocks the event loop on the store."""
        event_id = self._key_or_reply(payload)
        if isinstance(event_id, Reply):
            return respond(event_id)
        claim = await self._call("claim", event_id, processing_ttl=self.processing_ttl)
        reply = self._claim_reply(event_id, claim)
        if reply is not None:
            return respond(reply)
        assert claim.token is not None
        try:
            result = await handler()
        except BaseException:
            await self._safe("release", event_id, claim.token)
            raise
        if status_of(result) >= 500:
            await self._safe("release", event_id, claim.token)
        else:
            self._completed(
                await self._safe("complete", event_id, claim.token, completed_ttl=self.completed_ttl), event_id
            )
        return result

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self.store, method)
        if self.is_async:
            return await bound(*args, **kwargs)
        if isinstance(self.store, MemoryStore):
            return bound(*args, **kwargs)  # a dict under a lock: microseconds, no I/O
        return await asyncio.to_thread(bound, *args, **kwargs)

    async def _safe(self, method: str, event_id: str, token: str, **kwargs: Any) -> bool | None:
        try:
            return bool(await self._call(method, event_id, token, **kwargs))
        except Exception:
            _log_store_error(method, event_id)
            return None

    @staticmethod
    def _completed(marked: bool | None, event_id: str) -> None:
        if marked is False:
            log.warning("idempotency key %s was taken over while its handler ran", event_id)


def _log_store_error(method: str, event_id: str) -> None:
    if method == "release":
        # The handler's own error matters more; the claim expires on its own.
        log.exception("could not release idempotency key %s; it frees itself after its processing TTL", event_id)
    else:
        # The work is done: answer 2xx; the claim expires and is retaken at worst.
        log.exception("could not mark idempotency key %s completed", event_id)


def _log_failure(
    call: Callable[..., bool], method: str, event_id: str, token: str, ttl: float | None = None
) -> bool | None:
    try:
        if method == "complete":
            return call(event_id, token, completed_ttl=ttl)
        return call(event_id, token)
    except Exception:
        _log_store_error(method, event_id)
        return None
