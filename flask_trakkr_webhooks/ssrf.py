"""SSRF guard: vet where a webhook URL points, then connect only to the vetted address.

Two halves, used together:

* :func:`check_url` parses a URL exactly as ``requests`` would send it, resolves the
  host, and checks **every** address it resolves to against the table of refused
  address classes (loopback, private, link-local, CGNAT, multicast, reserved, IPv6
  ULA, IPv4 embedded in IPv6, ...). It returns the vetted addresses or raises
  :class:`BlockedAddress` / :class:`UnresolvableHost` / :class:`MalformedURL`.
* :class:`PinnedClient` sends a request to one of those vetted addresses while the
  ``Host`` header, TLS SNI and certificate verification keep using the hostname.
  Nothing resolves the name a second time, so a DNS answer that changes between
  check and connect (rebinding) cannot move the request elsewhere. :func:`safe_send`
  does both in one call.

A ``deadline`` (a :func:`time.monotonic` value) given to :func:`safe_send` bounds the whole
request, connect to the last byte of the answer read (its body included, read after the
call returns): every socket operation's timeout is cut to the time left, so a receiver
that trickles its status line, headers or body one byte at a time cannot hold the
request past it, and no thread is needed to watch it.

Error semantics for callers: at save time any :class:`SSRFError` is a 400 on the
``url`` field. At send time :class:`BlockedAddress` and :class:`MalformedURL` are
permanent failures, while :class:`UnresolvableHost` is a retryable connection error
(DNS outages are transient).
"""

from __future__ import annotations

import contextvars
import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, NamedTuple, cast, overload
from urllib.parse import unquote, urlsplit

import requests
from urllib3 import BaseHTTPResponse
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import PoolKey, PoolManager, _default_key_normalizer
from urllib3.util import Timeout, parse_url
from urllib3.util import connection as _u3_connection
from urllib3.util.ssl_ import create_urllib3_context

from .errors import TrakkrWebhooksError

if TYPE_CHECKING:  # pragma: no cover
    from .config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolver(host, port) -> iterable of address strings``; the default uses getaddrinfo.
Resolver = Callable[[str, int], Iterable[str | IPAddress]]

ALLOW_PRIVATE_SETTING = "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS"
ALLOWED_CIDRS_SETTING = "TRAKKR_WEBHOOKS_ALLOWED_CIDRS"

# -- address classes -------------------------------------------------------------------

LOOPBACK = "loopback"
PRIVATE = "private"
LINK_LOCAL = "link-local"
CGNAT = "carrier-grade NAT"
MULTICAST = "multicast"
BROADCAST = "broadcast"
UNSPECIFIED = "unspecified"
RESERVED = "reserved"
DOCUMENTATION = "documentation"
BENCHMARKING = "benchmarking"
UNIQUE_LOCAL = "unique local (private IPv6)"
SITE_LOCAL = "site-local"
TEREDO = "Teredo tunnel"

#: Classes no setting admits: nothing legitimate listens there, and ``0.0.0.0`` / ``::``
#: reach the local host on Linux.
NEVER_ALLOWED = frozenset({UNSPECIFIED, MULTICAST, BROADCAST})

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# First match wins, so more specific networks come first.
_V4_TABLE: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), UNSPECIFIED),
    (_V4("0.0.0.0/8"), RESERVED),  # "this network"
    (_V4("127.0.0.0/8"), LOOPBACK),
    (_V4("10.0.0.0/8"), PRIVATE),
    (_V4("172.16.0.0/12"), PRIVATE),
    (_V4("192.168.0.0/16"), PRIVATE),
    (_V4("100.64.0.0/10"), CGNAT),
    (_V4("169.254.0.0/16"), LINK_LOCAL),
    (_V4("192.0.0.0/24"), RESERVED),  # IETF protocol assignments
    (_V4("192.0.2.0/24"), DOCUMENTATION),
    (_V4("198.51.100.0/24"), DOCUMENTATION),
    (_V4("203.0.113.0/24"), DOCUMENTATION),
    (_V4("198.18.0.0/15"), BENCHMARKING),
    (_V4("192.88.99.0/24"), RESERVED),  # deprecated 6to4 relay anycast
    (_V4("224.0.0.0/4"), MULTICAST),
    (_V4("255.255.255.255/32"), BROADCAST),
    (_V4("240.0.0.0/4"), RESERVED),
)

_V6_TABLE: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), UNSPECIFIED),
    (_V6("::1/128"), LOOPBACK),
    (_V6("64:ff9b:1::/48"), PRIVATE),  # local-use NAT64 (RFC 8215)
    (_V6("100::/64"), RESERVED),  # discard-only
    (_V6("2001::/32"), TEREDO),
    (_V6("2001:2::/48"), BENCHMARKING),
    (_V6("2001:db8::/32"), DOCUMENTATION),
    (_V6("2001::/23"), RESERVED),  # IETF protocol assignments
    (_V6("3fff::/20"), DOCUMENTATION),
    (_V6("5f00::/16"), RESERVED),  # SRv6 SIDs
    (_V6("fc00::/7"), UNIQUE_LOCAL),
    (_V6("fe80::/10"), LINK_LOCAL),
    (_V6("fec0::/10"), SITE_LOCAL),
    (_V6("ff00::/8"), MULTICAST),
)
_IPV4_COMPATIBLE = _V6("::/96")
_NAT64 = _V6("64:ff9b::/96")
_GLOBAL_UNICAST = _V6("2000::/3")

#: Well-known cloud metadata endpoints, named in messages so the refusal is obvious.
_NOTES = {
    ipaddress.ip_address("169.254.169.254"): "the cloud instance metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "the AWS instance metadata service",
    ipaddress.ip_address("100.100.100.200"): "the Alibaba Cloud metadata service",
    ipaddress.ip_address("192.0.0.192"): "the Oracle Cloud metadata service",
}


# -- errors -----------------------------------------------------------------------------


class SSRFError(TrakkrWebhooksError, ValueError):
    """Base class: the URL may not be used as a webhook destination."""


class MalformedURL(SSRFError):
    """The URL is not an ``http(s)`` URL with a valid host (permanent)."""


class UnresolvableHost(SSRFError):
    """The host name has no address right now.

    At save time this is a 400; at send time treat it as a retryable connection
    error (a DNS outage is transient).
    """

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        super().__init__(f"webhook host {host!r} could not be resolved: {reason}")


class BlockedAddress(SSRFError):
    """The URL points (or resolves) to an address class webhooks may not reach (permanent).

    Attributes: ``host``, ``address`` (the refused address), ``address_class``
    (e.g. ``"loopback"``), ``setting`` (the config key that would allow it, or
    ``None`` when nothing does).
    """

    def __init__(
        self,
        host: str,
        address: IPAddress,
        address_class: str,
        *,
        detail: str = "",
        destination: IPAddress | None = None,
        literal: bool = False,
    ) -> None:
        self.host = host
        self.address = address
        self.address_class = address_class
        never = address_class in NEVER_ALLOWED
        self.setting = None if never else f"{ALLOW_PRIVATE_SETTING} or {ALLOWED_CIDRS_SETTING}"
        if not literal:
            where = f"webhook host {host!r} resolves to {address}"
        elif host == str(address):
            where = f"the URL's host {address}"
        else:
            where = f"the URL's host {host!r} is the IP address {address}"
        article = "an" if address_class == UNSPECIFIED else "a"
        message = f"{where}{detail}, {article} {address_class} address"
        if never:
            message += ", which is never a valid webhook destination (no setting allows it)"
        else:
            example = _bare(destination or address)
            message += (
                f"; webhooks may not target {address_class} addresses unless "
                f"{ALLOW_PRIVATE_SETTING} = True (development) or the address is inside a network listed in "
                f"{ALLOWED_CIDRS_SETTING} (self-hosted receivers, e.g. ['{example}/{example.max_prefixlen}'])"
            )
        super().__init__(message)


# -- classification (pure) -------------------------------------------------------------------


@overload
def _bare(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address: ...
@overload
def _bare(address: IPAddress) -> IPAddress: ...
def _bare(address: IPAddress) -> IPAddress:
    """``address`` without an IPv6 zone (``fe80::1%eth0`` -> ``fe80::1``), for table lookups."""
    if address.version == 6 and address.scope_id:
        return ipaddress.IPv6Address(address.packed)
    return address


def _lookup(address: IPAddress, table: Sequence[tuple[Any, str]]) -> str | None:
    return next((cls for network, cls in table if address in network), None)


def _analyse(address: IPAddress) -> tuple[IPAddress, str | None, str]:
    """Return (destination, refused class or None, how it was derived) for one address.

    IPv6 forms that carry an IPv4 address are judged by that IPv4 address; an
    IPv4-mapped one is also *connected to* as IPv4, since that is where it goes.
    """
    if address.version == 4:
        return address, _lookup(address, _V4_TABLE), ""
    bare = _bare(address)
    mapped = bare.ipv4_mapped
    if mapped is not None:
        return mapped, _lookup(mapped, _V4_TABLE), f" (IPv4-mapped form of {mapped})"
    direct = _lookup(bare, _V6_TABLE[:2])  # :: and ::1 sit inside ::/96
    if direct:
        return address, direct, ""
    if bare in _IPV4_COMPATIBLE:
        embedded = ipaddress.IPv4Address(int(bare) & 0xFFFFFFFF)
        return address, _lookup(embedded, _V4_TABLE) or RESERVED, f" (deprecated IPv4-compatible form of {embedded})"
    if bare in _NAT64:
        embedded = ipaddress.IPv4Address(int(bare) & 0xFFFFFFFF)
        return address, _lookup(embedded, _V4_TABLE), f" (NAT64 form of {embedded})"
    sixtofour = bare.sixtofour
    if sixtofour is not None:
        return address, _lookup(sixtofour, _V4_TABLE), f" (6to4 form of {sixtofour})"
    teredo = bare.teredo
    if teredo is not None:
        return address, TEREDO, f" (Teredo tunnel to {teredo[1]})"
    found = _lookup(bare, _V6_TABLE)
    if found is None and bare not in _GLOBAL_UNICAST:
        found = RESERVED  # outside 2000::/3 nothing is allocated for public use
    return address, found, ""


def classify(address: str | IPAddress) -> str | None:
    """The refused class of ``address`` (``"loopback"``, ``"private"``, ...), or ``None`` if public."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address)
    return _analyse(address)[1]


def parse_cidrs(cidrs: Iterable[str] | str | None) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse ``TRAKKR_WEBHOOKS_ALLOWED_CIDRS`` (a list or a comma-separated string).

    Raises ``ValueError`` naming the setting and the bad entry, so an app can fail at start.
    """
    if not cidrs:
        return ()
    if isinstance(cidrs, str):
        cidrs = cidrs.split(",")
    networks = []
    for entry in cidrs:
        text = str(entry).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{ALLOWED_CIDRS_SETTING}: {text!r} is not a network in CIDR form ({exc})") from None
    return tuple(networks)


def settings_kwargs(settings: Settings) -> dict[str, Any]:
    """``check_url``/``safe_send`` keyword arguments from an app's ``Settings``."""
    return {"allow_private": settings.allow_private_networks, "allowed_cidrs": settings.allowed_cidrs}


# -- URL parsing and resolution -----------------------------------------------------------

_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?\Z")
_NUMBER_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)\Z")
_LOCALHOST = re.compile(r"^(.+\.)?localhost\.?\Z")


@lru_cache(maxsize=4096)
def _prepared_url(url: str) -> str:
    # requests' normalisation (IDNA, quoting, an empty path as "/"): what check_url vets is what is sent.
    # Cached: a webhook's URL is the same for every delivery, and this is a tenth of a request's cost.
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return prepared.url or ""


def _split(url: str) -> tuple[str, int]:
    """(host, port) of ``url`` as it is sent (:func:`target`); ``MalformedURL`` otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise MalformedURL("the URL must be a non-empty string")
    return _split_prepared(url)


@lru_cache(maxsize=4096)
def _split_prepared(url: str) -> tuple[str, int]:
    # Pure, and asked once per attempt: cached (an error is raised again, never cached).
    try:
        # The exact normalisation requests applies before sending (IDNA, quoting, ...).
        final = _prepared_url(url)
    except (requests.RequestException, ValueError, UnicodeError) as exc:
        raise MalformedURL(f"invalid URL: {exc}") from None
    parts = urlsplit(final)
    if parts.scheme.lower() not in ("http", "https"):
        raise MalformedURL(f"the URL must use http or https, not {parts.scheme or 'no scheme'!r}")
    try:
        port = parts.port
        u3_host = parse_url(final).host or ""
    except ValueError as exc:
        raise MalformedURL(f"invalid URL: {exc}") from None
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80
    host = unquote(parts.hostname or "")
    if not host:
        raise MalformedURL("the URL has no host")
    # The client connects to urlsplit's host; refuse URLs other parsers read differently.
    if unquote(u3_host.strip("[]")).lower() != host:
        raise MalformedURL(f"ambiguous host in URL ({host!r} vs {u3_host!r})")
    if not 0 < port < 65536:
        raise MalformedURL(f"invalid port {port}")
    return host, port


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """Parse an IPv4 literal the way ``inet_aton`` (and so getaddrinfo) does, or ``None``.

    Accepts 1 to 4 dot-separated parts in decimal, octal (leading 0) or hex (0x):
    ``0x7f.1``, ``127.1``, ``2130706433``, ``017700000001``. A host made only of such
    numbers that does not fit raises ``MalformedURL`` rather than reaching DNS.
    """
    parts = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not all(_NUMBER_PART.match(p) for p in parts):
        return None  # a name
    values = []
    for part in parts:
        if part.startswith("0x"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise MalformedURL(f"invalid IPv4 address {host!r}")
            values.append(int(part, 8))
        else:
            values.append(int(part))
    if len(values) > 4 or any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise MalformedURL(f"invalid IPv4 address {host!r}")
    number = values[-1]
    for i, value in enumerate(values[:-1]):
        number += value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


@lru_cache(maxsize=4096)
def _literal(host: str) -> IPAddress | None:
    """The address an IP-literal host denotes, or ``None`` for a name (pure: cached, asked per attempt)."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise MalformedURL(f"invalid IPv6 address {host!r}") from None
    if not _NAME.match(host) or len(host.rstrip(".")) > 253 or any(len(label) > 63 for label in host.split(".")):
        raise MalformedURL(f"invalid host name {host!r}")
    return _inet_aton(host)


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system's getaddrinfo (the resolver requests itself would use)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]  # str already for IPv4/IPv6; the stubs allow int


_resolver_override: Resolver | None = None
_override_lock = threading.Lock()


@contextmanager
def use_resolver(resolver: Resolver) -> Iterator[None]:
    """Process-wide: make calls without ``resolver=`` use ``resolver`` (tests, demos)."""
    global _resolver_override
    with _override_lock:
        previous, _resolver_override = _resolver_override, resolver
    try:
        yield
    finally:
        with _override_lock:
            _resolver_override = previous


def _resolve(host: str, port: int, resolver: Resolver | None) -> list[IPAddress]:
    resolve = resolver or _resolver_override or system_resolver
    try:
        answers = list(resolve(host, port))
    except OSError as exc:  # socket.gaierror is an OSError
        raise UnresolvableHost(host, str(exc) or type(exc).__name__) from None
    except UnicodeError as exc:  # the name cannot be encoded for DNS at all
        raise MalformedURL(f"invalid host name {host!r}: {exc}") from None
    if not answers:
        raise UnresolvableHost(host, "no addresses")
    return [
        a if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ipaddress.ip_address(a) for a in answers
    ]


def check_url(
    url: str,
    *,
    allow_private: bool = False,
    allowed_cidrs: Iterable[str] | str = (),
    resolver: Resolver | None = None,
) -> list[IPAddress]:
    """Vet ``url`` as a webhook destination and return the addresses to connect to.

    Every address the host resolves to is checked; one refused address refuses the
    URL. ``allow_private`` admits every refused class except unspecified, multicast
    and broadcast; ``allowed_cidrs`` admits addresses inside those networks. IP
    literals (including inet_aton forms such as ``0x7f.1``) and ``localhost`` names
    are judged without asking the resolver. IPv4-mapped answers come back as IPv4.

    Raises :class:`MalformedURL`, :class:`UnresolvableHost` or :class:`BlockedAddress`
    (all ``ValueError``).
    """
    networks = parse_cidrs(allowed_cidrs)
    host, port = _split(url)
    literal = _literal(host)
    if literal is not None:
        answers: list[IPAddress] = [literal]
    elif _LOCALHOST.match(host):
        # RFC 6761: localhost names are loopback whatever a resolver says.
        answers = [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    else:
        answers = _resolve(host, port, resolver)
    vetted: list[IPAddress] = []
    for answer in answers:
        destination, refused, detail = _analyse(answer)
        if refused is not None and not _admitted(destination, refused, networks, allow_private):
            note = _NOTES.get(_bare(destination))
            raise BlockedAddress(
                host,
                answer,
                refused,
                detail=detail + (f" ({note})" if note else ""),
                destination=destination,
                literal=literal is not None,
            )
        if destination not in vetted:
            vetted.append(destination)
    return vetted


def _admitted(address: IPAddress, refused: str, networks: Sequence[Any], allow_private: bool) -> bool:
    if refused in NEVER_ALLOWED:
        return False
    return allow_private or any(_bare(address) in network for network in networks)


# -- pinned transport ---------------------------------------------------------------------------

# Pools are keyed by (scheme, host, port, TLS settings, ..., pinned address).
_PinnedPoolKey = namedtuple("_PinnedPoolKey", PoolKey._fields + ("key_pinned_address",))  # type: ignore[misc]  # fields computed from urllib3's PoolKey at import


class UnpinnedRequest(TrakkrWebhooksError, RuntimeError):
    """A send was asked for without a vetted address, or through something other than a :class:`PinnedClient`."""


if TYPE_CHECKING:
    # The mixin only ever sits in front of urllib3's HTTPConnection (or its HTTPS subclass);
    # type-checking it as one gives it that class's attributes (port, timeout, ...).
    _ConnectionBase = HTTPConnection
else:
    _ConnectionBase = object


# The deadline (time.monotonic()) of the request being sent on this thread/context, if any.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("trakkr_deadline", default=None)


def _cut(timeout: Any, left: float) -> float:
    """A socket timeout no longer than ``left`` (nor than ``timeout`` when that is a number)."""
    return min(float(timeout), left) if isinstance(timeout, (int, float)) else left


def _past_deadline() -> TimeoutError:
    # socket.timeout is TimeoutError: urllib3 reports it as a timeout.
    return TimeoutError("the request's deadline passed")


class _DeadlineReader(io.RawIOBase):
    """A response's raw socket stream whose every read times out at the request's deadline.

    A per-read timeout alone lets a receiver sending one byte a second hold the request
    for ever; cutting each read's timeout to the time left bounds the total.
    """

    def __init__(self, raw: Any, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline
        self._cap = sock.gettimeout()  # the per-read timeout urllib3 set

    def readable(self) -> bool:
        """Always: this is a reading stream."""
        return True

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return int(self._raw.fileno())

    def readinto(self, buffer: Any) -> int | None:
        """Read into ``buffer``; ``TimeoutError`` once the deadline has passed."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _past_deadline()
        try:
            self._sock.settimeout(_cut(self._cap, left))
        except OSError:  # closed meanwhile: the read below reports it
            pass
        count: int | None = self._raw.readinto(buffer)
        return count

    def close(self) -> None:
        """Close the socket stream (the socket itself closes with its last user)."""
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response, reading through a :class:`_DeadlineReader` when a deadline is set."""

    def __init__(self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None) -> None:
        super().__init__(sock, debuglevel, method, url)
        deadline = _DEADLINE.get()
        if deadline is not None:
            # detach(), not a new makefile(): nothing is read yet, and the socket's
            # reference count of open files stays right.
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline))


class _PinnedConnectionMixin(_ConnectionBase):
    """Connect the socket to ``pinned_address``; everything else keeps the hostname.

    Under a deadline (:data:`_DEADLINE`), connecting, the TLS handshake, each send and
    each read of the answer time out at it.
    """

    response_class = _DeadlineResponse

    def __init__(self, *args: Any, pinned_address: str, **kwargs: Any) -> None:
        self.pinned_address = pinned_address
        super().__init__(*args, **kwargs)

    def send(self, data: Any) -> None:
        """Send ``data``, timing out at the deadline (a receiver that reads slowly cannot hold us)."""
        deadline = _DEADLINE.get()
        if deadline is not None and self.sock is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _past_deadline()
            self.sock.settimeout(_cut(self.timeout, left))
        super().send(data)

    def _new_conn(self) -> socket.socket:
        # Same as urllib3's, except the target: a numeric address, so no DNS query happens.
        timeout: Any = self.timeout
        deadline = _DEADLINE.get()
        if deadline is not None:
            timeout = _cut(timeout, max(deadline - time.monotonic(), 0.001))
        try:
            sock = _u3_connection.create_connection(
                (self.pinned_address, self.port),
                timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
            if deadline is not None:  # the TLS handshake that follows uses this timeout as its total
                sock.settimeout(_cut(self.timeout, max(deadline - time.monotonic(), 0.001)))
            return sock
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                f"Connection to {self.host} ({self.pinned_address}) timed out. (connect timeout={self.timeout})",
            ) from exc
        except OSError as exc:
            raise NewConnectionError(
                self, f"Failed to establish a new connection to {self.pinned_address}: {exc}"
            ) from exc


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedPoolManager(PoolManager):
    """A PoolManager whose pools are per (host, port, pinned address): reuse never crosses addresses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}
        key_fn = partial(_default_key_normalizer, cast("type[PoolKey]", _PinnedPoolKey))  # PoolKey + one field
        self.key_fn_by_scheme = {"http": key_fn, "https": key_fn}


class Outgoing(NamedTuple):
    """One request to send: ``body`` is the exact bytes, ``headers`` as the sender built them."""

    method: str
    url: str
    body: bytes = b""
    headers: Mapping[str, str] = {}


class Target(NamedTuple):
    """Where a URL sends: what the pool is keyed on, and the request line's target."""

    scheme: str
    host: str
    port: int | None
    path: str


@lru_cache(maxsize=4096)
def target(url: str) -> Target:
    """The scheme, host, port and request target ``url`` is sent to; ``MalformedURL`` if it cannot be."""
    try:
        final = _prepared_url(url)
        parts = urlsplit(final)
        port = parts.port
    except (requests.RequestException, ValueError, UnicodeError) as exc:
        raise MalformedURL(f"invalid URL: {exc}") from None
    if parts.username is not None or parts.password is not None:
        # Never sent as credentials: the API refuses them at save time (use auth_type "basic").
        raise MalformedURL("the URL must not contain credentials (user:password@)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme.lower(), parts.hostname or "", port, path)


#: The headers ``requests`` adds to every request; kept so the wire is what it always was.
_DEFAULT_HEADERS: tuple[tuple[str, str], ...] = tuple(requests.utils.default_headers().items())


def wire_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` over the defaults, names matched in any letter case; ``InvalidHeader`` for a bad one.

    The same merge and checks ``requests`` applied: a value with a line break or leading
    whitespace never reaches the socket.
    """
    merged: dict[str, tuple[str, str]] = {name.lower(): (name, value) for name, value in _DEFAULT_HEADERS}
    for name, value in headers.items():
        requests.utils.check_header_validity((name, value))
        merged[name.lower()] = (name, value)
    return dict(merged.values())


class PinnedClient:
    """Sends requests to an address it is given per request, never to what a name resolves to later.

    ``client.send(outgoing, addresses=[...], timeout=...)`` connects to ``addresses[0]``, and
    to the next one only if the previous refused the connection outright (nothing was sent).
    The ``Host`` header, SNI and certificate checks use the URL's hostname. Pools are keyed
    by (host, port, TLS settings, address), so keep-alive connections are reused across
    deliveries to the same vetted address and never across addresses. No proxy, no cookies,
    never a redirect (the 3xx answer is the result), no retry. Without ``addresses`` it
    raises :class:`UnpinnedRequest`: it fails closed. Thread-safe: keep one per worker
    process.

    Built on urllib3's pools directly: ``requests``' session layer (merging settings,
    cookie jars, hooks, response objects) cost as much CPU per delivery as the HTTP exchange.
    """

    def __init__(self, *, pool_connections: int = 64, pool_maxsize: int = 8) -> None:
        self.pools = _PinnedPoolManager(num_pools=pool_connections, maxsize=pool_maxsize, block=False)
        self._verified_context: ssl.SSLContext | None = None
        self._context_lock = threading.Lock()

    def send(
        self,
        outgoing: Outgoing,
        *,
        addresses: Sequence[str | IPAddress],
        timeout: float,
        verify: bool | str = True,
        deadline: float | None = None,
    ) -> BaseHTTPResponse:
        """Send ``outgoing`` to the first reachable of ``addresses``; the answer's body is not read yet.

        ``deadline`` (a :func:`time.monotonic` value) bounds the whole request, the later reads
        of the body included (see the module docstring). Read the body (``stream``/``read``)
        and ``close()`` the answer; a body read to its end returns the connection to its pool.
        Raises urllib3's errors: ``NewConnectionError``, ``ConnectTimeoutError``,
        ``ReadTimeoutError``, ``ProtocolError``, ``SSLError``.
        """
        if not addresses:
            raise UnpinnedRequest(f"refusing to send to {outgoing.url!r} without a vetted address (use ssrf.safe_send)")
        where = target(outgoing.url)
        if where.scheme not in ("http", "https"):
            raise MalformedURL(f"the URL must use http or https, not {where.scheme or 'no scheme'!r}")
        headers = wire_headers(outgoing.headers)
        tls = self._tls(verify) if where.scheme == "https" else {}
        deadline_token = _DEADLINE.set(deadline)
        try:
            for index, address in enumerate(addresses):
                pool = self.pools.connection_from_host(
                    where.host, where.port, where.scheme, pool_kwargs={**tls, "pinned_address": str(address)}
                )
                try:
                    response: BaseHTTPResponse = pool.urlopen(
                        outgoing.method,
                        where.path,
                        body=outgoing.body,
                        headers=headers,
                        retries=False,
                        redirect=False,
                        assert_same_host=False,
                        timeout=Timeout(connect=timeout, read=timeout),
                        preload_content=False,
                        decode_content=True,
                    )
                    return response
                except NewConnectionError:
                    # Refused before anything was sent: the next vetted address may answer. A
                    # connect timeout is not retried elsewhere (it spent the time budget).
                    if index == len(addresses) - 1:
                        raise
        finally:
            _DEADLINE.reset(deadline_token)
        raise AssertionError("unreachable")  # pragma: no cover

    def _tls(self, verify: bool | str) -> dict[str, Any]:
        # What requests passed to urllib3 for each ``verify`` (True, False or a CA bundle file);
        # one CA context for the default, as loading the bundle per new connection costs milliseconds.
        if verify is False:
            return {"cert_reqs": "CERT_NONE"}
        if isinstance(verify, str):  # a CA bundle file
            return {"cert_reqs": "CERT_REQUIRED", "ca_certs": verify}
        with self._context_lock:
            if self._verified_context is None:
                context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
                context.load_verify_locations(requests.utils.DEFAULT_CA_BUNDLE_PATH)
                self._verified_context = context
        return {"cert_reqs": "CERT_REQUIRED", "ssl_context": self._verified_context}

    def close(self) -> None:
        """Close every pooled connection."""
        self.pools.clear()

    def __enter__(self) -> PinnedClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def pinned_send(
    client: PinnedClient,
    outgoing: Outgoing,
    addresses: Sequence[str | IPAddress],
    *,
    timeout: float,
    verify: bool | str = True,
    deadline: float | None = None,
) -> BaseHTTPResponse:
    """Send ``outgoing`` through ``client`` to ``addresses`` (which must come from :func:`check_url`).

    Prefer :func:`safe_send`, which vets and sends in one call.
    """
    if not isinstance(client, PinnedClient):
        raise UnpinnedRequest("only a ssrf.PinnedClient sends webhook requests")
    return client.send(outgoing, addresses=list(addresses), timeout=timeout, verify=verify, deadline=deadline)


def safe_send(
    client: PinnedClient,
    outgoing: Outgoing,
    *,
    timeout: float,
    allow_private: bool = False,
    allowed_cidrs: Iterable[str] | str = (),
    resolver: Resolver | None = None,
    verify: bool | str = True,
    deadline: float | None = None,
) -> BaseHTTPResponse:
    """Vet ``outgoing.url`` with :func:`check_url`, then send it pinned to the vetted address.

    Raises the :func:`check_url` errors before any connection is made, and urllib3's errors
    for the attempt itself (:meth:`PinnedClient.send`). ``deadline`` (a :func:`time.monotonic`
    value) bounds the whole request, reading the body included.
    """
    addresses = check_url(outgoing.url, allow_private=allow_private, allowed_cidrs=allowed_cidrs, resolver=resolver)
    return pinned_send(client, outgoing, addresses, timeout=timeout, verify=verify, deadline=deadline)
