"""Configuration: every key is ``TRAKKR_WEBHOOKS_*``; defaults live in one table here.

The README's configuration table mirrors :data:`DEFAULTS`; a test keeps the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import duration, pacing
from .errors import ConfigError
from .events import MAX_DATA_DEPTH, MAX_DATA_DEPTH_LIMIT

PREFIX = "TRAKKR_WEBHOOKS_"
#: ``TRAKKR_WEBHOOKS_LOG_FORMAT`` values: the per-attempt log line as text or as one JSON object.
LOG_FORMATS = ("text", "json")

#: Every configuration key (without the prefix) and its default.
DEFAULTS: dict[str, Any] = {
    "REDIS_URL": "redis://localhost:6379/0",
    "QUEUE": "webhooks",
    "URL_PREFIX": "/webhooks",
    "REQUIRE_HTTPS": True,
    "ALLOW_PRIVATE_NETWORKS": False,
    "ALLOWED_CIDRS": [],
    "RETRY_DELAYS": [1, 2, 4],
    "TIMEOUT": 10,
    "MAX_RETRY_AFTER": 3600,
    "OPEN_API": False,
    "ENCRYPTION_KEY": None,
    "MAX_REQUEST_BYTES": 256 * 1024,
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    "MAX_PAYLOAD_DEPTH": MAX_DATA_DEPTH,
    "MAX_TEMPLATE_BYTES": 16 * 1024,
    "MAX_HEADERS": 20,
    "MAX_HEADER_BYTES": 4096,
    "MAX_EVENTS_PER_WEBHOOK": 50,
    "RESPONSE_BODY_LIMIT": 4096,
    "PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 100,
    "CONCURRENCY": 128,
    "PER_HOST_CONCURRENCY": 8,
    "BATCH_SIZE": 50,
    "SWEEP_INTERVAL": 30,
    "STUCK_AFTER": 120,
    "SECRET_GRACE_PERIOD": 24 * 3600,
    "DISABLE_AFTER_FAILURES": 15,
    "DISABLE_AFTER_HOURS": 24,
    # Pacing (docs: rate limits): per-provider send rates overriding the platforms' published
    # ones, e.g. {"slack": ["1/s"], "webhook": [{"requests": 50, "per_seconds": 1}]}.
    "RATE_LIMITS": {},
    # Most seconds one delivery waits in all on 429 / 503 + Retry-After answers before it fails.
    "MAX_RATE_LIMIT_WAIT": 3600,
    # Hosts serving many independent endpoints: concurrency capped per URL there (Slack,
    # Discord and Teams are, through their provider entries).
    "SHARED_HOSTS": [],
    # Most seconds a claimed delivery waits in a worker's memory for its endpoint's budget;
    # a longer wait hands it back to the queue until then.
    "PACING_HOLD": 30,
    # Observability (docs: operations).
    "METRICS": True,
    "METRICS_PORT": None,
    "METRICS_ADDRESS": "127.0.0.1",
    "LOG_FORMAT": "text",
    "STATUS_MAX_BACKLOG_AGE": 300,
    "STATUS_MIN_WORKERS": 1,
    "STATUS_MIN_SUCCESS_RATE": 0.5,
    "STATUS_MAX_DISABLED_ENDPOINTS": None,
    "TRACEPARENT_HEADER": False,
    # The web portal (docs: portal): off by default; mounted at PORTAL_PREFIX when on.
    "PORTAL": False,
    "PORTAL_PREFIX": "/webhooks/portal",
    # Retention (docs: retention): finished deliveries, their attempts and their events are
    # deleted this long after they finished (None: kept for ever); response bodies and headers
    # of attempts are dropped sooner, after BODY_RETENTION.
    "RETENTION": "30d",
    "BODY_RETENTION": "7d",
    # Seconds between two scheduled prunes by the workers (one worker at a time); 0: none.
    "PRUNE_INTERVAL": 3600,
    # Rows deleted (or bodies dropped) per transaction of a prune.
    "PRUNE_BATCH_SIZE": 1000,
    # After each batch a prune pauses this many times as long as the batch took; None: by
    # database (2 on PostgreSQL, 30 on SQLite, whose one write lock every emit waits for).
    "PRUNE_PAUSE": None,
}


#: What each key means (the docs' configuration table is generated from this and DEFAULTS).
DESCRIPTIONS: dict[str, str] = {
    "REDIS_URL": "Redis for RQ (queue, scheduler, enqueue de-duplication)",
    "QUEUE": "RQ queue name",
    "URL_PREFIX": "where the REST API is mounted",
    "REQUIRE_HTTPS": 'refuse `http://` webhook URLs ("must be HTTPS in production")',
    "ALLOW_PRIVATE_NETWORKS": (
        "allow URLs that resolve to loopback, private, link-local, CGNAT or unique-local addresses "
        "(multicast, broadcast and unspecified stay refused)"
    ),
    "ALLOWED_CIDRS": (
        'networks allowed even when private, e.g. `["10.20.0.0/16"]` for self-hosted receivers (list or '
        "comma-separated string)"
    ),
    "RETRY_DELAYS": "seconds before retry 1, 2, 3 (its length is the number of retries)",
    "TIMEOUT": (
        "seconds per attempt, as one bound on the whole attempt: connect, TLS, send, status, headers and the "
        "kept body (not per read)"
    ),
    "MAX_RETRY_AFTER": "cap, in seconds, on the `Retry-After` of a 429 or a 503",
    "OPEN_API": "without an access policy, allow every API request (otherwise 403)",
    "ENCRYPTION_KEY": (
        "Fernet key(s) for credentials at rest: one key, a comma-separated string or a list; the first "
        "encrypts, all decrypt. Required unless `app.testing` or `app.debug` (`flask webhooks generate-key`)"
    ),
    "MAX_REQUEST_BYTES": "largest API request body (413 above)",
    "MAX_PAYLOAD_BYTES": "largest event payload `emit` accepts (`ValueError` above)",
    "MAX_PAYLOAD_DEPTH": (
        "deepest nesting of objects and arrays `emit` accepts in `data` and `workflow` (the object itself is "
        "level 1; at most `100`; `ValueError` above)"
    ),
    "MAX_TEMPLATE_BYTES": "largest `template`, as compact JSON",
    "MAX_HEADERS": "most custom headers per webhook",
    "MAX_HEADER_BYTES": "total size of a webhook's custom header names and values",
    "MAX_EVENTS_PER_WEBHOOK": "most event types one webhook subscribes to",
    "RESPONSE_BODY_LIMIT": "bytes of each response body kept in the attempt log",
    "PAGE_SIZE": "default `limit` of list endpoints",
    "MAX_PAGE_SIZE": "largest `limit` of list endpoints",
    "CONCURRENCY": "deliveries in flight at once in one worker process",
    "PER_HOST_CONCURRENCY": (
        "of those, most to one host (to one URL on shared platform hosts), so one slow endpoint cannot starve the rest"
    ),
    "BATCH_SIZE": "deliveries carried by one RQ job",
    "SWEEP_INTERVAL": "seconds between the worker's sweeps for pending or stuck deliveries",
    "STUCK_AFTER": (
        "seconds after which a claimed but unfinished delivery (its worker died) is queued again; keep it "
        "above `TIMEOUT`"
    ),
    "SECRET_GRACE_PERIOD": "seconds a rotated-out signing secret keeps signing (24 h)",
    "DISABLE_AFTER_FAILURES": "consecutive failed deliveries after which a webhook is disabled (0: never) …",
    "DISABLE_AFTER_HOURS": "… provided the failures span at least this many hours",
    "RATE_LIMITS": (
        'per-provider send rates overriding the platforms\' published ones, e.g. `{"slack": ["1/s"]}` ([rate '
        "limits](rate-limits.md))"
    ),
    "MAX_RATE_LIMIT_WAIT": (
        "most seconds one delivery waits in all on 429 / 503 + `Retry-After` answers before it fails"
    ),
    "SHARED_HOSTS": (
        "more hosts (besides Slack's, Discord's and Teams') whose endpoints are capped per URL, not per host"
    ),
    "PACING_HOLD": (
        "most seconds a claimed delivery waits in a worker for its endpoint's budget before it is handed back"
        " to the queue"
    ),
    "METRICS": (
        "count Prometheus metrics in this process ([operations](operations.md)); `False` makes every count a no-op"
    ),
    "METRICS_PORT": "port on which `flask webhooks worker` serves `/metrics` (`--metrics-port` overrides)",
    "METRICS_ADDRESS": "address the worker's metrics server binds to",
    "LOG_FORMAT": (
        "the per-attempt log line (logger `flask_trakkr_webhooks.attempts`): `text` or `json` (one JSON object a line)"
    ),
    "STATUS_MAX_BACKLOG_AGE": (
        "`flask webhooks status` is unhealthy when the oldest waiting delivery is older (seconds)"
    ),
    "STATUS_MIN_WORKERS": "… or when fewer live workers serve the queue",
    "STATUS_MIN_SUCCESS_RATE": (
        "… or when fewer finished attempts succeeded over the last 5 minutes (0 to 1; none finished: healthy)"
    ),
    "STATUS_MAX_DISABLED_ENDPOINTS": "… or when more webhooks are disabled (none: not checked)",
    "TRACEPARENT_HEADER": "with the `[otel]` extra: send each attempt's W3C `traceparent` header to the receiver",
    "PORTAL": "mount the web portal (webhooks, delivery logs, replay, health; [portal](portal.md))",
    "PORTAL_PREFIX": "where the portal is mounted",
    "RETENTION": (
        "finished deliveries, their attempts and events are deleted this long after they finished (`None`: "
        "kept for ever); see docs/retention.md"
    ),
    "BODY_RETENTION": (
        "attempts' response bodies and headers are dropped this long after the attempt (at most `RETENTION`; "
        "`None`: with their rows)"
    ),
    "PRUNE_INTERVAL": (
        "seconds between scheduled prunes, run by one worker at a time (`0`: only `flask webhooks prune`)"
    ),
    "PRUNE_BATCH_SIZE": "rows deleted (or bodies dropped) per transaction of a prune",
    "PRUNE_PAUSE": (
        "after each batch, a prune pauses this many times as long as the batch took (a number >= 0); "
        "`None`: 2 on PostgreSQL, 30 on SQLite (see docs/retention.md: the higher, the slower the prune "
        "and the less `emit` waits)"
    ),
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one app (read from ``app.config`` once, at ``init_app``)."""

    redis_url: str
    queue: str
    url_prefix: str
    require_https: bool
    allow_private_networks: bool
    allowed_cidrs: tuple[str, ...]
    retry_delays: tuple[float, ...]
    timeout: float
    max_retry_after: float
    open_api: bool
    encryption_key: Any
    max_request_bytes: int
    max_payload_bytes: int
    max_payload_depth: int
    max_template_bytes: int
    max_headers: int
    max_header_bytes: int
    max_events_per_webhook: int
    response_body_limit: int
    page_size: int
    max_page_size: int
    concurrency: int
    per_host_concurrency: int
    batch_size: int
    sweep_interval: float
    stuck_after: float
    secret_grace_period: float
    disable_after_failures: int
    disable_after_hours: float
    extra: dict[str, Any] = field(default_factory=dict)
    rate_limits: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    max_rate_limit_wait: float = 3600
    shared_hosts: frozenset[str] = frozenset()
    pacing_hold: float = 30
    metrics: bool = True
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    log_format: str = "text"
    status_max_backlog_age: float = 300
    status_min_workers: int = 1
    status_min_success_rate: float = 0.5
    status_max_disabled_endpoints: int | None = None
    traceparent_header: bool = False
    portal: bool = False
    portal_prefix: str = "/webhooks/portal"
    retention: float | None = 30 * 86400
    body_retention: float | None = 7 * 86400
    prune_interval: float = 3600
    prune_batch_size: int = 1000
    prune_pause: float | None = None


def apply_defaults(config: dict[str, Any]) -> None:
    """Fill in every missing ``TRAKKR_WEBHOOKS_*`` key of a Flask config with its default."""
    for key, value in DEFAULTS.items():
        config.setdefault(PREFIX + key, list(value) if isinstance(value, list) else value)


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate the ``TRAKKR_WEBHOOKS_*`` keys of ``config`` and return :class:`Settings`.

    Raises :class:`~.errors.ConfigError` (a ``ValueError``) naming the key when a value has the wrong shape, so a
    misconfigured app fails at start rather than at its first delivery.
    """

    def get(key: str) -> Any:
        return config.get(PREFIX + key, DEFAULTS[key])

    def number(key: str, minimum: float = 0, integer: bool = False, maximum: float | None = None) -> Any:
        value = get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < minimum
        ):
            raise ConfigError(f"{PREFIX}{key} must be a number >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{PREFIX}{key} must be at most {maximum}, got {value!r}")
        if integer and int(value) != value:
            raise ConfigError(f"{PREFIX}{key} must be an integer, got {value!r}")
        return int(value) if integer else value

    def text(key: str) -> str:
        value = get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{PREFIX}{key} must be a non-empty string, got {type(value).__name__} {value!r}")
        return value

    def flag(key: str) -> bool:
        # bool("false") is True: a string here is a mistake, never a value.
        value = get(key)
        if not isinstance(value, bool):
            raise ConfigError(f"{PREFIX}{key} must be True or False, got {type(value).__name__} {value!r}")
        return value

    key_value = get("ENCRYPTION_KEY")
    if not (
        key_value is None
        or isinstance(key_value, (str, bytes))
        or (isinstance(key_value, (list, tuple)) and all(isinstance(k, (str, bytes)) for k in key_value))
    ):
        raise ConfigError(
            f"{PREFIX}ENCRYPTION_KEY must be a string (one key or several, comma-separated) or a list of "
            f"strings, got {type(key_value).__name__}"  # never the value: it may be a key
        )
    delays = get("RETRY_DELAYS")
    if not isinstance(delays, (list, tuple)) or not all(
        isinstance(d, (int, float)) and not isinstance(d, bool) and d >= 0 for d in delays
    ):
        raise ConfigError(f"{PREFIX}RETRY_DELAYS must be a list of seconds >= 0, got {delays!r}")
    prefix = get("URL_PREFIX")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ConfigError(f"{PREFIX}URL_PREFIX must start with '/', got {prefix!r}")
    cidrs = get("ALLOWED_CIDRS")
    cidrs = [] if cidrs is None else cidrs
    if isinstance(cidrs, str):
        cidrs = [c.strip() for c in cidrs.split(",") if c.strip()]
    if not isinstance(cidrs, (list, tuple)) or not all(isinstance(c, str) for c in cidrs):
        raise ConfigError(
            f"{PREFIX}ALLOWED_CIDRS must be a list of networks or a comma-separated string, got {cidrs!r}"
        )
    rate_limits = get("RATE_LIMITS")
    if not isinstance(rate_limits, Mapping) or not all(isinstance(k, str) for k in rate_limits):
        raise ConfigError(
            f"{PREFIX}RATE_LIMITS must be a dict of provider name -> list of windows, got {rate_limits!r}"
        )
    parsed_limits: dict[str, tuple[Any, ...]] = {}
    for provider_name, windows in rate_limits.items():
        try:
            parsed_limits[provider_name] = pacing.parse(windows)
        except ValueError as exc:
            raise ConfigError(f"{PREFIX}RATE_LIMITS[{provider_name!r}]: {exc}") from None
    shared = get("SHARED_HOSTS")
    if isinstance(shared, str):
        shared = [h.strip() for h in shared.split(",") if h.strip()]
    if not isinstance(shared, (list, tuple, set, frozenset)) or not all(isinstance(h, str) and h for h in shared):
        raise ConfigError(f"{PREFIX}SHARED_HOSTS must be a list of host names, got {shared!r}")
    log_format = get("LOG_FORMAT")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"{PREFIX}LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")

    def optional(key: str, minimum: float, maximum: float | None = None) -> int | None:
        return None if get(key) is None else number(key, minimum, integer=True, maximum=maximum)

    portal_prefix = get("PORTAL_PREFIX")
    if not isinstance(portal_prefix, str) or not portal_prefix.startswith("/") or not portal_prefix.strip("/"):
        raise ConfigError(f"{PREFIX}PORTAL_PREFIX must start with '/' and name a path, got {portal_prefix!r}")
    retention, body_retention = _durations(get("RETENTION"), get("BODY_RETENTION"))
    known = {PREFIX + k for k in DEFAULTS}
    extra = {k: v for k, v in config.items() if k.startswith(PREFIX) and k not in known}
    return Settings(
        redis_url=text("REDIS_URL"),
        queue=text("QUEUE"),
        url_prefix=prefix.rstrip("/") or "/",
        require_https=flag("REQUIRE_HTTPS"),
        allow_private_networks=flag("ALLOW_PRIVATE_NETWORKS"),
        allowed_cidrs=tuple(cidrs),
        retry_delays=tuple(float(d) for d in delays),
        timeout=number("TIMEOUT", 0.001),
        max_retry_after=number("MAX_RETRY_AFTER", 0),
        open_api=flag("OPEN_API"),
        encryption_key=key_value,
        max_request_bytes=number("MAX_REQUEST_BYTES", 1024, integer=True),
        max_payload_bytes=number("MAX_PAYLOAD_BYTES", 1024, integer=True),
        max_payload_depth=number("MAX_PAYLOAD_DEPTH", 1, integer=True, maximum=MAX_DATA_DEPTH_LIMIT),
        max_template_bytes=number("MAX_TEMPLATE_BYTES", 2, integer=True),
        max_headers=number("MAX_HEADERS", 0, integer=True),
        max_header_bytes=number("MAX_HEADER_BYTES", 1, integer=True),
        max_events_per_webhook=number("MAX_EVENTS_PER_WEBHOOK", 1, integer=True),
        response_body_limit=number("RESPONSE_BODY_LIMIT", 0, integer=True),
        page_size=number("PAGE_SIZE", 1, integer=True),
        max_page_size=number("MAX_PAGE_SIZE", 1, integer=True),
        concurrency=number("CONCURRENCY", 1, integer=True),
        per_host_concurrency=number("PER_HOST_CONCURRENCY", 1, integer=True),
        batch_size=number("BATCH_SIZE", 1, integer=True),
        sweep_interval=number("SWEEP_INTERVAL", 0.1),
        stuck_after=number("STUCK_AFTER", 1),
        secret_grace_period=number("SECRET_GRACE_PERIOD", 0),
        disable_after_failures=number("DISABLE_AFTER_FAILURES", 0, integer=True),
        disable_after_hours=number("DISABLE_AFTER_HOURS", 0),
        extra=extra,
        rate_limits=parsed_limits,
        max_rate_limit_wait=number("MAX_RATE_LIMIT_WAIT", 0),
        shared_hosts=frozenset(h.lower().rstrip(".") for h in shared),
        pacing_hold=number("PACING_HOLD", 0),
        metrics=flag("METRICS"),
        metrics_port=optional("METRICS_PORT", 1, 65535),
        metrics_address=text("METRICS_ADDRESS"),
        log_format=log_format,
        status_max_backlog_age=number("STATUS_MAX_BACKLOG_AGE", 0),
        status_min_workers=number("STATUS_MIN_WORKERS", 0, integer=True),
        status_min_success_rate=number("STATUS_MIN_SUCCESS_RATE", 0, maximum=1),
        status_max_disabled_endpoints=optional("STATUS_MAX_DISABLED_ENDPOINTS", 0),
        traceparent_header=flag("TRACEPARENT_HEADER"),
        portal=flag("PORTAL"),
        portal_prefix=portal_prefix.rstrip("/"),
        retention=retention,
        body_retention=body_retention,
        prune_interval=number("PRUNE_INTERVAL", 0),
        prune_batch_size=number("PRUNE_BATCH_SIZE", 1, integer=True),
        prune_pause=None if get("PRUNE_PAUSE") is None else number("PRUNE_PAUSE", 0),
    )


def _durations(retention: Any, body_retention: Any) -> tuple[float | None, float | None]:
    """RETENTION and BODY_RETENTION in seconds (``None``: kept for ever); bodies never outlive their rows."""
    out: list[float | None] = []
    for key, value in (("RETENTION", retention), ("BODY_RETENTION", body_retention)):
        try:
            seconds = None if value is None else duration.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{PREFIX}{key}: {exc}") from None
        if seconds is not None and seconds < 3600:
            raise ConfigError(f"{PREFIX}{key} must be at least 1h (or None: kept for ever), got {value!r}")
        out.append(seconds)
    rows, bodies = out
    if bodies is None:  # no shorter rule for bodies: they go with their rows
        bodies = rows
    if rows is not None and bodies is not None and bodies > rows:
        raise ConfigError(
            f"{PREFIX}BODY_RETENTION ({body_retention!r}) must not exceed {PREFIX}RETENTION ({retention!r}): "
            "bodies go with their rows at the latest"
        )
    return rows, bodies
