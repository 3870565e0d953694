"""Which provider a webhook URL belongs to, from its host and path alone (pure, no I/O).

``detect_provider(url)`` reads the URL once (:func:`.matchers.host_and_path`) and asks each
registered provider's matcher in turn: providers a host registered first, in registration
order, then the built-in ones in product-page order. The first that says yes wins; when
none does, or the URL cannot be read safely, the answer is ``webhook`` (the standard payload).

Hosts are compared exactly (case-insensitively, ignoring a trailing dot) or by whole-label
suffix, so ``hooks.slack.com.evil.example`` and ``evilhooks.slack.com`` stay generic. A URL
with userinfo or a backslash in its authority is never matched: parsers disagree about where
such a host starts, so guessing would be unsafe.
"""

from __future__ import annotations

from .matchers import host_and_path
from .registry import GENERIC, PROVIDERS, Provider, detection_order


def _claims(provider: Provider, host: str, path: str) -> bool:
    """True when ``provider``'s matcher claims ``host``/``path``; a matcher that raises claims nothing."""
    if provider.matches is None:
        return False
    try:
        return bool(provider.matches(host, path))
    except Exception:  # a host's matcher must not turn a create/PATCH into a 500: no match
        return False


def detect_provider(url: str) -> str:
    """The name of the provider ``url`` belongs to; ``webhook`` when no provider claims it.

    Built in:

    * ``slack``: ``hooks.slack.com``
    * ``discord``: ``discord.com`` / ``discordapp.com`` (and their ``ptb.`` / ``canary.``
      hosts) with a path under ``/api/webhooks/`` (or ``/api/v<N>/webhooks/``)
    * ``teams_webhook``: ``<tenant>.webhook.office.com``, ``outlook.office.com/webhook...``
      (and ``outlook.office365.com``), and Power Automate workflow URLs
      (``*.logic.azure.com`` and ``*.environment.api.powerplatform.com`` with ``/workflows/``)
    * ``zapier``: ``hooks.zapier.com``
    * ``make``: ``hook.<zone>.make.com``, ``hook.integromat.com``
    * anything else, or a URL that cannot be read: ``webhook``

    A provider registered with ``matches=`` (:func:`.registry.register`) is asked before these.
    """
    found = host_and_path(url)
    if found is None:
        return GENERIC
    host, path = found
    for provider in detection_order():
        if _claims(provider, host, path):
            return provider.name
    return GENERIC


__all__ = ["GENERIC", "PROVIDERS", "detect_provider"]
