"""The static-header rules of an endpoint, without a database."""

from __future__ import annotations

import pytest

from hookline.api.endpoint_rules import (
    MAX_HEADERS,
    MAX_TOTAL_BYTES,
    MAX_VALUE_CHARS,
    header_problems,
)


def test_ordinary_headers_pass() -> None:
    headers = {
        "Authorization": "Bearer abc.def",
        "X-Tenant": "acme",
        "x-api-key": "k!#$%&'*+-.^_`|~ with spaces",
        "Empty": "",
    }
    assert header_problems(headers) == {}


@pytest.mark.parametrize(
    "name",
    [
        "Content-Type",
        "content-type",
        "User-Agent",
        "X-Webhook-Signature",
        "x-webhook-anything",
        "webhook-id",
        "Webhook-Signature",
        "webhook-whatever",
    ],
)
def test_names_hookline_sets_are_refused(name: str) -> None:
    assert header_problems({name: "x"}) == {
        f"headers.{name}": "is set by hookline and cannot be overridden"
    }


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "proxy-connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        "Content-Encoding",
    ],
)
def test_hop_by_hop_and_framing_names_are_refused(name: str) -> None:
    problem = header_problems({name: "x"})[f"headers.{name}"]
    assert "hop-by-hop or framing" in problem


@pytest.mark.parametrize(
    "name", ["", "X Foo", "X-Foo:", "X-Föo", "X-Foo\r\n", "(X)", 'X"Y', "X/Y", "X@Y", "X\x00"]
)
def test_names_must_be_tokens(name: str) -> None:
    assert "not a valid header name" in header_problems({name: "x"})[f"headers.{name}"]


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("a\r\nX-Injected: 1", "control characters"),
        ("a\nb", "control characters"),
        ("a\rb", "control characters"),
        ("a\x00b", "control characters"),
        ("a\tb", "control characters"),
        ("a\x7fb", "control characters"),
        ("café", "ASCII"),
        ("x" * (MAX_VALUE_CHARS + 1), f"at most {MAX_VALUE_CHARS} characters"),
    ],
)
def test_bad_values_are_refused(value: str, phrase: str) -> None:
    assert phrase in header_problems({"X-Foo": value})["headers.X-Foo"]


def test_longest_value_passes() -> None:
    assert header_problems({"X-Foo": "x" * MAX_VALUE_CHARS}) == {}


def test_names_repeated_in_another_case_are_refused() -> None:
    problems = header_problems({"X-Foo": "a", "x-foo": "b"})
    assert problems == {"headers.x-foo": "repeats X-Foo (header names are case-insensitive)"}


def test_at_most_twenty_headers() -> None:
    twenty = {f"X-H{i}": "v" for i in range(MAX_HEADERS)}
    assert header_problems(twenty) == {}
    problems = header_problems({**twenty, "X-One-More": "v"})
    assert problems == {"headers": f"at most {MAX_HEADERS} headers"}


def test_at_most_eight_kib_in_all() -> None:
    # Each header counts as on the wire: "name: value\r\n".
    line = len("X-H0") + 4
    value_chars = MAX_VALUE_CHARS
    headers = {f"X-H{i}": "v" * value_chars for i in range(MAX_TOTAL_BYTES // (line + value_chars))}
    assert header_problems(headers) == {}
    headers["X-H9"] = "v" * MAX_VALUE_CHARS
    problems = header_problems(headers)
    assert list(problems) == ["headers"] and str(MAX_TOTAL_BYTES) in problems["headers"]


def test_every_problem_is_reported() -> None:
    problems = header_problems({"Host": "x", "X-Ok": "fine", "X-Bad": "a\nb", "X Y": "z"})
    assert set(problems) == {"headers.Host", "headers.X-Bad", "headers.X Y"}
