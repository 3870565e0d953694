"""receiver.py: an endpoint that verifies Trakkr webhooks and handles each event once."""

import os

from flask import Flask

from receiver_kit.flask import idempotent, verify_webhook
from receiver_kit.idempotency import MemoryStore

app = Flask(__name__)


@app.post("/hooks")
@verify_webhook(secret=os.environ["TRAKKR_SIGNING_SECRET"])  # 401 unless signed with it
@idempotent(store=MemoryStore())  # runs once per meta.event_id, however often delivered
def on_trakkr(payload: dict) -> tuple[str, int]:
    # The newline in the same write: with PYTHONUNBUFFERED, print() writes it separately.
    print(f"verified {payload['meta']['event_id']} {payload['summary']}\n", end="", flush=True)
    return "", 204
