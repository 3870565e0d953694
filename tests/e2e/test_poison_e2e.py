"""End to end: one bad row never stalls a batch (issue 19, item 2), through a real worker.

One event fans out to four healthy webhooks and four poison rows, all in one batch job:

* a credential encrypted with another app's key (the worker holds K2, the row was written
  with K1): ``DecryptionError`` when the row is read;
* a host-registered provider whose formatter raises;
* a template that raises when rendered (this host app makes ``templating.render`` raise for a
  template holding :data:`RAISE_MARKER`, standing in for any bug in rendering);
* a delivery deleted while its request is in flight (before the worker records it).

Each poison row affects itself alone: it ends ``failed`` with the reason in ``last_error`` and
an attempt in the log (the deleted one simply stays gone, with no orphan attempt), the four
healthy deliveries succeed, nothing is left ``sending`` and no ``attempt_count`` exceeds the
maximum. ``flask --app e2e.test_poison_e2e:create_app webhooks worker`` runs this module's
:func:`create_app`.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from e2e.conftest import wait_until
from e2e.helpers import deliveries, emit, make_webhook
from e2e.hostapp import create_app as create_base_app
from e2e.receiver import Reply
from flask_trakkr_webhooks import crypto, get_state, providers, templating

pytestmark = pytest.mark.e2e

#: A template holding this key raises when rendered in the worker of :func:`create_app`.
RAISE_MARKER = "__raise_at_render__"
HOST = "e2e.test_poison_e2e:create_app"
#: How long the receiver holds every request: the doomed row is deleted meanwhile, and all
#: the attempts finish together (one recorder group).
HOLD = 0.6


def explode_body(payload: dict[str, Any]) -> dict[str, Any]:
    """A host formatter with a bug."""
    return {"text": payload["no such key"]}


def _raising_render(real: Any) -> Any:
    def render(template: Any, payload: object) -> Any:
        if isinstance(template, dict) and RAISE_MARKER in template:
            raise RuntimeError("the template exploded while rendering")
        return real(template, payload)

    return render


def create_app() -> Flask:
    """The e2e host app with the ``explode`` provider and a template that raises at render."""
    providers.register("explode", explode_body, matches=lambda host, path: path.startswith("/explode/"))
    if not getattr(templating.render, "poisoned", False):
        render = _raising_render(templating.render)
        render.poisoned = True  # type: ignore[attr-defined]
        templating.render = render
    return create_base_app()


def test_each_poison_row_fails_alone_and_the_batch_is_delivered(e2e_app, receiver, start_worker):
    k1, k2 = crypto.generate_key(), crypto.generate_key()
    app = e2e_app(
        TRAKKR_WEBHOOKS_ENCRYPTION_KEY=k2, TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.2, 0.4, 0.8], TRAKKR_WEBHOOKS_TIMEOUT=5
    )
    healthy = [make_webhook(app, f"{receiver.url}/hooks/{i}") for i in range(4)]
    with crypto.using_keys(k1):  # written by an app whose key is K1
        undecryptable = make_webhook(app, receiver.url + "/other-key")
    formatter = make_webhook(app, receiver.url + "/explode/1", provider="explode")
    template = make_webhook(app, receiver.url + "/template", template={RAISE_MARKER: "{{event.type}}"})
    doomed = make_webhook(app, receiver.url + "/doomed")
    receiver.default = Reply(200, delay=HOLD)
    start_worker(app, host=HOST)
    event_id = emit(app)

    def doomed_request() -> Any:
        return next((r for r in receiver.received if r.path == "/doomed"), None)

    request = wait_until(doomed_request, 30, "the request of the delivery to delete")
    with app.app_context():
        state = get_state(app)
        table = state.models.Delivery.__table__
        done = app.db.session.execute(table.delete().where(table.c.webhook_id == doomed))
        app.db.session.commit()
    assert done.rowcount == 1, "deleted after its attempt was recorded: the receiver answered too soon"
    deleted_id = request.headers["X-Trakkr-Delivery"]

    def all_finished() -> list[dict[str, Any]] | None:
        rows = deliveries(app, event_id)
        return rows if rows and all(d["status"] in ("succeeded", "failed") for d in rows) else None

    rows = {d["webhook_id"]: d for d in wait_until(all_finished, 30, "every delivery to finish")}
    assert set(rows) == {*healthy, undecryptable, formatter, template}
    max_attempts = 1 + 3
    assert all(1 <= d["attempt_count"] <= max_attempts for d in rows.values())
    assert all(d["attempt_count"] == len(d["attempts"]) for d in rows.values())
    assert {rows[h]["status"] for h in healthy} == {"succeeded"}

    reasons = {}
    for name, hook in (("credential", undecryptable), ("formatter", formatter), ("template", template)):
        row = rows[hook]
        assert (row["status"], row["attempt_count"]) == ("failed", 1), name
        [attempt] = row["attempts"]
        assert attempt["outcome"] == "failed" and attempt["error_message"], name
        reasons[name] = row["last_error"]
    assert reasons["credential"].startswith("DecryptionError: cannot decrypt the webhook's auth_token")
    assert "explode" in reasons["formatter"] and "KeyError" in reasons["formatter"]
    assert "the template exploded while rendering" in reasons["template"]

    # Nothing reached the receiver from the failed ones; the healthy ones arrived signed.
    paths = sorted(r.path for r in receiver.received)
    assert paths == sorted(["/doomed", *(f"/hooks/{i}" for i in range(4))])
    assert all(r.signature_ok and r.auth_ok for r in receiver.received)
    # The deleted delivery left no orphan attempt behind.
    with app.app_context():
        A = get_state(app).models.Attempt
        orphans = app.db.session.execute(sa.select(sa.func.count()).where(A.delivery_id == deleted_id)).scalar()
    assert orphans == 0
