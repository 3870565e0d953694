"""The delivery worker's process plumbing (``flask_trakkr_webhooks/worker.py``), against a real Redis.

The worker's delivery behaviour (jobs, sweeps, kills, restarts) is tested end to end in
``tests/e2e``; here, the parts that decide how fast it stops.
"""

from __future__ import annotations

import time

import redis
from rq import Queue

from flask_trakkr_webhooks import get_state, worker


def test_the_command_listener_stops_within_its_wake_interval_after_its_unsubscribe_reply(app):
    # The race that hung stopping workers for up to 60 s: RQ's listener thread handles the
    # unsubscribe reply first, then waits to be subscribed again; redis-py's stop() joins it.
    settings = get_state(app).settings
    connection = redis.Redis.from_url(settings.redis_url)
    delivery_worker = worker.DeliveryWorker(
        [Queue(settings.queue, connection=connection)], connection=connection, app=app
    )
    try:
        delivery_worker.subscribe()
        listener = delivery_worker.pubsub_thread
        assert listener is not None and listener.is_alive()
        delivery_worker.pubsub.unsubscribe()
        time.sleep(0.3)  # the listener reads the reply and goes back to waiting
        started = time.monotonic()
        listener.stop()
        listener.join(worker.PUBSUB_WAKE + 2)
        stopped_after = time.monotonic() - started
        assert not listener.is_alive()
        assert stopped_after <= worker.PUBSUB_WAKE + 1.0, stopped_after
    finally:
        delivery_worker.pubsub.close()
        connection.close()
