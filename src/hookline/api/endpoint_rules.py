"""Rules for endpoints over HTTP, pure: what an endpoint id may look like, and what static
headers may be (names that cannot pass for hookline's own or change how the request is framed,
values that cannot split a header, size caps). The API turns each header problem into a 422
naming the header (``headers.<name>``)."""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_HEADERS = 20
MAX_VALUE_CHARS = 1024
#: All headers together, counted as on the wire: ``name: value\r\n`` for each.
MAX_TOTAL_BYTES = 8 * 1024

#: RFC 9110 section 5.6.2: token = 1*tchar
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#: hookline sets these on every delivery; a static header must not stand in for them.
_OURS = frozenset({"content-type", "user-agent"})
_OUR_PREFIXES = ("x-webhook-", "webhook-")
#: Hop-by-hop and framing headers: the HTTP client owns them, and a wrong one breaks the request.
_FRAMING = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)


def could_be_id(text: str) -> bool:
    """Whether ``text`` has the form of a row id ([0-9a-z], at most 32 characters); anything
    else is unknown without a lookup (and never reaches the database: PostgreSQL refuses NUL)."""
    return len(text) <= 32 and text.isascii() and text.isalnum()


def _name_problem(name: str) -> str | None:
    if not _TOKEN.fullmatch(name):
        return "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
    lower = name.lower()
    if lower in _OURS or lower.startswith(_OUR_PREFIXES):
        return "is set by hookline and cannot be overridden"
    if lower in _FRAMING or lower.startswith("proxy-"):
        return "is a hop-by-hop or framing header and cannot be set"
    return None


def _value_problem(value: str) -> str | None:
    if not value.isascii():
        return "must be ASCII"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return "must not contain control characters (CR, LF, NUL, tab ...)"
    if len(value) > MAX_VALUE_CHARS:
        return f"must be at most {MAX_VALUE_CHARS} characters"
    return None


def header_problems(headers: Mapping[str, str]) -> dict[str, str]:
    """Every problem with a set of static headers, keyed ``headers.<name>`` (or ``headers``
    for the set as a whole); empty when they may be sent."""
    problems: dict[str, str] = {}
    if len(headers) > MAX_HEADERS:
        problems["headers"] = f"at most {MAX_HEADERS} headers"
    seen: dict[str, str] = {}
    for name, value in headers.items():
        problem = _name_problem(name) or _value_problem(value)
        if problem is None and name.lower() in seen:
            problem = f"repeats {seen[name.lower()]} (header names are case-insensitive)"
        if problem is not None:
            problems[f"headers.{name}"] = problem
        seen.setdefault(name.lower(), name)
    total = sum(len(name) + len(value) + 4 for name, value in headers.items())
    if total > MAX_TOTAL_BYTES and "headers" not in problems:
        problems["headers"] = f"at most {MAX_TOTAL_BYTES} bytes in all (name: value per line)"
    return problems
