"""Tests for hookline.ssrf: block list, IP spellings, allow-lists, resolver pinning.

No test resolves an external name: resolvers are stubs, and the only real traffic goes to an
aiohttp server bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from hookline.ssrf import (
    BlockedTarget,
    PinningResolver,
    TargetPolicy,
    UnresolvableHost,
    parse_host_ip,
)


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32) for a server and an (obfuscated) client IPv4."""
    value = (0x2001_0000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= ~int(ipaddress.IPv4Address(client)) & 0xFFFF_FFFF
    return str(ipaddress.IPv6Address(value))


# --------------------------------------------------------------------------------------------
# Block matrix
# --------------------------------------------------------------------------------------------

# (rule fragment that must appear in the reason, addresses written any way an attacker might)
BLOCKED: list[tuple[str, list[str]]] = [
    (
        "loopback",
        [
            "127.0.0.1",
            "127.255.255.254",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0X7F000001",
            "0x7f.0.0.1",
            "0x7f.1",
            "0177.0.0.1",
            "0177.0.0.01",
            "017700000001",
            "127.000.000.001",
            "127.0.0.1.",
            "%31%32%37.0.0.1",
            "\uff11\uff12\uff17.0.0.1",  # full-width digits
            "127\u30020\u30020\u30021",  # ideographic full stops
            "::1",
            "[::1]",
            "0:0:0:0:0:0:0:1",
        ],
    ),
    (
        "private",
        [
            "10.0.0.5",
            "10.1",
            "012.0.0.1",
            "0xa.0.0.1",
            "167772161",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "0xc0a80101",
            "192.168.257",
        ],
    ),
    (
        "link-local",
        [
            "169.254.169.254",
            "169.254.0.1",
            "0xa9fea9fe",
            "2852039166",
            "0251.0376.0251.0376",
            "169.254.43518",
            "fe80::1",
            "fe80::1%eth0",
            "[fe80::1%25eth0]",
            "febf::1",
        ],
    ),
    ("CGNAT", ["100.64.0.1", "100.127.255.254", "1681915905"]),
    ("multicast", ["224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1"]),
    ("reserved", ["240.0.0.1", "250.1.2.3", "4000::1", "::2:0:0:1", "e000::1", "1::1"]),
    ("unspecified", ["0.0.0.0", "0", "0x0", "::", "[::]"]),
    ("broadcast", ["255.255.255.255", "4294967295", "0xffffffff"]),
    ("this network", ["0.1.2.3", "0.0.0.1"]),
    ("documentation", ["192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1", "3fff::1"]),
    ("benchmarking", ["198.18.0.1", "198.19.255.255", "2001:2::1"]),
    ("unique local", ["fc00::1", "fd00::1", "fdff:ffff::1"]),
    ("site-local", ["fec0::1", "feff::1"]),
    ("discard-only", ["100::1"]),
    ("IETF protocol assignment", ["192.0.0.1", "2001:1::1"]),
    ("local-use NAT64", ["64:ff9b:1::a00:5", "64:ff9b:1:ffff::1"]),
    # IPv4 embedded in IPv6: the reason names the embedded address and its rule.
    (
        "embeds 127.0.0.1, a loopback",
        [
            "::ffff:127.0.0.1",
            "[::ffff:7f00:1]",
            "0:0:0:0:0:ffff:7f00:1",
            "::127.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2002:7f00:1:1::1",
            teredo("8.8.8.8", "127.0.0.1"),
        ],
    ),
    (
        "embeds 169.254.169.254, a link-local",
        [
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "64:ff9b::169.254.169.254",
            "2002:a9fe:a9fe::1",
            teredo("8.8.8.8", "169.254.169.254"),
        ],
    ),
    (
        "embeds 10.0.0.5, a private",
        [
            "::ffff:10.0.0.5",
            "::10.0.0.5",
            "64:ff9b::a00:5",
            "2002:a00:5::",
            "2002:0a00:0005::1",
            teredo("8.8.8.8", "10.0.0.5"),
            teredo("10.0.0.5", "8.8.8.8"),
        ],
    ),
    ("embeds 100.64.0.1, a carrier-grade NAT", ["::ffff:100.64.0.1", "64:ff9b::6440:1"]),
    ("embeds 0.0.0.0, an unspecified", ["::ffff:0.0.0.0", "64:ff9b::", "2002::"]),
    ("embeds 224.0.0.1, a multicast", ["::ffff:224.0.0.1", "2002:e000:1::"]),
    ("embeds 255.255.255.255, a broadcast", ["::ffff:255.255.255.255"]),
    ("(NAT64) embeds", ["64:ff9b::10.0.0.1"]),
    ("(6to4) embeds", ["2002:c0a8:101::1"]),
    ("(Teredo) embeds", [teredo("65.54.227.120", "192.168.0.1")]),
    ("(IPv4-compatible) embeds", ["::192.168.0.1"]),
    ("deprecated IPv4-compatible", ["::8.8.8.8", "::93.184.216.34"]),
]

BLOCKED_CASES = [(rule, host) for rule, hosts in BLOCKED for host in hosts]

ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "0x5db8d822",  # 93.184.216.34 in hex: unusual spellings of public IPs are fine
    "1572395042",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.169.0.1",
    "223.255.255.255",
    "2606:4700::1111",
    "[2606:4700:4700::1111]",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",  # IPv4-mapped public
    "64:ff9b::8.8.8.8",  # NAT64 of a public address
    "2002:5db8:d822::1",  # 6to4 of a public address
    teredo("65.54.227.120", "93.184.216.34"),
]


@pytest.mark.parametrize(("rule", "host"), BLOCKED_CASES)
def test_blocked_matrix(rule: str, host: str) -> None:
    policy = TargetPolicy()
    reason = policy.ip_block_reason(host)
    assert reason is not None, f"{host} should be blocked"
    assert rule in reason
    with pytest.raises(BlockedTarget) as info:
        policy.check_ip(host)
    assert str(info.value) == f"blocked: {reason}"
    assert info.value.reason == reason


@pytest.mark.parametrize("host", ALLOWED)
def test_public_addresses_allowed(host: str) -> None:
    policy = TargetPolicy()
    assert policy.ip_block_reason(host) is None
    policy.check_ip(host)


def test_reason_texts() -> None:
    policy = TargetPolicy()
    assert policy.ip_block_reason("10.0.0.5") == "10.0.0.5 is a private address"
    assert policy.ip_block_reason("127.0.0.1") == "127.0.0.1 is a loopback address"
    assert policy.ip_block_reason("::ffff:169.254.169.254") == (
        "::ffff:169.254.169.254 embeds 169.254.169.254, a link-local address"
    )
    # Unusual spellings are reported as the address they denote.
    assert policy.ip_block_reason("0x7f.1") == "127.0.0.1 is a loopback address"
    with pytest.raises(BlockedTarget, match=r"^blocked: 10\.0\.0\.5 is a private address$"):
        policy.check_ip(ipaddress.IPv4Address("10.0.0.5"))


def test_ip_objects_accepted() -> None:
    policy = TargetPolicy()
    assert policy.ip_block_reason(ipaddress.IPv6Address("::ffff:7f00:1")) is not None
    assert policy.ip_block_reason(ipaddress.IPv6Address("fe80::1%eth0")) is not None
    assert policy.ip_block_reason(ipaddress.IPv4Address("8.8.8.8")) is None
    with pytest.raises(ValueError, match="not an IP address"):
        policy.ip_block_reason("example.com")


def test_python_ipaddress_gaps_are_covered() -> None:
    """The gaps in Python's ipaddress that motivate the explicit block list."""
    assert ipaddress.ip_address("::ffff:127.0.0.1").is_loopback is False
    assert ipaddress.ip_address("2002:7f00:1::").is_global is True
    policy = TargetPolicy()
    assert policy.ip_block_reason("::ffff:127.0.0.1") is not None
    assert policy.ip_block_reason("2002:7f00:1::") is not None


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

SPELLINGS: list[tuple[str, str]] = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0x7F000001", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0x7f.0.0.0x1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("00000127.0.0.1", "87.0.0.1"),  # leading zero means octal, as inet_aton does
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("10.1", "10.0.0.1"),
    ("10.0x10000", "10.1.0.0"),
    ("192.168.257", "192.168.1.1"),
    ("0x", "0.0.0.0"),
    ("1.2.3.0x", "1.2.3.0"),
    ("0", "0.0.0.0"),
    ("4294967295", "255.255.255.255"),
    ("127.0.0.1.", "127.0.0.1"),
    (" 127.0.0.1 ", "127.0.0.1"),
    ("%31%32%37.0.0.1", "127.0.0.1"),
    ("0x7f%2e1", "127.0.0.1"),
    ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", "127.0.0.1"),
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ("[fe80::1%25eth0]", "fe80::1"),
    ("fe80::1%eth0", "fe80::1"),
    ("[2606:4700::1111]", "2606:4700::1111"),
    ("2606:4700::1111", "2606:4700::1111"),
]


# These must match what a real resolver (glibc inet_aton, used by getaddrinfo) does. Browsers
# also accept an empty "0x" part and a trailing dot, which inet_aton rejects; we parse those as
# IPs too, so they are checked as addresses rather than resolved as names.
def _inet_aton_comparable(spelling: str) -> bool:
    if ":" in spelling or set(spelling) - set("0123456789.xX"):
        return False
    return "0x" not in spelling.split(".") and not spelling.endswith(".")


INET_ATON_SPELLINGS = [s for s, _ in SPELLINGS if _inet_aton_comparable(s)]


@pytest.mark.parametrize(("spelling", "expected"), SPELLINGS)
def test_parse_host_ip_spellings(spelling: str, expected: str) -> None:
    assert parse_host_ip(spelling) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("spelling", INET_ATON_SPELLINGS)
def test_parse_host_ip_agrees_with_inet_aton(spelling: str) -> None:
    # inet_aton is a pure parser: no lookup happens.
    expected = ipaddress.IPv4Address(socket.inet_aton(spelling))
    assert parse_host_ip(spelling) == expected


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "receiver.test",
        "localhost",
        "EXAMPLE.com.",
        "127.0.0.1.example.com",
        "0x7f.example",
        "1.2.3.4.5",  # too many parts
        "127.0.0.09",  # invalid octal
        "4294967296",  # out of range
        "256.0.0.1",
        "0x100000000",
        "[example.com]",
        "::ffff:127.1",
        "",
        "1_0.0.0.1",
        "..",
    ],
)
def test_parse_host_ip_returns_none_for_non_ips(host: str) -> None:
    assert parse_host_ip(host) is None


# --------------------------------------------------------------------------------------------
# Development mode and allow-lists
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "127.1", "0x7f000001", "::1", "::ffff:127.0.0.1"]
)
def test_allow_loopback_allows_loopback(host: str) -> None:
    assert TargetPolicy().ip_block_reason(host) is not None
    assert TargetPolicy(allow_loopback=True).ip_block_reason(host) is None


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "::",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "64:ff9b::127.0.0.1",  # goes through a NAT64 translator, not loopback
        "2002:7f00:1::",
        "::127.0.0.1",
    ],
)
def test_allow_loopback_allows_nothing_else(host: str) -> None:
    assert TargetPolicy(allow_loopback=True).ip_block_reason(host) is not None


def test_from_settings_parses_entries() -> None:
    policy = TargetPolicy.from_settings(
        False,
        [
            "10.1.0.0/16",
            " 192.168.5.7 ",
            "fd00:1::/32",
            "[fd00:2::1]",
            "Hooks.Internal",
            "metadata.local.",
            "",
        ],
    )
    assert policy.allow_loopback is False
    assert policy.allow_networks == (
        ipaddress.IPv4Network("10.1.0.0/16"),
        ipaddress.IPv4Network("192.168.5.7/32"),
        ipaddress.IPv6Network("fd00:1::/32"),
        ipaddress.IPv6Network("fd00:2::1/128"),
    )
    assert policy.allow_hosts == frozenset({"hooks.internal", "metadata.local"})
    assert TargetPolicy.from_settings(True, []).allow_loopback is True


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("10.0.0.0/33", "not a valid CIDR"),
        ("10.0.0.1/8", "not a valid CIDR"),  # host bits set: probably a typo
        ("fd00::/200", "not a valid CIDR"),
        ("10.0.0.256", "not a valid IPv4 address"),
        ("[not-an-ip]", "not a valid IPv6 address"),
        ("http://hooks.internal", "looks like a URL"),
        ("hooks.internal:8080", "not a valid IPv6 address"),
        ("*.example.com", "neither an IP, a CIDR nor a host name"),
        ("bad host", "neither an IP, a CIDR nor a host name"),
        ("-bad.example", "neither an IP, a CIDR nor a host name"),
    ],
)
def test_from_settings_rejects_bad_entries(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        TargetPolicy.from_settings(False, ["10.0.0.0/8", entry])
    assert repr(entry) in str(info.value)


def test_allow_networks() -> None:
    policy = TargetPolicy.from_settings(False, ["10.1.0.0/16", "fd00:1::/32", "169.254.169.254"])
    assert policy.ip_block_reason("10.1.2.3") is None
    assert policy.ip_block_reason("10.1.2") is None  # 10.1.0.2, short spelling
    assert policy.ip_block_reason("::ffff:10.1.2.3") is None  # same destination
    assert policy.ip_block_reason("fd00:1::5") is None
    assert policy.ip_block_reason("169.254.169.254") is None
    assert policy.ip_block_reason("10.2.0.1") == "10.2.0.1 is a private address"
    assert policy.ip_block_reason("fd00:2::5") is not None
    assert policy.ip_block_reason("127.0.0.1") is not None
    # The allow-list does not reach through NAT64/6to4/Teredo translators.
    assert policy.ip_block_reason("64:ff9b::a01:203") is not None
    assert policy.ip_block_reason("2002:a01:203::") is not None


def test_allow_hosts_are_normalized() -> None:
    policy = TargetPolicy(allow_hosts=frozenset({"Hooks.Internal."}))
    assert policy.allow_hosts == frozenset({"hooks.internal"})
    assert policy.host_allowed_by_name("HOOKS.internal.")
    assert not policy.host_allowed_by_name("other.internal")


# --------------------------------------------------------------------------------------------
# Config-save-time check (check_host)
# --------------------------------------------------------------------------------------------


def stub_resolve(
    answers: Mapping[str, Sequence[str]], calls: list[str] | None = None
) -> Callable[[str], Awaitable[Iterable[str]]]:
    async def resolve(name: str) -> Iterable[str]:
        if calls is not None:
            calls.append(name)
        if name not in answers:
            raise socket.gaierror(socket.EAI_NONAME, f"stub: unknown host {name}")
        return list(answers[name])

    return resolve


def test_check_host_literal_ips_any_spelling() -> None:
    policy = TargetPolicy()
    calls: list[str] = []
    resolve = stub_resolve({}, calls)
    for host in ["0x7f000001", "2130706433", "[::ffff:127.0.0.1]", "10.1", "0251.0376.0251.0376"]:
        with pytest.raises(BlockedTarget):
            asyncio.run(policy.check_host(host, resolve))
    asyncio.run(policy.check_host("93.184.216.34", resolve))
    asyncio.run(policy.check_host("[2606:4700::1111]", resolve))
    assert calls == []  # literals never go to the resolver


def test_check_host_resolves_names() -> None:
    policy = TargetPolicy()
    resolve = stub_resolve(
        {
            "public.test": ["93.184.216.34", "2606:4700::1111"],
            "mixed.test": ["93.184.216.34", "10.0.0.5"],
            "metadata.test": ["169.254.169.254"],
            "mapped.test": ["::ffff:127.0.0.1"],
            "zoned.test": ["fe80::1%eth0"],
            "weird.test": ["not-an-ip"],
            "empty.test": [],
        }
    )
    asyncio.run(policy.check_host("public.test", resolve))
    with pytest.raises(BlockedTarget, match=r"mixed\.test .*10\.0\.0\.5 is a private address"):
        asyncio.run(policy.check_host("mixed.test", resolve))
    with pytest.raises(BlockedTarget, match="link-local"):
        asyncio.run(policy.check_host("metadata.test", resolve))
    with pytest.raises(BlockedTarget, match=re.escape("embeds 127.0.0.1, a loopback")):
        asyncio.run(policy.check_host("mapped.test", resolve))
    with pytest.raises(BlockedTarget, match="link-local"):
        asyncio.run(policy.check_host("zoned.test", resolve))
    with pytest.raises(BlockedTarget, match="not an IP address"):
        asyncio.run(policy.check_host("weird.test", resolve))
    with pytest.raises(UnresolvableHost, match=r"empty\.test"):
        asyncio.run(policy.check_host("empty.test", resolve))
    with pytest.raises(UnresolvableHost, match=r"cannot resolve host 'nowhere\.test'"):
        asyncio.run(policy.check_host("nowhere.test", resolve))


def test_check_host_allow_hosts_and_networks() -> None:
    calls: list[str] = []
    resolve = stub_resolve({"hooks.internal": ["10.0.0.5"], "db.internal": ["10.9.0.1"]}, calls)
    policy = TargetPolicy.from_settings(False, ["hooks.internal", "10.9.0.0/16"])
    asyncio.run(policy.check_host("Hooks.Internal.", resolve))  # passes whatever it resolves to
    assert calls == []
    asyncio.run(policy.check_host("db.internal", resolve))
    with pytest.raises(BlockedTarget):
        asyncio.run(TargetPolicy().check_host("db.internal", resolve))


def test_check_host_rejects_invalid_ip_like_hosts() -> None:
    calls: list[str] = []
    resolve = stub_resolve({}, calls)
    for host in ["10.0.0.256", "127.0.0.09", "4294967296", "[::ffff:127.1]"]:
        with pytest.raises(BlockedTarget, match="not a valid IPv"):
            asyncio.run(TargetPolicy().check_host(host, resolve))
    assert calls == []


def test_check_host_default_resolver_literal() -> None:
    # Literals are decided without any lookup, even with the default resolver.
    with pytest.raises(BlockedTarget):
        asyncio.run(TargetPolicy().check_host("0x7f.1"))
    asyncio.run(TargetPolicy().check_host("8.8.8.8"))


# --------------------------------------------------------------------------------------------
# Delivery-time check of literal-IP URLs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1:8080/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "https://0x7f.0.0.1/",
        "http://127.0.0.1./",
        "http://%31%32%37.0.0.1/",
        "http://\uff11\uff12\uff17.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[64:ff9b::a00:5]/",
        "http://[fe80::1%25eth0]/",
        "http://[::ffff:127.1]/",  # not parseable: refused rather than guessed
        "http://10.0.0.256/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http:///nohost",
    ],
)
def test_check_url_target_blocks(url: str) -> None:
    with pytest.raises(BlockedTarget):
        TargetPolicy().check_url_target(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://receiver.test:8080/",  # names are left to PinningResolver
        "http://93.184.216.34/",
        "http://0x5db8d822/",
        "https://[2606:4700::1111]:8443/x",
    ],
)
def test_check_url_target_allows(url: str) -> None:
    TargetPolicy().check_url_target(url)
    TargetPolicy().check_url_target(URL(url))


def test_check_url_target_dev_mode_and_allow_list() -> None:
    TargetPolicy(allow_loopback=True).check_url_target("http://127.0.0.1:8000/")
    TargetPolicy(allow_loopback=True).check_url_target("http://0x7f.1:8000/")
    with pytest.raises(BlockedTarget, match="private"):
        TargetPolicy(allow_loopback=True).check_url_target("http://10.0.0.1/")
    TargetPolicy.from_settings(False, ["10.0.0.0/8"]).check_url_target("http://10.0.0.1/")


def test_yarl_keeps_unusual_spellings_verbatim() -> None:
    """yarl does not canonicalize legacy IPv4 spellings; aiohttp sees them as-is."""
    assert URL("http://127.1/").raw_host == "127.1"
    assert URL("http://2130706433/").raw_host == "2130706433"
    assert URL("http://0x7f000001/").raw_host == "0x7f000001"
    assert URL("http://0177.0.0.1/").raw_host == "0177.0.0.1"
    assert URL("http://[::ffff:127.0.0.1]/").raw_host == "::ffff:7f00:1"
    # ...but it does apply IDNA mapping, so full-width digits become a canonical literal.
    assert URL("http://\uff11\uff12\uff17.0.0.1/").raw_host == "127.0.0.1"


# --------------------------------------------------------------------------------------------
# PinningResolver
# --------------------------------------------------------------------------------------------


class StubResolver(AbstractResolver):
    """Answers from a table; each call for a host takes the next answer (the last repeats)."""

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        seen = self.calls.count(host)
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, f"stub: unknown host {host}")
        sequence = self.answers[host]
        addresses = sequence[min(seen, len(sequence) - 1)]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        self.closed = True


def test_pinning_resolver_defeats_dns_rebinding() -> None:
    inner = StubResolver({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    resolver = PinningResolver(TargetPolicy(), inner=inner)

    first = asyncio.run(resolver.resolve("rebind.test", 443, socket.AF_UNSPEC))
    assert [r["host"] for r in first] == ["93.184.216.34"]
    with pytest.raises(BlockedTarget, match=r"rebind\.test .*127\.0\.0\.1 is a loopback address"):
        asyncio.run(resolver.resolve("rebind.test", 443, socket.AF_UNSPEC))
    assert inner.calls == ["rebind.test", "rebind.test"]


def test_pinning_resolver_mixed_answer_keeps_only_public() -> None:
    inner = StubResolver({"mixed.test": [["10.0.0.5", "93.184.216.34", "::1", "2606:4700::1111"]]})
    resolver = PinningResolver(TargetPolicy(), inner=inner)
    results = asyncio.run(resolver.resolve("mixed.test", 443, socket.AF_UNSPEC))
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:4700::1111"]
    assert all(r["port"] == 443 and r["hostname"] == "mixed.test" for r in results)

    # The same answer is rejected outright at config-save time.
    resolve = stub_resolve({"mixed.test": ["10.0.0.5", "93.184.216.34"]})
    with pytest.raises(BlockedTarget, match=re.escape("10.0.0.5 is a private address")):
        asyncio.run(TargetPolicy().check_host("mixed.test", resolve))


def test_pinning_resolver_blocks_whatever_inner_returns_for_numeric_names() -> None:
    # A resolver that (like getaddrinfo) treats "2130706433" as 127.0.0.1, and a name whose
    # answer is loopback: blocked either way.
    inner = StubResolver(
        {
            "2130706433": [["127.0.0.1"]],
            "0x7f000001": [["127.0.0.1"]],
            "sneaky.test": [["127.0.0.1"]],
            "zoned.test": [["fe80::1%eth0"]],
            "garbage.test": [["not-an-ip"]],
        }
    )
    resolver = PinningResolver(TargetPolicy(), inner=inner)
    for host in ["2130706433", "0x7f000001", "sneaky.test", "zoned.test", "garbage.test"]:
        with pytest.raises(BlockedTarget):
            asyncio.run(resolver.resolve(host, 80, socket.AF_UNSPEC))
    # IP spellings are decided by our parser, never by the inner resolver.
    assert inner.calls == ["sneaky.test", "zoned.test", "garbage.test"]


def test_pinning_resolver_pins_literal_spellings() -> None:
    inner = StubResolver({})
    resolver = PinningResolver(TargetPolicy(allow_loopback=True), inner=inner)
    (result,) = asyncio.run(resolver.resolve("0x7f.1", 8080, socket.AF_UNSPEC))
    assert result["host"] == "127.0.0.1"
    assert result["hostname"] == "0x7f.1"
    assert result["port"] == 8080
    assert result["family"] == socket.AF_INET
    (public,) = asyncio.run(
        PinningResolver(TargetPolicy(), inner=inner).resolve("1572395042", 80, socket.AF_UNSPEC)
    )
    assert public["host"] == "93.184.216.34"
    with pytest.raises(OSError, match="family"):
        asyncio.run(resolver.resolve("127.0.0.1", 80, socket.AF_INET6))
    with pytest.raises(BlockedTarget, match="not a valid IPv4"):
        asyncio.run(resolver.resolve("10.0.0.256", 80, socket.AF_UNSPEC))
    assert inner.calls == []


def test_pinning_resolver_allow_hosts_and_networks() -> None:
    inner = StubResolver({"hooks.internal": [["10.0.0.5"]], "db.internal": [["10.9.0.1"]]})
    policy = TargetPolicy.from_settings(False, ["hooks.internal", "10.9.0.0/16"])
    resolver = PinningResolver(policy, inner=inner)
    assert [
        r["host"] for r in asyncio.run(resolver.resolve("hooks.internal", 80, socket.AF_UNSPEC))
    ] == ["10.0.0.5"]
    assert [
        r["host"] for r in asyncio.run(resolver.resolve("db.internal", 80, socket.AF_UNSPEC))
    ] == ["10.9.0.1"]


def test_pinning_resolver_dns_failure_is_oserror() -> None:
    resolver = PinningResolver(TargetPolicy(), inner=StubResolver({}))
    with pytest.raises(OSError):
        asyncio.run(resolver.resolve("nowhere.test", 80, socket.AF_UNSPEC))


def test_pinning_resolver_close_only_closes_owned_inner() -> None:
    inner = StubResolver({})
    asyncio.run(PinningResolver(TargetPolicy(), inner=inner).close())
    assert inner.closed is False
    asyncio.run(PinningResolver(TargetPolicy()).close())  # never created its inner: no-op


# --------------------------------------------------------------------------------------------
# End to end, loopback only
# --------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    port: int
    hits: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(port=0)

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        state.hits.append(request.path)
        return web.Response(text="ok")

    async def redirect(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        location = f"http://{request.match_info['host']}:{state.port}/secret"
        raise web.HTTPTemporaryRedirect(location=location)

    app = web.Application()
    app.router.add_route("*", "/go/{host}", redirect)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


def loopback_stub() -> StubResolver:
    return StubResolver({"receiver.test": [["127.0.0.1"]], "internal.test": [["127.0.0.1"]]})


async def post(
    url: str,
    resolver: AbstractResolver,
    *,
    use_dns_cache: bool = True,
    middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=use_dns_cache)
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(
            connector=connector, timeout=timeout, middlewares=tuple(middlewares)
        ) as session,
        session.post(url, json={"event": "ping"}) as response,
    ):
        return response.status, await response.text()


@pytest.mark.parametrize("use_dns_cache", [True, False])
def test_end_to_end_blocked_then_allowed(use_dns_cache: bool) -> None:
    async def scenario() -> None:
        async with receiver() as server:
            url = f"http://receiver.test:{server.port}/hook"

            blocked = PinningResolver(TargetPolicy(), inner=loopback_stub())
            with pytest.raises(BlockedTarget) as info:
                await post(url, blocked, use_dns_cache=use_dns_cache)
            assert info.value.reason == (
                "receiver.test resolves only to blocked addresses: 127.0.0.1 is a loopback address"
            )
            assert str(info.value).startswith("blocked: ")
            assert server.hits == []

            allowed = PinningResolver(TargetPolicy(allow_loopback=True), inner=loopback_stub())
            assert await post(url, allowed, use_dns_cache=use_dns_cache) == (200, "ok")
            assert server.hits == ["/hook"]

    asyncio.run(scenario())


def test_end_to_end_allow_hosts() -> None:
    async def scenario() -> None:
        async with receiver() as server:
            policy = TargetPolicy.from_settings(False, ["receiver.test"])
            url = f"http://receiver.test:{server.port}/hook"
            assert await post(url, PinningResolver(policy, inner=loopback_stub())) == (200, "ok")
            assert server.hits == ["/hook"]

    asyncio.run(scenario())


def test_end_to_end_unusual_spellings_never_reach_receiver() -> None:
    """Safe however aiohttp treats a spelling (it rejects some, resolves others)."""

    async def scenario() -> None:
        async with receiver() as server:
            inner = StubResolver({})
            for host in ["2130706433", "127.1", "0177.0.0.1", "0x7f000001", "0x7f.0.0.1", "0x7f.1"]:
                url = f"http://{host}:{server.port}/hook"
                resolver = PinningResolver(TargetPolicy(), inner=inner)
                with pytest.raises((BlockedTarget, aiohttp.InvalidUrlClientError)):
                    await post(url, resolver)
                with pytest.raises(BlockedTarget):
                    TargetPolicy().check_url_target(url)
            assert server.hits == []
            assert inner.calls == []

            # In development mode the hex spelling reaches the resolver and is pinned to
            # 127.0.0.1 by our parser (the default inner resolver is never needed).
            resolver = PinningResolver(TargetPolicy(allow_loopback=True))
            assert await post(f"http://0x7f000001:{server.port}/dev", resolver) == (200, "ok")
            assert server.hits == ["/dev"]

    asyncio.run(scenario())


def test_end_to_end_canonical_literal_needs_url_check() -> None:
    """aiohttp connects to a canonical IP literal without asking the resolver."""

    async def scenario() -> None:
        async with receiver() as server:
            url = f"http://127.0.0.1:{server.port}/literal"
            inner = StubResolver({})
            # The resolver alone cannot see this request...
            assert await post(url, PinningResolver(TargetPolicy(), inner=inner)) == (200, "ok")
            assert server.hits == ["/literal"]
            assert inner.calls == []
            # ...so the sender checks the URL; the middleware does it on every request.
            server.hits.clear()
            with pytest.raises(BlockedTarget, match=re.escape("127.0.0.1 is a loopback address")):
                TargetPolicy().check_url_target(url)
            policy = TargetPolicy()
            with pytest.raises(BlockedTarget, match=re.escape("127.0.0.1 is a loopback address")):
                await post(
                    url,
                    PinningResolver(policy, inner=inner),
                    middlewares=[policy.client_middleware()],
                )
            assert server.hits == []

    asyncio.run(scenario())


def test_end_to_end_redirects_are_checked() -> None:
    async def scenario() -> None:
        async with receiver() as server:
            policy = TargetPolicy.from_settings(False, ["receiver.test"])
            middlewares = [policy.client_middleware()]

            # Redirect to a literal loopback IP: refused by the middleware.
            url = f"http://receiver.test:{server.port}/go/127.0.0.1"
            with pytest.raises(BlockedTarget, match="loopback"):
                await post(url, PinningResolver(policy, loopback_stub()), middlewares=middlewares)
            # Redirect to a name that resolves to loopback: refused by the resolver.
            url = f"http://receiver.test:{server.port}/go/internal.test"
            with pytest.raises(BlockedTarget, match=r"internal\.test .*loopback"):
                await post(url, PinningResolver(policy, loopback_stub()), middlewares=middlewares)
            assert server.hits == ["/go/127.0.0.1", "/go/internal.test"]

    asyncio.run(scenario())
