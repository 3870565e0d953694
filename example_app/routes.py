"""The host app's own HTTP endpoints (besides the mounted ``/webhooks`` API)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .auth import current_brand
from .simulate import SIMULATIONS, simulate

bp = Blueprint("example", __name__)


@bp.get("/brands/me")
def me():
    """The brand of the API key in use."""
    brand = current_brand()
    return jsonify({"slug": brand.slug, **brand.as_payload()})


@bp.post("/simulate/<kind>")
def simulate_event(kind: str):
    """Make an event of ``kind`` happen for the caller's brand; answers its ``evt_`` id."""
    if kind not in SIMULATIONS:
        return jsonify(
            {
                "error": {
                    "type": "not_found",
                    "message": f"unknown simulation {kind!r}",
                    "fields": {"kind": [f"choose one of {', '.join(SIMULATIONS)}"]},
                }
            }
        ), 404
    return jsonify({"event_id": simulate(current_brand(), kind)}), 202


@bp.errorhandler(401)
def unauthorized(error):
    """Answer a 401 in the API's error format."""
    return jsonify({"error": {"type": "unauthorized", "message": error.description}}), 401
