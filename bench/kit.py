"""Benchmark 4: the receiver kit's cost per request against a bare ``hmac`` check.

Per request, for 1 KB and 64 KB bodies:

* **bare hmac**: the product page's snippet, ``hmac.compare_digest("sha256=" +
  hmac.new(secret, body, sha256).hexdigest(), signature)``;
* **kit, MemoryStore**: ``receiver_kit.verify_signature`` plus the idempotency check of a
  new event (``store.claim(event_id)`` then ``store.complete``: the handler runs once);
* **kit, RedisStore**: the same with the store on Redis (two round trips, one Lua
  script each, to a local server);
* **kit, repeat**: a delivery of an event already completed (``claim`` answers
  ``completed``; MemoryStore);
* **verify_signature only**: the kit's signature check without the store.

Both sides get the event id without parsing: a receiver parses the body once for its
handler whichever way it verifies, so parsing is the same cost on both sides and is
left out. Each figure is the median of repeated timing loops (``timeit``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import timeit
from collections.abc import Callable
from typing import Any

from bench.common import stats
from receiver_kit import sign_payload, verify_signature
from receiver_kit.idempotency import MemoryStore, RedisStore

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SIZES = {"1 KB": 1024, "64 KB": 64 * 1024}


def body_of(size: int) -> bytes:
    """A Trakkr-shaped JSON body of about ``size`` bytes."""
    payload: dict[str, Any] = {
        "event": {
            "id": "evt_0123456789abcdef01234567",
            "type": "visibility_changed",
            "timestamp": "2025-01-01T00:00:00Z",
            "data": {"notes": ""},
        },
        "brand": {"id": "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f", "name": "Acme", "website": "https://acme.example"},
        "workflow": None,
        "summary": "Acme's visibility rose 40.2%",
        "meta": {
            "source": "trakkr",
            "version": "1.0",
            "event_id": "evt_0123456789abcdef01234567",
            "idempotency_key": "evt_0123456789abcdef01234567",
        },
    }
    base = len(json.dumps(payload, separators=(",", ":")).encode())
    payload["event"]["data"]["notes"] = "x" * max(0, size - base)
    return json.dumps(payload, separators=(",", ":")).encode()


def per_call_us(func: Callable[[], Any], repeats: int, number: int) -> list[float]:
    """Microseconds per call of ``func``, once per repeat."""
    return [t / number * 1e6 for t in timeit.repeat(func, repeat=repeats, number=number)]


def measure(redis_url: str | None, *, repeats: int = 5, quick: bool = False) -> dict[str, dict[str, Any]]:
    """``{size: {case: Stats of µs per request}}``."""
    out: dict[str, dict[str, Any]] = {}
    redis_client = None
    if redis_url:
        import redis

        redis_client = redis.Redis.from_url(redis_url)
    for label, size in SIZES.items():
        body = body_of(size)
        number = (2000 if quick else 10000) if size <= 1024 else (300 if quick else 2000)
        cases, prefix = _cases(body, redis_client)
        results: dict[str, Any] = {"bytes": len(body)}
        for name, func in cases.items():
            assert func(), name  # every variant accepts the genuine signature
            calls = number if name != "kit + RedisStore" else max(200, number // 10)
            results[name] = stats(per_call_us(func, repeats, calls))
        out[label] = results
        if redis_client is not None:  # the RedisStore keys would expire in 60 s; remove them now
            for chunk_keys in _scan(redis_client, prefix + "*"):
                redis_client.delete(*chunk_keys)
    if redis_client is not None:
        redis_client.close()
    return out


def _cases(body: bytes, redis_client: Any) -> tuple[dict[str, Callable[[], Any]], str]:
    """The timed variants for one body, and the key prefix of its RedisStore (used when Redis is given).

    A function of its own so that each closure binds this body's values, not a loop variable.
    """
    key = SECRET.encode()
    signature = sign_payload(body, SECRET)
    counter = iter(range(10**9))

    def bare() -> bool:
        return hmac.compare_digest("sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(), signature)

    memory = MemoryStore()

    def kit_memory() -> bool:
        ok = verify_signature(body, signature, SECRET)
        event_id = f"evt_{next(counter)}"  # a new event each time: the handler would run
        claim = memory.claim(event_id)
        if claim.acquired:
            memory.complete(event_id, claim.token or "")
        return ok

    done = MemoryStore()
    first = done.claim("evt_done")
    done.complete("evt_done", first.token or "")

    def kit_repeat() -> bool:
        ok = verify_signature(body, signature, SECRET)
        return ok and not done.claim("evt_done").acquired

    def kit_verify() -> bool:
        return verify_signature(body, signature, SECRET)

    cases: dict[str, Callable[[], Any]] = {
        "bare hmac": bare,
        "kit verify_signature only": kit_verify,
        "kit + MemoryStore": kit_memory,
        "kit + MemoryStore (repeat)": kit_repeat,
    }
    prefix = f"trakkr-bench-kit:{secrets.token_hex(4)}:"
    if redis_client is not None:
        store = RedisStore(redis_client, prefix=prefix, completed_ttl=60)

        def kit_redis() -> bool:
            ok = verify_signature(body, signature, SECRET)
            event_id = f"evt_{next(counter)}"
            claim = store.claim(event_id)
            if claim.acquired:
                store.complete(event_id, claim.token or "")
            return ok

        cases["kit + RedisStore"] = kit_redis
    return cases, prefix


def _scan(client: Any, pattern: str) -> Any:
    batch: list[bytes] = []
    for name in client.scan_iter(match=pattern, count=1000):
        batch.append(name)
        if len(batch) >= 1000:
            yield batch
            batch = []
    if batch:
        yield batch
