"""SSRF protection: which network targets a webhook delivery may reach.

This module owns the rules that keep hookline from being used to reach internal services:

* ``parse_host_ip`` turns any spelling of an IP literal (decimal ``2130706433``, hex
  ``0x7f000001`` / ``0x7f.0.0.1``, octal ``0177.0.0.1``, short ``127.1``, bracketed IPv6,
  percent-encoded or full-width forms) into an address, the way ``inet_aton`` and browsers do;
* ``TargetPolicy`` holds the explicit block list (each network has a human name), unwraps IPv4
  addresses embedded in IPv6 (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) and applies
  the operator's allow-list and development-mode loopback switch;
* ``TargetPolicy.check_host`` is the config-save-time check (resolves names, rejects if any
  address is blocked);
* ``TargetPolicy.check_url_target`` / ``TargetPolicy.client_middleware`` are the delivery-time
  check for literal-IP URLs, which aiohttp connects to without asking the resolver;
* ``PinningResolver`` is the delivery-time check for host names: an aiohttp resolver that drops
  blocked addresses from each answer, so the connection goes only to checked addresses (this
  defeats DNS rebinding between config time and delivery time).

The module does no I/O of its own except through the resolvers it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import unicodedata
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

import aiohttp
import aiohttp.abc
from aiohttp.abc import ResolveResult
from yarl import URL

__all__ = [
    "BlockedTarget",
    "IPAddress",
    "IPNetwork",
    "PinningResolver",
    "Resolve",
    "TargetPolicy",
    "UnresolvableHost",
    "parse_host_ip",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve: TypeAlias = Callable[[str], Awaitable[Iterable[str]]]
"""An async function mapping a host name to the address strings it resolves to."""


class BlockedTarget(Exception):
    """A target address or host is not allowed.

    ``str(exc)`` is the human message, e.g. ``"blocked: 10.0.0.5 is a private address"``;
    ``exc.reason`` is the same text without the ``"blocked: "`` prefix.
    """

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(f"blocked: {reason}")
        self.reason = reason


class UnresolvableHost(Exception):
    """A host name could not be resolved, so it cannot be checked (config-save time)."""


# --------------------------------------------------------------------------------------------
# Block list
# --------------------------------------------------------------------------------------------

_LOOPBACK = "a loopback address"
_PRIVATE = "a private address"
_LINK_LOCAL = "a link-local address"
_DOCUMENTATION = "a documentation address"

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# First match wins, so more specific networks come first.
_IPV4_BLOCKS: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "an unspecified address"),
    (_V4("0.0.0.0/8"), "a 'this network' (0.0.0.0/8) address"),
    (_V4("10.0.0.0/8"), _PRIVATE),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT (CGNAT) address"),
    (_V4("127.0.0.0/8"), _LOOPBACK),
    (_V4("169.254.0.0/16"), _LINK_LOCAL),
    (_V4("172.16.0.0/12"), _PRIVATE),
    (_V4("192.0.0.0/24"), "an IETF protocol assignment address"),
    (_V4("192.0.2.0/24"), _DOCUMENTATION),
    (_V4("192.88.99.0/24"), "a 6to4 relay anycast address"),
    (_V4("192.168.0.0/16"), _PRIVATE),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("198.51.100.0/24"), _DOCUMENTATION),
    (_V4("203.0.113.0/24"), _DOCUMENTATION),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("255.255.255.255/32"), "a broadcast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
)

_IPV6_BLOCKS: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "an unspecified address"),
    (_V6("::1/128"), _LOOPBACK),
    (_V6("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_V6("100::/64"), "a discard-only address"),
    (_V6("2001:2::/48"), "a benchmarking address"),
    (_V6("2001:10::/28"), "an ORCHID address"),
    (_V6("2001:20::/28"), "an ORCHIDv2 address"),
    (_V6("2001:db8::/32"), _DOCUMENTATION),
    (_V6("2001::/23"), "an IETF protocol assignment address"),
    (_V6("3fff::/20"), _DOCUMENTATION),
    (_V6("5f00::/16"), "an SRv6 SID address"),
    (_V6("fc00::/7"), "a unique local address (ULA)"),
    (_V6("fe80::/10"), _LINK_LOCAL),
    (_V6("fec0::/10"), "a site-local address"),
    (_V6("ff00::/8"), "a multicast address"),
)

_GLOBAL_UNICAST_V6 = _V6("2000::/3")
_MAPPED = _V6("::ffff:0:0/96")
_COMPAT = _V6("::/96")
_NAT64 = _V6("64:ff9b::/96")
_SIXTOFOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")
_LOOPBACK_V4 = _V4("127.0.0.0/8")
_LOOPBACK_MAPPED = _V6("::ffff:127.0.0.0/104")


def _ipv4_rule(ip: ipaddress.IPv4Address) -> str | None:
    """The name of the block rule an IPv4 address falls under, or None."""
    for network, name in _IPV4_BLOCKS:
        if ip in network:
            return name
    if not ip.is_global:  # defence in depth, should be covered above
        return "a non-global special-purpose address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]] | None:
    """The kind of IPv4 embedding ("" for IPv4-mapped) and the embedded IPv4 addresses."""
    if ip in _MAPPED:
        mapped = ip.ipv4_mapped
        assert mapped is not None
        return "", [mapped]
    if ip in _COMPAT:  # :: and ::1 are handled before this is consulted
        return "IPv4-compatible", [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in _NAT64:
        return "NAT64", [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in _SIXTOFOUR:
        sixtofour = ip.sixtofour
        assert sixtofour is not None
        return "6to4", [sixtofour]
    if ip in _TEREDO:
        teredo = ip.teredo
        assert teredo is not None
        server, client = teredo
        return "Teredo", [client, server]
    return None


def _display(ip: IPAddress) -> str:
    """Human spelling of an address (IPv4-mapped addresses shown with a dotted quad)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _block_reason(ip: IPAddress) -> str | None:
    """Why the block list forbids ``ip`` (ignoring any allow-list), or None."""
    if isinstance(ip, ipaddress.IPv4Address):
        rule = _ipv4_rule(ip)
        return None if rule is None else f"{ip} is {rule}"
    shown = _display(ip)
    if ip == ipaddress.IPv6Address("::"):
        return f"{shown} is an unspecified address"
    if ip == ipaddress.IPv6Address("::1"):
        return f"{shown} is {_LOOPBACK}"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        kind, inner = embedded
        label = f"{shown} ({kind})" if kind else shown
        for v4 in inner:
            rule = _ipv4_rule(v4)
            if rule is not None:
                return f"{label} embeds {v4}, {rule}"
        if ip in _COMPAT:
            return f"{shown} is a deprecated IPv4-compatible address"
        return None
    for network, name in _IPV6_BLOCKS:
        if ip in network:
            return f"{shown} is {name}"
    if ip not in _GLOBAL_UNICAST_V6:
        return f"{shown} is a reserved address (outside global unicast 2000::/3)"
    if not ip.is_global:  # defence in depth, should be covered above
        return f"{shown} is a non-global special-purpose address"
    return None


def _is_loopback(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _LOOPBACK_V4
    return ip == ipaddress.IPv6Address("::1") or ip in _LOOPBACK_MAPPED


def _without_scope(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        return ipaddress.IPv6Address(int(ip))
    return ip


# --------------------------------------------------------------------------------------------
# Parsing host strings
# --------------------------------------------------------------------------------------------

# Full stops that UTS #46 / browsers map to "." before parsing a host.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_HEX_DIGITS = frozenset("0123456789abcdef")
_OCT_DIGITS = frozenset("01234567")
_DEC_DIGITS = frozenset("0123456789")


def _normalize_host_text(host: str) -> tuple[str, bool]:
    """Strip brackets, percent-decode, NFKC-normalize and lower-case a host string.

    Returns the text and whether it was bracketed (an IPv6 literal).
    """
    text = host.strip()
    bracketed = len(text) >= 2 and text[0] == "[" and text[-1] == "]"
    if bracketed:
        text = text[1:-1]
    if "%" in text:
        text = urllib.parse.unquote(text)
    text = unicodedata.normalize("NFKC", text).translate(_DOTS).lower()
    return text, bracketed


def _parse_ipv4_number(part: str) -> int | None:
    """One part of an IPv4 spelling, WHATWG/inet_aton style: 0x.. hex, 0.. octal, decimal."""
    if not part:
        return None
    if part.startswith("0x"):
        digits, base, allowed = part[2:], 16, _HEX_DIGITS
        if not digits:
            return 0
    elif len(part) > 1 and part[0] == "0":
        digits, base, allowed = part[1:], 8, _OCT_DIGITS
    else:
        digits, base, allowed = part, 10, _DEC_DIGITS
    if not set(digits) <= allowed:
        return None
    return int(digits, base)


def _parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    if len(text) > 1 and text.endswith("."):
        text = text[:-1]  # browsers drop one trailing empty label
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        number = _parse_ipv4_number(part)
        if number is None:
            return None
        numbers.append(number)
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ends_in_number(text: str) -> bool:
    """WHATWG's "ends in a number": such a host must be an IPv4 address or is invalid."""
    if len(text) > 1 and text.endswith("."):
        text = text[:-1]
    last = text.rsplit(".", 1)[-1]
    if last and set(last) <= _DEC_DIGITS:
        return True
    return last.startswith("0x") and set(last[2:]) <= _HEX_DIGITS


def parse_host_ip(host: str) -> IPAddress | None:
    """The IP a host string denotes, or None for a real host name.

    Accepts unusual spellings the way ``inet_aton`` and browsers (WHATWG URL) do: decimal
    (``2130706433``), hex (``0x7f000001``, ``0x7f.0.0.1``), octal (``0177.0.0.1``), short forms
    (``127.1``, ``10.1``), a trailing dot, percent-encoding, full-width digits and dots, and
    ``[v6]`` brackets. An IPv6 zone (``fe80::1%eth0``) is dropped.
    """
    text, bracketed = _normalize_host_text(host)
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    if bracketed:
        return None
    return _parse_ipv4_loose(text)


def _invalid_ip_spelling(host: str) -> str | None:
    """A reason when ``host`` is not an IP but looks like one (so is not a usable name)."""
    text, bracketed = _normalize_host_text(host)
    if bracketed or ":" in text:
        return f"{host!r} is not a valid IPv6 address"
    if _ends_in_number(text):
        return f"{host!r} is not a valid IPv4 address"
    return None


def _normalize_host_name(host: str) -> str:
    """Canonical form of a host name for allow-list matching (lower case, no final dot, IDNA)."""
    name = host.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        with contextlib.suppress(UnicodeError):
            name = name.encode("idna").decode("ascii")
    return name


def _is_valid_host_name(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    allowed = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
    for label in name.split("."):
        if not 1 <= len(label) <= 63 or not set(label) <= allowed:
            return False
        if label.startswith("-") or label.endswith("-"):
            return False
    return True


def _parse_resolved(address: str) -> IPAddress | None:
    """An address string as returned by a resolver (may carry an IPv6 zone)."""
    try:
        return _without_scope(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return None


async def _getaddrinfo_resolve(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetPolicy:
    """Which targets deliveries may reach.

    * ``allow_loopback`` (development mode) allows 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104
      only -- not private ranges, not 0.0.0.0.
    * An address inside ``allow_networks`` is allowed even if otherwise blocked. For
      IPv4-mapped/-compatible addresses the embedded IPv4 is matched too (same destination).
    * A host name in ``allow_hosts`` (lower case, no trailing dot, exact match) is allowed
      whatever it resolves to.
    """

    allow_loopback: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        normalized = frozenset(_normalize_host_name(h) for h in self.allow_hosts)
        if normalized != self.allow_hosts:
            object.__setattr__(self, "allow_hosts", normalized)

    @classmethod
    def from_settings(cls, allow_loopback: bool, allow_list: Iterable[str]) -> TargetPolicy:
        """Build a policy from settings.

        ``allow_list`` entries are CIDRs (``10.1.0.0/16``), single IPs (``10.1.2.3``,
        ``[fd00::1]``) or exact host names (``hooks.internal``); blank entries are ignored.
        Raises ValueError naming the entry when one is malformed.
        """
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in allow_list:
            entry = raw.strip()
            if not entry:
                continue
            if "://" in entry:
                raise ValueError(
                    f"allow-list entry {raw!r} looks like a URL; give a host name, an IP or a CIDR"
                )
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry.strip("[]"), strict=True))
                except ValueError as exc:
                    raise ValueError(
                        f"allow-list entry {raw!r} is not a valid CIDR: {exc}"
                    ) from exc
                continue
            ip = parse_host_ip(entry)
            if ip is not None:
                networks.append(ipaddress.ip_network(_without_scope(ip)))
                continue
            invalid = _invalid_ip_spelling(entry)
            if invalid is not None:
                raise ValueError(f"allow-list entry {raw!r}: {invalid}")
            name = _normalize_host_name(entry)
            if not _is_valid_host_name(name):
                raise ValueError(
                    f"allow-list entry {raw!r} is neither an IP, a CIDR nor a host name "
                    "(wildcards, schemes, ports and paths are not supported)"
                )
            hosts.add(name)
        return cls(
            allow_loopback=allow_loopback,
            allow_networks=tuple(networks),
            allow_hosts=frozenset(hosts),
        )

    def _allowed_by_operator(self, ip: IPAddress) -> bool:
        if any(ip in network for network in self.allow_networks):
            return True
        if self.allow_loopback and _is_loopback(ip):
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip in _MAPPED:
            mapped = ip.ipv4_mapped
            assert mapped is not None
            return any(mapped in network for network in self.allow_networks)
        if isinstance(ip, ipaddress.IPv6Address) and ip in _COMPAT and int(ip) > 1:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            return any(embedded in network for network in self.allow_networks)
        return False

    def ip_block_reason(self, ip: IPAddress | str) -> str | None:
        """None when ``ip`` may be reached, else why not (e.g. "10.0.0.5 is a private address").

        A string is parsed with ``parse_host_ip``; ValueError if it is not an IP.
        """
        if isinstance(ip, str):
            parsed = parse_host_ip(ip)
            if parsed is None:
                raise ValueError(f"{ip!r} is not an IP address")
            ip = parsed
        ip = _without_scope(ip)
        if self._allowed_by_operator(ip):
            return None
        return _block_reason(ip)

    def check_ip(self, ip: IPAddress | str) -> None:
        """Raise BlockedTarget when ``ip`` may not be reached."""
        reason = self.ip_block_reason(ip)
        if reason is not None:
            raise BlockedTarget(reason)

    def host_allowed_by_name(self, host: str) -> bool:
        """Whether ``host`` is a name on the operator allow-list."""
        return _normalize_host_name(host) in self.allow_hosts

    async def check_host(self, host: str, resolve: Resolve | None = None) -> None:
        """Config-save-time check of a target host.

        Literal IPs (any spelling) are checked directly; names in ``allow_hosts`` pass; other
        names are resolved (default: ``loop.getaddrinfo``) and rejected with BlockedTarget if
        ANY resolved address is blocked. Raises UnresolvableHost when resolution fails.
        """
        ip = parse_host_ip(host)
        if ip is not None:
            self.check_ip(ip)
            return
        invalid = _invalid_ip_spelling(host)
        if invalid is not None:
            raise BlockedTarget(invalid)
        name = _normalize_host_name(host)
        if name in self.allow_hosts:
            return
        resolver = resolve if resolve is not None else _getaddrinfo_resolve
        try:
            addresses = list(await resolver(name))
        except (OSError, UnicodeError) as exc:
            raise UnresolvableHost(f"cannot resolve host {host!r}: {exc}") from exc
        if not addresses:
            raise UnresolvableHost(f"cannot resolve host {host!r}: no addresses")
        for address in addresses:
            resolved = _parse_resolved(address)
            if resolved is None:
                raise BlockedTarget(f"{host} resolves to {address!r}, which is not an IP address")
            reason = self.ip_block_reason(resolved)
            if reason is not None:
                raise BlockedTarget(f"{host} resolves to a blocked address: {reason}")

    def check_url_target(self, url: str | URL) -> None:
        """Delivery-time check of a URL whose host is a literal IP (any spelling).

        aiohttp connects to canonical IP literals (and anything containing ":") without
        consulting the resolver, so call this before every attempt (or install
        ``client_middleware()``, which also covers redirects). Host names are left to
        ``PinningResolver``, except names in ``allow_hosts`` which always pass. Raises
        BlockedTarget for a blocked literal, a malformed IP-like host, a missing host or a
        scheme other than http/https (and yarl's ValueError for an unparseable URL).
        """
        parsed = url if isinstance(url, URL) else URL(url)
        if parsed.scheme not in ("http", "https"):
            raise BlockedTarget(f"scheme {parsed.scheme!r} is not allowed (only http, https)")
        host = parsed.raw_host
        if not host:
            raise BlockedTarget(f"URL {str(parsed)!r} has no host")
        ip = parse_host_ip(host)
        if ip is not None:
            self.check_ip(ip)
            return
        if self.host_allowed_by_name(host):
            return
        invalid = _invalid_ip_spelling(host)
        if invalid is not None:
            raise BlockedTarget(invalid)

    def client_middleware(self) -> aiohttp.ClientMiddlewareType:
        """An aiohttp client middleware running ``check_url_target`` on every request.

        Use ``ClientSession(middlewares=(policy.client_middleware(),))``; it runs for each
        redirect hop too, so a redirect to a literal internal IP is refused.
        """

        async def ssrf_middleware(
            request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
        ) -> aiohttp.ClientResponse:
            self.check_url_target(request.url)
            return await handler(request)

        return ssrf_middleware


# --------------------------------------------------------------------------------------------
# aiohttp resolver
# --------------------------------------------------------------------------------------------


class PinningResolver(aiohttp.abc.AbstractResolver):
    """An aiohttp resolver that only ever hands the connector checked addresses.

    Use as ``aiohttp.TCPConnector(resolver=PinningResolver(policy))``.

    * A host that is an IP in an unusual spelling (``0x7f000001``, ``0x7f.1``...) is parsed
      here, checked, and pinned to that address; ``inner`` is not asked.
    * A host in ``policy.allow_hosts`` is resolved by ``inner`` and returned unfiltered.
    * Any other name is resolved by ``inner`` (default: aiohttp's ``DefaultResolver``) and every
      blocked address is dropped; the connector connects only to the returned entries, so the
      connection goes to a checked address (no DNS-rebinding window). If no address is left,
      ``BlockedTarget`` is raised.

    What the caller of ``session.post()`` receives: aiohttp's connector wraps only ``OSError``
    from a resolver (into ``ClientConnectorDNSError``); other exceptions propagate unchanged.
    So the caller gets our ``BlockedTarget`` itself; ``str(exc)`` is ``"blocked: <reason>"`` and
    ``exc.reason`` the bare reason. DNS failures of ``inner`` still arrive as
    ``aiohttp.ClientConnectorDNSError``.

    aiohttp never calls a resolver for canonical IPv4 literals or hosts containing ":"; use
    ``TargetPolicy.check_url_target`` / ``client_middleware`` for those. Don't route deliveries
    through a proxy: the resolver then only sees the proxy's host.

    ``close()`` closes ``inner`` only when this resolver created it.
    """

    def __init__(
        self, policy: TargetPolicy, inner: aiohttp.abc.AbstractResolver | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner
        self._owns_inner = inner is None

    def _get_inner(self) -> aiohttp.abc.AbstractResolver:
        if self._inner is None:
            self._inner = aiohttp.DefaultResolver()
        return self._inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        ip = parse_host_ip(host)
        if ip is not None:
            ip = _without_scope(ip)
            self._policy.check_ip(ip)
            ip_family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            if family not in (socket.AF_UNSPEC, ip_family):
                raise OSError(f"{host} is not an address of the requested family")
            return [
                ResolveResult(
                    hostname=host,
                    host=str(ip),
                    port=port,
                    family=ip_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            ]
        invalid = _invalid_ip_spelling(host)
        if invalid is not None:
            raise BlockedTarget(invalid)
        results = await self._get_inner().resolve(host, port, family)
        if self._policy.host_allowed_by_name(host):
            return results
        kept: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            resolved = _parse_resolved(result["host"])
            if resolved is None:
                reasons.append(f"{result['host']!r} is not an IP address")
                continue
            reason = self._policy.ip_block_reason(resolved)
            if reason is None:
                kept.append(result)
            else:
                reasons.append(reason)
        if not kept and reasons:
            raise BlockedTarget(f"{host} resolves only to blocked addresses: {'; '.join(reasons)}")
        return kept

    async def close(self) -> None:
        if self._owns_inner and self._inner is not None:
            await self._inner.close()
