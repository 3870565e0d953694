"""schemathesis against the running API: its own OpenAPI document is the oracle.

The app's ``/webhooks/openapi.json`` is loaded through WSGI and schemathesis's engine
(what ``schemathesis run`` drives) runs every phase on it: explicit examples, coverage
(boundary values and schema violations), fuzzing, and stateful sequences linked by the
``Location`` header of a created webhook. Each answer is checked:

* ``not_a_server_error``: no 5xx, whatever the input;
* ``status_code_conformance`` / ``content_type_conformance`` / ``response_headers_conformance``:
  every status and content type is documented for the operation;
* ``response_schema_conformance``: every body fits the documented schema;
* ``negative_data_rejection``: a request the document calls invalid is refused (4xx);
* ``unsupported_method`` / ``allow_header_conformance``: other methods get 405 with ``Allow``;
* ``use_after_free`` / ``ensure_resource_availability``: a deleted webhook is gone, a created one is there.

``positive_data_acceptance`` is left out on purpose: the document cannot express every
rule (a URL must resolve to a public address, a brand must pass the policy), so
valid-looking data is rightly refused at times.

Path parameters are half the time a real id seeded for the run (a webhook with a
delivery, sending to a real receiver on 127.0.0.1), otherwise generated. ``DELETE`` and
``PATCH`` get webhooks of their own (also when schemathesis reuses an id it saw in an
answer), so the other routes keep a working one and reach their success answers. The run is
bounded and deterministic: :data:`MAX_EXAMPLES` per operation, a fixed seed.

(schemathesis's pytest plugin is not used: its lazy ``from_fixture`` loader fails on
pytest 9, where ``Function._nodeid`` no longer exists; a fixture-built app needs it.)
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from e2e.helpers import clear_queue
from e2e.receiver import Receiver
from flask_trakkr_webhooks import ssrf

# Not on the fast path: schemathesis runs for a minute.
pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30
SEED = 20240607
BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False,
    TRAKKR_WEBHOOKS_ALLOWED_CIDRS=["127.0.0.1/32"],  # the receiver
    TRAKKR_WEBHOOKS_TIMEOUT=2,
)
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
]


@pytest.fixture
def loopback_only(monkeypatch) -> None:
    """Deliveries go to 127.0.0.1 only: a generated URL with a public address never leaves the machine."""
    connect = ssrf._u3_connection.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(111, f"the test refuses connections to {address[0]}")
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(ssrf._u3_connection, "create_connection", guarded)


@pytest.fixture
def seeded(make_app, loopback_only) -> Iterator[tuple[Any, dict[str, str]]]:
    """An app with a webhook that has a delivery, one to PATCH and one to DELETE."""
    with Receiver() as receiver:
        app = make_app(**CONFIG)
        client = app.test_client()

        def webhook() -> str:
            created = client.post(
                "/webhooks",
                json={
                    "url": receiver.url + "/hooks",
                    "events": ["visibility_changed", "report_completed"],
                    "brand_id": BRAND,
                    "signing_secret": "s" * 32,
                    "auth_type": "bearer",
                    "auth_token": "t0ken",
                },
            )
            assert created.status_code == 201, created.get_json()
            return created.get_json()["id"]

        real = {"webhook_id": webhook(), "patch": webhook(), "delete": webhook()}
        with app.app_context():
            app.webhooks.emit(
                "visibility_changed",
                brand={"id": BRAND, "name": "Acme", "website": "https://acme.example"},
                data={"previous_score": 41.0, "current_score": 57.5, "change_percent": 40.2},
            )
            app.db.session.commit()
        listed = client.get(f"/webhooks/{real['webhook_id']}/deliveries").get_json()["data"]
        assert len(listed) == 1
        real["delivery_id"] = listed[0]["id"]
        yield app, real
        clear_queue(app)


def run_schemathesis(app: Any, real: dict[str, str]) -> tuple[Counter, list[str], Counter]:
    """Run every phase; answer (statuses per operation, failure descriptions, requests per phase)."""
    # A fixed seed, so a failure reproduces.
    schema = schemathesis.openapi.from_wsgi("/webhooks/openapi.json", app, config=schemathesis.Config(seed=SEED))
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)
    schema.config.checks.update(included_check_names=CHECKS)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        if not path_parameters or "webhook_id" not in path_parameters:
            return st.just(path_parameters)
        method = context.operation.method.upper()
        webhook_id = (
            real["delete"] if method == "DELETE" else real["patch"] if method == "PATCH" else real["webhook_id"]
        )
        mine = {**path_parameters, "webhook_id": webhook_id}
        if "delivery_id" in path_parameters:
            mine["delivery_id"] = real["delivery_id"]
        return st.sampled_from([path_parameters, mine])

    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        # schemathesis also reuses ids it saw in answers (in every phase): keep the shared webhook
        # alive and as seeded, so the routes under it reach their success answers.
        params = case.path_parameters or {}
        if case.method.upper() == "DELETE" and params.get("webhook_id") in (real["webhook_id"], real["patch"]):
            case.path_parameters = {**params, "webhook_id": real["delete"]}
        elif case.method.upper() == "PATCH" and params.get("webhook_id") == real["webhook_id"]:
            case.path_parameters = {**params, "webhook_id": real["patch"]}

    statuses: Counter = Counter()
    phases: Counter = Counter()
    failures: list[str] = []
    schemathesis.hook(before_call)  # a global-only hook: removed again below
    try:
        for event in from_schema(schema).execute():
            _collect(event, statuses, phases, failures)
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)
    return statuses, failures, phases


def _collect(event: Any, statuses: Counter, phases: Counter, failures: list[str]) -> None:
    """Tally one engine event: answers per (operation, status), requests per phase, failures."""
    if isinstance(event, events.ScenarioFinished):
        for case_id, interaction in event.recorder.interactions.items():
            if interaction.response is not None:
                label = event.recorder.cases[case_id].value.operation.label  # stateful runs span operations
                statuses[(label, interaction.response.status_code)] += 1
            phases[event.phase.value] += 1
        for case_id, checks in event.recorder.checks.items():
            for check in checks:
                if check.status == Status.FAILURE and check.failure_info is not None:
                    case = event.recorder.cases[case_id].value
                    failures.append(
                        f"{event.recorder.label}: {check.name}: {check.failure_info.failure.title}\n"
                        f"  {check.failure_info.failure.message}\n  {check.failure_info.code_sample}"
                        f"\n  body={getattr(case, 'body', None)!r}"
                    )
    elif isinstance(event, events.NonFatalError):
        failures.append(f"{event.label}: error: {event.info.format()}")
    elif isinstance(event, events.FatalError):
        raise event.exception


def test_the_api_conforms_to_its_openapi_document(seeded) -> None:
    app, real = seeded
    statuses, failures, phases = run_schemathesis(app, real)
    operations = sorted({label for label, _ in statuses})
    print(
        f"\nschemathesis: {len(operations)} operations, {sum(statuses.values())} requests, "
        f"requests per phase {dict(phases)}, {len(failures)} failures"
    )
    for label in operations:
        counts = {status: n for (name, status), n in sorted(statuses.items()) if name == label}
        print(f"  {label}: {counts}")
    assert not failures, "\n\n".join(failures)
    documented = app.test_client().get("/webhooks/openapi.json").get_json()["paths"]
    # schemathesis skips the operation that serves the document itself (test_openapi covers it).
    expected = {
        f"{method.upper()} {path}"
        for path, item in documented.items()
        for method in item
        if path != "/webhooks/openapi.json"
    }
    assert set(operations) == expected
    # Each operation answered its documented success status at least once (the real ids did their job).
    success = {
        f"{method.upper()} {path}": next(code for code in op["responses"] if code.startswith("2"))
        for path, item in documented.items()
        for method, op in item.items()
    }
    missing = [label for label in operations if statuses[(label, int(success[label]))] == 0]
    assert missing == []
