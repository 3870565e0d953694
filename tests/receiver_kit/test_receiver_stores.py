"""Idempotency stores, each against its real backend: claim/complete/release, TTLs, races."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from receiver_kit.idempotency import (
    ACQUIRED,
    COMPLETED,
    PROCESSING,
    IdempotencyStore,
    MemoryStore,
    RedisStore,
    SQLStore,
)

SHORT = 0.25  # a processing TTL short enough to wait out in a test


def key() -> str:
    return f"evt_{secrets.token_hex(8)}"


def race(n: int, func) -> list:
    """Run ``func()`` in ``n`` threads released at the same instant; their results."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = func()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return results


def test_store_satisfies_the_protocol(store):
    assert isinstance(store, IdempotencyStore)


def test_claim_then_repeat_then_complete(store):
    k = key()
    first = store.claim(k)
    assert first.state == ACQUIRED and first.acquired and first.token
    assert store.claim(k).state == PROCESSING
    assert store.state(k) == PROCESSING
    assert store.complete(k, first.token) is True
    assert store.claim(k).state == COMPLETED
    assert store.state(k) == COMPLETED


def test_release_lets_the_next_delivery_run(store):
    k = key()
    first = store.claim(k)
    assert store.release(k, first.token) is True
    assert store.state(k) is None
    second = store.claim(k)
    assert second.acquired and second.token != first.token


def test_only_the_owner_can_release_or_complete(store):
    k = key()
    mine = store.claim(k)
    assert store.release(k, "not-my-token") is False
    assert store.complete(k, "not-my-token") is False
    assert store.state(k) == PROCESSING
    assert store.complete(k, mine.token) is True
    assert store.release(k, mine.token) is False  # completed is never released
    assert store.state(k) == COMPLETED


def test_keys_are_independent(store):
    a, b = key(), key()
    assert store.claim(a).acquired
    assert store.claim(b).acquired


def test_expired_processing_claim_is_taken_over(make_store):
    """The first handler's process 'died': its claim expires and the next delivery takes over."""
    store = make_store(processing_ttl=SHORT)
    k = key()
    dead = store.claim(k)
    assert store.claim(k).state == PROCESSING
    time.sleep(SHORT + 0.1)
    taker = store.claim(k)
    assert taker.acquired and taker.token != dead.token
    # The dead claimant coming back to life cannot undo the take-over.
    assert store.release(k, dead.token) is False
    assert store.complete(k, dead.token) is False
    assert store.state(k) == PROCESSING
    assert store.complete(k, taker.token) is True
    assert store.claim(k).state == COMPLETED


def test_per_call_processing_ttl_overrides_the_store(store):
    k = key()
    store.claim(k, processing_ttl=SHORT)
    time.sleep(SHORT + 0.1)
    assert store.claim(k).acquired


def test_completed_entry_expires_after_completed_ttl(make_store):
    store = make_store(completed_ttl=SHORT)
    k = key()
    assert store.complete(k, store.claim(k).token) is True
    assert store.claim(k).state == COMPLETED
    time.sleep(SHORT + 0.1)
    assert store.claim(k).acquired


def test_complete_after_own_claim_expired_unclaimed_still_records(make_store):
    """A slow handler that finished after its TTL, with nobody taking over: the work is done."""
    store = make_store(processing_ttl=SHORT)
    k = key()
    slow = store.claim(k)
    time.sleep(SHORT + 0.1)
    assert store.complete(k, slow.token) is True
    assert store.claim(k).state == COMPLETED


def test_fifty_concurrent_claims_exactly_one_wins(store):
    k = key()
    states = [c.state for c in race(50, lambda: store.claim(k))]
    assert states.count(ACQUIRED) == 1
    assert states.count(PROCESSING) == 49


def test_concurrent_take_over_of_an_expired_claim_exactly_one_wins(make_store):
    store = make_store(processing_ttl=SHORT)
    k = key()
    store.claim(k)
    time.sleep(SHORT + 0.1)
    # A long TTL for the takers, so the winner's claim cannot expire during the race.
    states = [c.state for c in race(30, lambda: store.claim(k, processing_ttl=60))]
    assert states.count(ACQUIRED) == 1
    assert states.count(PROCESSING) == 29


@pytest.mark.parametrize("field", ["processing_ttl", "completed_ttl"])
@pytest.mark.parametrize("value", [0, -1])
def test_ttls_must_be_positive(make_store, field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive number of seconds"):
        make_store(**{field: value})


def test_memory_store_sweeps_expired_entries():
    now = [0.0]
    store = MemoryStore(processing_ttl=1, completed_ttl=1, clock=lambda: now[0])
    for _ in range(9):
        store.complete(k := key(), store.claim(k).token)
    assert len(store) == 9
    now[0] = 5.0
    store.claim(key())  # any claim drops what has expired
    assert len(store) == 1


def test_memory_store_expires_per_call_ttls_past_the_fifo_queues_too():
    # More distinct per-call TTLs than there are FIFO queues: the rest go on the heap, and
    # every entry still leaves when it expires, whichever structure held it.
    from receiver_kit.idempotency.memory import MAX_TTL_QUEUES

    now = [0.0]
    store = MemoryStore(processing_ttl=1, completed_ttl=1, clock=lambda: now[0])
    ttls = [float(n) for n in range(2, MAX_TTL_QUEUES + 6)]
    for ttl in ttls:
        assert store.claim(key(), processing_ttl=ttl).acquired
    assert len(store) == len(ttls)
    now[0] = 5.5  # past 2, 3, 4, 5
    store.claim(key(), processing_ttl=100)
    assert len(store) == len(ttls) - 4 + 1
    now[0] = 1000.0
    store.claim(key())
    assert len(store) == 1


def test_memory_store_tokens_differ_from_claim_to_claim_and_store_to_store():
    now = [0.0]
    first, second = (MemoryStore(processing_ttl=1, clock=lambda: now[0]) for _ in range(2))
    k = key()
    old = first.claim(k).token
    now[0] = 2.0  # the claim expired: the next delivery takes it over with a new token
    new = first.claim(k).token
    assert old and new and old != new
    assert not first.complete(k, old)  # the slow handler cannot overwrite the take-over
    assert second.claim(k).token not in (old, new)


def test_memory_store_sweep_keeps_a_key_rewritten_with_a_later_expiry():
    now = [0.0]
    store = MemoryStore(processing_ttl=1, completed_ttl=10, clock=lambda: now[0])
    k = key()
    claim = store.claim(k)
    now[0] = 0.5
    store.complete(k, claim.token)  # completed until 10.5; its processing claim ended at 1.0
    released = key()
    store.release(released, store.claim(released).token)
    now[0] = 2.0
    assert store.claim(key()).acquired
    assert store.state(k) == COMPLETED and store.state(released) is None
    assert len(store) == 2
    now[0] = 11.0
    store.claim(key())
    assert store.state(k) is None and len(store) == 1


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_sql_store_refuses_in_memory_sqlite(url):
    with pytest.raises(ValueError, match="SQLite file"):
        SQLStore(url)


def test_sql_store_create_table_twice_and_purge_expired(make_sql_store):
    store = make_sql_store(completed_ttl=SHORT)
    store.create_table()  # a second call is harmless
    done, live = key(), key()
    store.complete(done, store.claim(done).token)
    store.claim(live, processing_ttl=60)
    time.sleep(SHORT + 0.1)
    assert store.purge_expired() == 1
    assert store.state(done) is None and store.state(live) == PROCESSING


def test_sql_store_accepts_an_engine_and_a_custom_table(make_sql_store):
    made = make_sql_store()
    store = SQLStore(made.engine, table_name=made.table.name)  # same table, engine passed in
    k = key()
    assert store.claim(k).acquired
    assert made.state(k) == PROCESSING
    assert store.table.c.idempotency_key.primary_key


def test_redis_store_keys_are_prefixed_with_a_server_side_ttl(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)  # str replies work as well as bytes
    prefix = f"rk-test-{secrets.token_hex(6)}:"
    store = RedisStore(client, prefix=prefix, processing_ttl=30, completed_ttl=90)
    try:
        k = key()
        claim = store.claim(k)
        assert client.get(prefix + k) == f"processing:{claim.token}"
        assert 0 < client.pttl(prefix + k) <= 30_000
        assert store.complete(k, claim.token)
        assert client.get(prefix + k) == f"completed:{claim.token}"
        assert 30_000 < client.pttl(prefix + k) <= 90_000
        assert store.claim(k).state == COMPLETED
    finally:
        client.delete(*client.keys(prefix + "*"))
        client.close()


def test_redis_store_from_url(redis_url):
    store = RedisStore(redis_url, prefix=f"rk-test-{secrets.token_hex(6)}:")
    k = key()
    try:
        assert store.claim(k).acquired
        assert store.claim(k).state == PROCESSING
    finally:
        store.client.delete(store.key(k))
        store.client.close()
