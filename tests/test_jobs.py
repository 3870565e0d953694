"""The RQ entry points (``flask_trakkr_webhooks/jobs.py``): one delivery alone, and the app
context a job function needs.
"""

from __future__ import annotations

import pytest

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import emit, make_webhook
from flask_trakkr_webhooks import jobs


@pytest.fixture
def new_app_config():
    """What ``new_app`` adds to every app of this module: a short stuck-claim time."""
    return {"TRAKKR_WEBHOOKS_STUCK_AFTER": 5}


def test_process_delivery_handles_one_delivery_alone(new_app, receiver):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    with app.app_context():
        result = jobs.process_delivery(delivery_id)
        assert jobs.process_delivery(delivery_id) is None  # already done
    assert (result.status, result.status_code, result.attempt) == ("succeeded", 200, 1)


def test_the_job_function_needs_an_app_context():
    with pytest.raises(RuntimeError, match="TRAKKR_WEBHOOKS_APP"):
        jobs.run_batch(["dlv_x"])
