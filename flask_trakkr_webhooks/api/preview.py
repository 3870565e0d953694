"""``POST /webhooks/<id>/preview``: the exact request a sample event would make, without sending it.

The request is built by :func:`message.build`, the builder every delivery uses, on the
sample event of ``POST /webhooks/<id>/test`` (:func:`.common.sample_payload`,
``meta.test: true``), so the body is byte for byte what ``/test`` would send at the same
instant. Nothing is sent and no row is written: the event and delivery ids in the body
and headers are generated for the preview and never stored.

* Body ``{"event": "<type>"}`` (optional): the sample's type; absent or ``null`` means the
  webhook's first subscribed type, as ``/test``. A type the webhook does not subscribe to
  is allowed (``subscribed: false`` says so): a user may check a layout before subscribing.
  An unknown type is 400 on ``event``.
* Credentials are masked (:func:`mask_headers`): the auth header of the webhook's
  ``auth_type`` shows its scheme only (``Bearer ********``, ``Basic ********``) and an api key
  header shows ``********``. Signatures are shown as computed: an HMAC does not reveal its key,
  and the signing secret is part of the webhook object anyway, so a user can check their
  verifier against ``body_text``. Custom headers are shown: the webhook object returns them too.
* A webhook whose request cannot be built (a row written around the API, e.g. ``bearer``
  without a token) is 409 with the reason: every delivery of it would fail permanently.

Access as the other routes: a webhook that does not exist, is deleted or belongs to a brand
the policy refuses is 404.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify

from .. import ids, message
from ..claim import endpoint_of
from ..errors import APIError
from ..state import get_state
from .common import require_credentials, sample_payload, sample_request

#: What a masked credential looks like.
MASK = "********"


def register(bp: Blueprint) -> None:
    """Add the preview route to ``bp``."""
    bp.add_url_rule("/<webhook_id>/preview", "preview_webhook", preview_webhook, methods=["POST"])


def mask_headers(headers: Mapping[str, str], endpoint: message.Endpoint) -> tuple[dict[str, str], list[str]]:
    """``headers`` with the endpoint's credentials masked, and the names that were masked (pure).

    The credential headers are exactly those :func:`message.auth_headers` adds; an
    ``Authorization`` value keeps its scheme word so the preview still shows which one is used.
    """
    secret = {name.lower() for name in message.auth_headers(endpoint)}
    shown: dict[str, str] = {}
    masked: list[str] = []
    for name, value in headers.items():
        if name.lower() in secret:
            scheme, space, _ = value.partition(" ")
            shown[name] = f"{scheme} {MASK}" if name.lower() == "authorization" and space else MASK
            masked.append(name)
        else:
            shown[name] = value
    return shown, masked


def preview_webhook(webhook_id: str) -> Response:
    """``POST /webhooks/<id>/preview``: 200 with the body and headers a sample event would be sent with."""
    state, webhook, event_type = sample_request(webhook_id)
    return jsonify(build_preview(webhook, event_type))


def build_preview(webhook: Any, event_type: str) -> dict[str, Any]:
    """The preview object (as ``POST /webhooks/<id>/preview`` answers) of a sample ``event_type``
    for ``webhook``; 409 (``APIError``) when its request cannot be built."""
    state = get_state()
    require_credentials(webhook, "preview the request")
    now = ids.utcnow()
    payload = sample_payload(state, webhook, event_type, event_id=ids.new_id(ids.EVENT), now=now)
    endpoint = endpoint_of(webhook, now)
    try:
        msg = message.build(
            endpoint,
            payload,
            delivery_id=ids.new_id(ids.DELIVERY),
            timestamp=int(now.timestamp()),
            event_type=state.event_types.spec(event_type),
        )
    except ValueError as exc:  # MessageError, TemplateError: what makes a delivery fail permanently
        raise APIError(409, f"The webhook's request cannot be built, so every delivery would fail: {exc}") from None
    headers, masked = mask_headers(msg.headers, endpoint)
    text = msg.body.decode("utf-8")
    return {
        "object": "preview",
        "webhook_id": webhook.id,
        "event_type": event_type,
        "subscribed": event_type in (webhook.events or []),
        "method": "POST",
        "url": msg.url,
        "provider": endpoint.provider,
        "templated": endpoint.template is not None,
        "headers": headers,
        "masked_headers": masked,
        "body": json.loads(text),  # parsed back: the exact text is body_text
        "body_text": text,
        "payload": payload,
    }
