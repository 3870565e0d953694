"""End to end with the ``[otel]`` extra: one trace links the emit's span (this process, the SDK's
in-memory exporter) and every attempt span of its deliveries (a real worker process, its spans
written to a file), through the trace context stored with each delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from e2e.conftest import wait_until
from e2e.helpers import deliveries, emit, make_webhook
from e2e.receiver import Reply
from flask_trakkr_webhooks import tracing

pytestmark = pytest.mark.e2e

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process's finished spans (an SDK provider installed once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def worker_spans(path: Path) -> list[dict[str, Any]]:
    """The spans the worker process wrote so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(e2e_app, receiver, start_worker, tmp_path, spans, **config: Any) -> tuple[Any, list[dict[str, Any]], Any]:
    """Emit one event to one webhook answering 500 then 200; the emit span, the worker's attempt spans
    and the delivery."""
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.2], **config)
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(500), Reply(200))
    spans_file = tmp_path / "worker-spans.jsonl"
    start_worker(app, host="e2e.otel_hostapp:create_app", env={"E2E_SPANS_FILE": str(spans_file)})
    event_id = emit(app)
    [emit_span] = [s for s in spans.get_finished_spans() if s.name == tracing.EMIT_SPAN]
    wait_until(lambda: deliveries(app, event_id)[0]["status"] == "succeeded", 30, "the delivery to succeed")

    def both() -> list[dict[str, Any]] | None:
        found = [s for s in worker_spans(spans_file) if s["name"] == tracing.ATTEMPT_SPAN]
        return found if len(found) >= 2 else None

    attempts = wait_until(both, 10, "both attempt spans")
    return emit_span, attempts, deliveries(app, event_id)[0]


def test_one_trace_links_the_emit_and_every_attempt_across_processes(e2e_app, receiver, start_worker, tmp_path, spans):
    emit_span, attempts, delivery = run(
        e2e_app, receiver, start_worker, tmp_path, spans, TRAKKR_WEBHOOKS_TRACEPARENT_HEADER=True
    )
    context = emit_span.get_span_context()
    trace_id, span_id = f"0x{context.trace_id:032x}", f"0x{context.span_id:016x}"
    assert emit_span.attributes["trakkr_webhooks.event_type"] == "visibility_changed"
    assert emit_span.attributes["trakkr_webhooks.deliveries"] == 1
    assert delivery["trace_context"].rpartition("-")[0] == f"00-{trace_id[2:]}-{span_id[2:]}"  # then the flags

    assert len(attempts) == 2
    for span in attempts:
        assert span["context"]["trace_id"] == trace_id
        assert span["parent_id"] == span_id
        assert span["attributes"]["trakkr_webhooks.delivery_id"] == delivery["id"]
        assert receiver.url not in json.dumps(span)  # never the URL
    by_attempt = {s["attributes"]["trakkr_webhooks.attempt"]: s for s in attempts}
    assert by_attempt[1]["attributes"]["http.response.status_code"] == 500
    assert by_attempt[1]["attributes"]["trakkr_webhooks.outcome"] == "retry"
    assert by_attempt[1]["status"]["status_code"] == "ERROR"
    assert by_attempt[2]["attributes"]["http.response.status_code"] == 200
    assert by_attempt[2]["attributes"]["trakkr_webhooks.result"] == "2xx"
    # The opt-in header: each request carried its own attempt span's context.
    sent = [got.headers["traceparent"].rpartition("-")[0] for got in receiver.received]
    assert sorted(sent) == sorted(f"00-{trace_id[2:]}-{s['context']['span_id'][2:]}" for s in attempts)


def test_the_traceparent_header_is_opt_in(e2e_app, receiver, start_worker, tmp_path, spans):
    _, attempts, _ = run(e2e_app, receiver, start_worker, tmp_path, spans)
    assert len(attempts) == 2
    assert all("traceparent" not in {k.lower() for k in got.headers} for got in receiver.received)


def test_without_the_extra_nothing_is_traced_or_stored(e2e_app, receiver, spans, monkeypatch):
    monkeypatch.setattr(tracing, "AVAILABLE", False)
    app = e2e_app()
    make_webhook(app, receiver.url + "/hooks")
    event_id = emit(app)
    assert spans.get_finished_spans() == ()
    assert deliveries(app, event_id)[0]["trace_context"] is None
