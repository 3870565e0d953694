"""The ``flask webhooks`` command group."""
from __future__ import annotations

from flask.cli import AppGroup

#: ``flask --app HOST webhooks ...``
webhooks_cli = AppGroup("webhooks", help="Deliver and inspect webhooks (flask-trakkr-webhooks).")
