"""API-key authentication and the webhooks access policy: a key manages its own brand only."""

from __future__ import annotations

from flask import g, request
from werkzeug.exceptions import Unauthorized

from flask_trakkr_webhooks.api import PUBLIC_ENDPOINTS
from flask_trakkr_webhooks.portal import BLUEPRINT_NAME as PORTAL

from . import db
from .models import Brand, hash_key
from .portal_login import signed_in_brand


def current_brand() -> Brand:
    """The brand whose API key is in ``Authorization: Bearer <key>``; 401 without a valid key."""
    if "brand" in g:
        return g.brand
    if request.blueprint == PORTAL:
        # Portal pages: the brand signed in with the session (portal_login.py), never a header.
        signed_in = signed_in_brand()
        if signed_in is None:
            raise Unauthorized("Sign in first.")
        g.brand = signed_in
        return signed_in
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("Send your brand's API key as 'Authorization: Bearer <key>'.")
    brand = db.session.execute(db.select(Brand).filter_by(api_key_hash=hash_key(key.strip()))).scalar_one_or_none()
    if brand is None:
        raise Unauthorized("Unknown API key.")
    g.brand = brand
    return brand


def authenticate() -> None:
    """Every API request needs a valid key, even one the policy is never asked about
    (listing when no webhook exists yet); the published OpenAPI document is the exception."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    if request.blueprint in ("trakkr_webhooks", "example"):
        current_brand()


def can_manage(brand_id: str) -> bool:
    """The access policy: the caller's key belongs to ``brand_id``."""
    return current_brand().id == brand_id
