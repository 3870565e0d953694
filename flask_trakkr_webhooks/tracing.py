"""OpenTelemetry traces, when the ``[otel]`` extra is installed (``pip install flask-trakkr-webhooks[otel]``).

* ``emit`` runs in a span ``trakkr_webhooks.emit`` (a child of the host's current span), and
  each of its deliveries stores that span's W3C ``traceparent`` (column ``trace_context``);
* each attempt, in the worker, is a span ``trakkr_webhooks.attempt`` whose parent is the
  stored context, so one trace links the emit and every attempt of its deliveries across the
  queue and the process boundary;
* with ``TRAKKR_WEBHOOKS_TRACEPARENT_HEADER = True`` each request carries the attempt span's
  ``traceparent`` header (off by default: it tells receivers about the sender's traces).

Spans go wherever the host's tracer provider sends them (no provider set: OpenTelemetry's
no-op). Without the extra, :data:`AVAILABLE` is False and callers skip all of this: one
boolean test per emit and per attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from opentelemetry import trace as _trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the extra is installed in the test environment
    _trace = None  # type: ignore[assignment]

#: Whether the ``[otel]`` extra is installed.
AVAILABLE = _trace is not None
#: The instrumentation scope of every span.
SCOPE = "flask_trakkr_webhooks"
EMIT_SPAN = "trakkr_webhooks.emit"
ATTEMPT_SPAN = "trakkr_webhooks.attempt"
#: The W3C header (and carrier key) of a trace context.
TRACEPARENT = "traceparent"

_propagator: Any = TraceContextTextMapPropagator() if AVAILABLE else None


def start(name: str, attributes: Mapping[str, Any], parent: str | None = None) -> Any:
    """Start a span (not made current): a child of ``parent`` (a ``traceparent`` value) when
    given, else of the current span. Only call when :data:`AVAILABLE`."""
    context = _propagator.extract({TRACEPARENT: parent}) if parent else None
    tracer = _trace.get_tracer(SCOPE)
    return tracer.start_span(name, context=context, attributes=dict(attributes), kind=_kind(name))


def _kind(name: str) -> Any:
    return _trace.SpanKind.PRODUCER if name == EMIT_SPAN else _trace.SpanKind.CLIENT


def traceparent(span: Any) -> str | None:
    """The W3C ``traceparent`` of ``span`` (None for a span that is not recorded or sampled out)."""
    if span is None or not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=_trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def finish(span: Any, attributes: Mapping[str, Any], error: str | None = None) -> None:
    """Set ``attributes`` (None values left out), mark an error, and end ``span``."""
    if span is None:
        return
    span.set_attributes({k: v for k, v in attributes.items() if v is not None})
    if error:
        span.set_status(_trace.Status(_trace.StatusCode.ERROR, error))
    span.end()
