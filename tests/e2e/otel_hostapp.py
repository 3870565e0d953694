"""The e2e host app with an OpenTelemetry SDK: every finished span is appended to ``E2E_SPANS_FILE``
as one JSON object a line (``flask --app e2e.otel_hostapp:create_app webhooks worker``)."""

from __future__ import annotations

import os

from flask import Flask
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from e2e.hostapp import create_app as create_host_app


def create_app() -> Flask:
    """The e2e host app, its spans written to ``E2E_SPANS_FILE``."""
    out = open(os.environ["E2E_SPANS_FILE"], "a", buffering=1)
    provider = TracerProvider()
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return create_host_app()
