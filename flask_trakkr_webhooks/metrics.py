"""Prometheus metrics (names: the contract's "Metrics"), in prometheus-client's default registry.

Importing this module registers the instruments in ``prometheus_client.REGISTRY``, so a host
process that already serves ``/metrics`` exposes the emit counts with nothing to add, and
``flask webhooks worker --metrics-port PORT`` serves the same registry (plus the backlog,
read from the database on each scrape: :class:`BacklogCollector`).

Counting is cheap and off the sending threads: the recorder counts a group of attempts
after its commit (a dict lookup and a locked add per attempt). ``TRAKKR_WEBHOOKS_METRICS =
False`` turns every count of that app into a no-op.

Layer 1: nothing of the package above :mod:`.config` and :mod:`.models` (its callers pass
plain values).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import PENDING, QUEUED, RETRYING, SENDING

log = logging.getLogger("flask_trakkr_webhooks")

#: The prefix of every metric.
PREFIX = "trakkr_webhooks_"

#: ``attempts_total`` result classes.
RESULTS = ("2xx", "3xx", "4xx", "5xx", "timeout", "connection_error", "refused")
#: ``deliveries_total`` outcomes.
OUTCOMES = ("succeeded", "failed", "cancelled")
#: ``endpoints_disabled_total`` reasons: a 410 answer, or a failing streak.
DISABLE_REASONS = ("gone", "failing")

DELIVERIES = Counter(
    PREFIX + "deliveries",
    "Deliveries that ended, by event type, provider and outcome (succeeded, failed, cancelled).",
    ("event_type", "provider", "outcome"),
)
ATTEMPTS = Counter(
    PREFIX + "attempts",
    "Attempts recorded, by provider and result class (2xx ... 5xx, timeout, connection_error, refused).",
    ("provider", "result"),
)
ATTEMPT_DURATION = Histogram(
    PREFIX + "attempt_duration_seconds",
    "Duration of one attempt (build, connect, send, read the answer), by provider.",
    ("provider",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DELIVERY_LAG = Histogram(
    PREFIX + "delivery_lag_seconds",
    "Seconds from the emit (its delivery rows written in the host's transaction) to the delivery's success.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0),
)
EMITS = Counter(PREFIX + "emits", "Events emitted, by event type.", ("event_type",))
IN_FLIGHT = Gauge(PREFIX + "in_flight", "Deliveries claimed by this process and not yet recorded.")
ENDPOINTS_DISABLED = Counter(
    PREFIX + "endpoints_disabled",
    "Webhooks the sender disabled, by reason (gone: a 410 answer; failing: a failing streak).",
    ("reason",),
)
#: The backlog gauge's name (:class:`BacklogCollector`, registered by the worker) and its
#: statuses: the open ones (finished deliveries are counted by ``deliveries_total``).
BACKLOG = PREFIX + "backlog"
#: Seconds the longest-waiting delivery has waited (same collector; 0 when none waits).
OLDEST_WAITING = PREFIX + "oldest_waiting_seconds"
BACKLOG_STATUSES = (PENDING, QUEUED, SENDING, RETRYING)

#: Every metric family this package exposes, as Prometheus names it (the dashboard's test reads it).
EXPOSED = (
    PREFIX + "deliveries_total",
    PREFIX + "attempts_total",
    PREFIX + "attempt_duration_seconds",
    PREFIX + "delivery_lag_seconds",
    PREFIX + "emits_total",
    PREFIX + "in_flight",
    BACKLOG,
    OLDEST_WAITING,
    PREFIX + "endpoints_disabled_total",
)


class _HasInFlight(Protocol):
    @property
    def in_flight(self) -> int: ...


_engines: weakref.WeakSet[Any] = weakref.WeakSet()


def track_in_flight(engine: _HasInFlight) -> None:
    """Count ``engine``'s deliveries in flight in ``in_flight`` (read at scrape time, not per attempt)."""
    _engines.add(engine)


def _in_flight() -> float:
    return float(sum(engine.in_flight for engine in list(_engines)))


IN_FLIGHT.set_function(_in_flight)


def result_class(status_code: int | None, error: str | None) -> str:
    """The ``result`` label of an attempt: its status class, or how it failed without one.

    ``error``: :data:`retry.ERROR_KINDS` (``timeout``, ``connection``, ``permanent``: refused
    before or instead of sending, e.g. a blocked address or a request that cannot be built).
    """
    if status_code is not None:
        return f"{min(max(status_code // 100, 2), 5)}xx"
    if error == "timeout":
        return "timeout"
    if error == "connection":
        return "connection_error"
    return "refused"


# Label children, cached: ``labels()`` takes a lock and builds a key on every call.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def emitted(event_type: str) -> None:
    """One event emitted."""
    _child(EMITS, event_type).inc()


def attempted(provider: str, result: str, seconds: float) -> None:
    """One attempt recorded: ``result`` from :func:`result_class`, ``seconds`` its duration."""
    _child(ATTEMPTS, provider, result).inc()
    _child(ATTEMPT_DURATION, provider).observe(seconds)


def finished(event_type: str, provider: str, outcome: str, count: int = 1) -> None:
    """``count`` deliveries ended with ``outcome`` (:data:`OUTCOMES`)."""
    if count:
        _child(DELIVERIES, event_type, provider, outcome).inc(count)


def lag(seconds: float) -> None:
    """A delivery succeeded ``seconds`` after its emit."""
    DELIVERY_LAG.observe(max(0.0, seconds))


def disabled(reason: str) -> None:
    """The sender disabled a webhook (``reason``: :data:`DISABLE_REASONS`)."""
    _child(ENDPOINTS_DISABLED, reason).inc()


@dataclass(frozen=True)
class Backlog:
    """What :class:`BacklogCollector` reads: open deliveries per status, and the oldest one's wait."""

    counts: Mapping[str, int]
    oldest_waiting: float | None


class BacklogCollector(Collector):
    """``backlog{status}`` and ``oldest_waiting_seconds``, read on scrape with ``read`` (at most
    every ``ttl`` seconds: scrapes never cost more than a few indexed queries per ``ttl``)."""

    def __init__(self, read: Callable[[], Backlog], ttl: float = 5.0) -> None:
        self.read = read
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, Backlog] | None = None

    def _snapshot(self) -> Backlog:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, self.read())
            return self._cached[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The two gauge families (every open status, 0 when none); none when the database fails
        (the rest of the scrape still answers)."""
        try:
            snapshot = self._snapshot()
        except Exception:
            log.warning("trakkr_webhooks: could not read the backlog for /metrics", exc_info=True)
            return
        family = GaugeMetricFamily(BACKLOG, "Open deliveries by status (read from the database).", labels=("status",))
        for status in BACKLOG_STATUSES:
            family.add_metric((status,), float(snapshot.counts.get(status, 0)))
        yield family
        yield GaugeMetricFamily(
            OLDEST_WAITING,
            "Seconds the longest-waiting open delivery has waited (0: none waits).",
            value=snapshot.oldest_waiting or 0.0,
        )


_backlog: BacklogCollector | None = None


def register_backlog(read: Callable[[], Backlog], registry: CollectorRegistry = REGISTRY) -> BacklogCollector:
    """Expose the backlog in ``registry``, read by ``read`` (once per process: later calls swap ``read``)."""
    global _backlog
    if _backlog is not None:
        _backlog.read = read
        return _backlog
    _backlog = BacklogCollector(read)
    registry.register(_backlog)
    return _backlog


def serve(port: int, address: str = "127.0.0.1") -> Any:
    """Serve the default registry at ``http://ADDRESS:PORT/metrics`` from a daemon thread."""
    return start_http_server(port, addr=address)


def names(registry: CollectorRegistry = REGISTRY) -> Iterable[str]:
    """Names of every sample ``registry`` exposes now."""
    return [sample.name for family in registry.collect() for sample in family.samples]
