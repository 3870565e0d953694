"""The host app's own model: brands, each with an API key."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from . import db


def hash_key(api_key: str) -> str:
    """API keys are stored hashed; a leaked database does not leak keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class Brand(db.Model):
    """A brand tracked by the app; webhooks are registered per brand."""

    __tablename__ = "example_brands"

    id = db.Column(db.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    slug = db.Column(db.String(64), unique=True, nullable=False)
    name = db.Column(db.String(200), nullable=False)
    website = db.Column(db.String(500), nullable=False)
    api_key_hash = db.Column(db.String(64), unique=True, nullable=False)

    def as_payload(self) -> dict:
        """The ``brand`` object of a webhook payload."""
        return {"id": self.id, "name": self.name, "website": self.website}

    @classmethod
    def create(cls, slug: str, name: str, website: str, brand_id: str | None = None) -> tuple[Brand, str]:
        """Create a brand; return it and its API key (shown once)."""
        api_key = "tk_" + secrets.token_urlsafe(24)
        brand = cls(
            id=brand_id or str(uuid.uuid4()), slug=slug, name=name, website=website, api_key_hash=hash_key(api_key)
        )
        db.session.add(brand)
        return brand, api_key
