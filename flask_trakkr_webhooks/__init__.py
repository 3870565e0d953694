"""flask-trakkr-webhooks: signed, retried, logged webhooks for Flask apps."""
from __future__ import annotations

__version__ = "0.1.0"

from .extension import TrakkrWebhooks, get_state  # noqa: E402

__all__ = ["TrakkrWebhooks", "get_state", "__version__"]
