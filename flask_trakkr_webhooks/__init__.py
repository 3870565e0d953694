"""flask-trakkr-webhooks: signed, retried, logged webhooks for Flask apps.

Everything the documentation tells users to import is here; the modules below are the
package's own layers (see the README's Architecture section).
"""

from __future__ import annotations

from ._version import __version__
from .auth import AuthMethod
from .crypto import DecryptionError, EncryptionKeyError, generate_key
from .errors import APIError, ConfigError, MessageError, NotInitialisedError, TrakkrWebhooksError
from .events import EventTypes
from .extension import TrakkrWebhooks
from .health import webhook_disabled
from .providers import Provider
from .ssrf import SSRFError
from .state import WebhooksState, get_state
from .templating import TemplateError

__all__ = [
    "APIError",
    "AuthMethod",
    "ConfigError",
    "DecryptionError",
    "EncryptionKeyError",
    "EventTypes",
    "MessageError",
    "NotInitialisedError",
    "Provider",
    "SSRFError",
    "TemplateError",
    "TrakkrWebhooks",
    "TrakkrWebhooksError",
    "WebhooksState",
    "__version__",
    "generate_key",
    "get_state",
    "webhook_disabled",
]
