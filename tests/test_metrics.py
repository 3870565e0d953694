"""Metrics: result classes, the exposed names, the worker's ``--metrics-port`` option, and the
Grafana dashboard and alert rules in ``docs/monitoring`` (every metric they use exists)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from flask_trakkr_webhooks import metrics

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "docs" / "monitoring"
#: Series Prometheus makes itself (not ours): the scrape's health.
PROMETHEUS_OWN = {"up"}


@pytest.mark.parametrize(
    ("status_code", "error", "result"),
    [
        (200, None, "2xx"),
        (204, None, "2xx"),
        (301, None, "3xx"),
        (410, None, "4xx"),
        (429, None, "4xx"),
        (503, None, "5xx"),
        (101, None, "2xx"),  # no 1xx final answer: counted with the successes' class
        (None, "timeout", "timeout"),
        (None, "connection", "connection_error"),
        (None, "permanent", "refused"),
    ],
)
def test_result_class(status_code: int | None, error: str | None, result: str) -> None:
    assert metrics.result_class(status_code, error) == result
    assert result in metrics.RESULTS


def exposed_names() -> set[str]:
    """Every sample name the package can expose: the default registry's families plus the
    worker's backlog collector (in a registry of its own here)."""
    registry = CollectorRegistry()
    registry.register(metrics.BacklogCollector(lambda: metrics.Backlog({"queued": 2}, 1.5)))
    names: set[str] = set()
    for source in (REGISTRY, registry):
        for family in source.collect():
            if not family.name.startswith(metrics.PREFIX):
                continue
            if family.type == "counter":
                names.add(family.name + "_total")
            elif family.type == "histogram":
                names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
            else:
                names.add(family.name)
    return names


def test_the_contract_names_are_exposed() -> None:
    names = exposed_names()
    for name in metrics.EXPOSED:
        assert name in names or name + "_bucket" in names, name
    assert {
        "trakkr_webhooks_deliveries_total",
        "trakkr_webhooks_attempts_total",
        "trakkr_webhooks_attempt_duration_seconds_bucket",
        "trakkr_webhooks_delivery_lag_seconds_bucket",
        "trakkr_webhooks_emits_total",
        "trakkr_webhooks_in_flight",
        "trakkr_webhooks_backlog",
        "trakkr_webhooks_endpoints_disabled_total",
    } <= names


def test_the_backlog_collector_reads_at_most_every_ttl_and_survives_a_database_error() -> None:
    reads: list[int] = []

    def read() -> metrics.Backlog:
        reads.append(1)
        return metrics.Backlog({"pending": 3, "retrying": 1}, None)

    registry = CollectorRegistry()
    registry.register(metrics.BacklogCollector(read, ttl=60))
    text = generate_latest(registry).decode()
    generate_latest(registry)
    assert len(reads) == 1
    assert 'trakkr_webhooks_backlog{status="pending"} 3.0' in text
    assert 'trakkr_webhooks_backlog{status="sending"} 0.0' in text
    assert "trakkr_webhooks_oldest_waiting_seconds 0.0" in text

    def broken() -> metrics.Backlog:
        raise RuntimeError("database gone")

    registry = CollectorRegistry()
    registry.register(metrics.BacklogCollector(broken))
    assert "trakkr_webhooks_backlog" not in generate_latest(registry).decode()


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "expr" and isinstance(v, str)] + [
            e for v in node.values() for e in _expressions(v)
        ]
    if isinstance(node, list):
        return [e for v in node for e in _expressions(v)]
    return []


def _series(expression: str) -> set[str]:
    """Metric names an expression selects (ours by prefix; ``up``)."""
    found = set(re.findall(r"\b(trakkr_webhooks_[a-z_]+)\b", expression))
    found.update(name for name in PROMETHEUS_OWN if re.search(rf"\b{name}\{{", expression))
    return found


def test_dashboard_parses_and_every_metric_it_uses_exists() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = _expressions(dashboard["panels"])
    assert len(expressions) >= 10 and all(p["targets"] for p in dashboard["panels"])
    used = set().union(*map(_series, expressions))
    names = exposed_names()
    assert used - names == set()
    # Every family is on the dashboard.
    for name in metrics.EXPOSED:
        assert name in used or name + "_bucket" in used, name
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("outcome", "duration", "backlog", "lag", "failure"):
        assert topic in titles


def test_alert_rules_parse_and_every_metric_they_use_exists() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert {"TrakkrWebhooksBacklogOld", "TrakkrWebhooksFailureRate", "TrakkrWebhooksNoLiveWorker"} <= set(alerts)
    names = exposed_names() | PROMETHEUS_OWN
    for name, rule in alerts.items():
        used = _series(rule["expr"])
        assert used and used <= names, (name, used - names)
        assert rule["labels"]["severity"] and rule["annotations"]["summary"]


def test_metrics_port_out_of_range_is_refused(make_app: Any) -> None:
    result = make_app().test_cli_runner().invoke(args=["webhooks", "worker", "--metrics-port", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '--metrics-port': 0 is not in the range 1<=x<=65535." in result.output
