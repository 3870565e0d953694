"""Reading a webhook URL safely, and the URL rules of the built-in providers (pure, no I/O).

:func:`host_and_path` is the one place a URL is parsed for detection. Each built-in
provider's rule is a matcher ``(host, path) -> bool`` here, so a host-registered
provider's matcher and a built-in one are called the same way.

Hosts are compared exactly or by whole-label suffix (:func:`is_subdomain`), so
``hooks.slack.com.evil.example`` and ``evilhooks.slack.com`` match nothing.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_DISCORD_HOSTS = frozenset(
    f"{sub}{domain}" for domain in ("discord.com", "discordapp.com") for sub in ("", "ptb.", "canary.")
)
# Discord webhooks: /api/webhooks/<id>/<token>, optionally with an API version (/api/v10/...).
_DISCORD_PATH = re.compile(r"^/api/(?:v\d+/)?webhooks/", re.IGNORECASE)
# Make: hook.<zone>.make.com (hook.eu1.make.com); Integromat, its former name, likewise.
_MAKE_HOST = re.compile(r"^hook\.(?:[a-z0-9-]+\.)?(?:make|integromat)\.com\Z")
# One DNS label, for "<tenant>.webhook.office.com" style suffix matches.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


def is_subdomain(host: str, suffix: str) -> bool:
    """True when ``host`` is ``<labels>.<suffix>`` (at least one valid DNS label before it)."""
    if not host.endswith("." + suffix):
        return False
    labels = host[: -len(suffix) - 1].split(".")
    return all(_LABEL.match(label) for label in labels)


def host_and_path(url: object) -> tuple[str, str] | None:
    """Lower-case host (no trailing dot) and path (as written, ``/`` when empty) of ``url``.

    ``None`` when the URL cannot be read safely: not a string, not http(s), no host, or
    userinfo / a backslash in the authority (parsers disagree about where such a host
    starts, so guessing would be unsafe).
    """
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".")
    except ValueError:  # e.g. "https://[::1/": an unterminated IPv6 literal
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    if "@" in parts.netloc or "\\" in parts.netloc:
        return None
    if not host:
        return None
    return host, parts.path or "/"


def match_slack(host: str, path: str) -> bool:
    """Slack incoming webhooks and workflow triggers: host ``hooks.slack.com``."""
    return host == "hooks.slack.com"


def match_discord(host: str, path: str) -> bool:
    """Discord: ``discord.com`` / ``discordapp.com`` (and ``ptb.`` / ``canary.``), path ``/api/(vN/)webhooks/``."""
    return host in _DISCORD_HOSTS and _DISCORD_PATH.match(path) is not None


def match_teams(host: str, path: str) -> bool:
    """Microsoft Teams incoming webhooks and Power Automate workflows.

    ``<tenant>.webhook.office.com``; ``outlook.office.com`` / ``outlook.office365.com`` with a
    path starting ``/webhook``; ``*.logic.azure.com`` / ``*.environment.api.powerplatform.com``
    with ``/workflows/`` in the path.
    """
    lowered = path.lower()
    if is_subdomain(host, "webhook.office.com"):
        return True
    if host in ("outlook.office.com", "outlook.office365.com"):
        return lowered.startswith("/webhook")
    workflow_host = is_subdomain(host, "logic.azure.com") or is_subdomain(host, "environment.api.powerplatform.com")
    return workflow_host and "/workflows/" in lowered


def match_zapier(host: str, path: str) -> bool:
    """Zapier catch hooks: host ``hooks.zapier.com``."""
    return host == "hooks.zapier.com"


def match_make(host: str, path: str) -> bool:
    """Make (formerly Integromat): ``hook.<zone>.make.com`` or ``hook.integromat.com``."""
    return _MAKE_HOST.match(host) is not None


__all__ = ["host_and_path", "is_subdomain", "match_discord", "match_make", "match_slack", "match_teams", "match_zapier"]
