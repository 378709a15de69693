"""Body bytes and signatures, as pure functions."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from hookline import payload
from hookline.payload import (
    PayloadError,
    _js_number,
    build_body,
    build_headers,
    dumps,
    guide_signature,
    standard_signature,
    verify_guide_signature,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NUMBERS = [0.1, 85.5, -0.5, 1e-7, 1.5e-6, 123456789.125, 1e21, 1.7976931348623157e308, 5e-324,
           0.000001, 1e20 + 0.5, 2.5e-5, 100.0, -3.0]  # fmt: skip


def test_body_is_the_guide_structure_compact_and_utf8() -> None:
    moment = datetime(2024, 11, 14, 10, 5, 0, 123456, tzinfo=UTC)
    body = build_body("resume.parsed", "d-1", moment, "clx1", {"fileName": "Zoë.pdf"})
    assert (
        body
        == (
            '{"event":"resume.parsed","deliveryId":"d-1","timestamp":"2024-11-14T10:05:00.123Z",'
            '"userId":"clx1","data":{"fileName":"Zoë.pdf"}}'
        ).encode()
    )


@pytest.mark.parametrize("value", NUMBERS)
def test_numbers_are_written_like_javascript(value: float) -> None:
    text = dumps(value).decode()
    assert float(text) == value
    assert "." not in text or not text.endswith(".0")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_json_stringify_round_trip_is_byte_identical() -> None:
    data = {
        "numbers": NUMBERS,
        "ints": [0, -1, 2**53 - 1],
        "text": 'quote " backslash \\ newline \n tab \t ctrl \x01 Zoë ✓ \u2028 \U0001f600',
        "nested": {"a": [None, True, False, {}], "": "empty key"},
    }
    body = dumps(data)
    node = subprocess.run(
        [
            "node",
            "-e",
            "const fs = require('fs');"
            "process.stdout.write(JSON.stringify(JSON.parse(fs.readFileSync(0, 'utf8'))))",
        ],
        input=body,
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert node.stdout == body


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(PayloadError):
        dumps({"x": value})


def test_js_number_formatting_rules() -> None:
    assert _js_number(1e21) == "1e+21"
    assert _js_number(1e-7) == "1e-7"
    assert _js_number(0.000001) == "0.000001"
    assert _js_number(123.456) == "123.456"
    assert _js_number(-2.5e-10) == "-2.5e-10"


def test_signatures() -> None:
    body = b'{"event":"x"}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert guide_signature(SECRET, body) == expected
    assert verify_guide_signature(SECRET, body, expected)
    assert not verify_guide_signature(SECRET, body + b" ", expected)
    assert not verify_guide_signature(SECRET, body, "é" * 64)  # refused, not a TypeError
    headers = build_headers(
        body=body, event="x", delivery_id="msg_1", secrets=[SECRET, SECRET], timestamp_s=1700000000,
        user_agent="UA/1",
    )  # fmt: skip
    assert headers["X-Webhook-Signature"] == expected
    one = standard_signature(SECRET, "msg_1", 1700000000, body)
    assert headers["webhook-signature"] == f"{one} {one}"
    assert one.startswith("v1,")
    assert list(headers)[:5] == [
        "Content-Type", "X-Webhook-Signature", "X-Webhook-Event", "X-Webhook-Delivery-Id",
        "User-Agent",
    ]  # fmt: skip
    assert json.loads(body) == {"event": "x"}


MAX_DEPTH = 32  # the documented nesting limit of data (docs/api.md)

# Keys JavaScript may or may not treat as array indices (canonical decimal, 0 ... 2**32-2).
INDEX_LIKE_KEYS = ["2024", "2023", "10", "9", "0", "01", "-1", "4294967294", "4294967295", "1.5",
                   "00", "1e3", " 1", "\u0661", "²", "9007199254740991", "x"]  # fmt: skip
KEY_ORDER_CASES = [
    {"scoreHistory": {"2024": 85.5, "2023": 71}},
    {"b": 1, **dict.fromkeys(INDEX_LIKE_KEYS, 1), "a": 2},
    dict.fromkeys(reversed(INDEX_LIKE_KEYS), 0),
    {"list": [{"3": 1, "z": 2, "1": {"20": [], "2": {}}}], "0": None},
    {"plain": 1, "keys": {"only": 2}},
]


def node_round_trip(bodies: list[bytes]) -> list[bytes]:
    """What JSON.stringify(JSON.parse(body)) gives for each body, from a real node."""
    script = (
        "const lines = require('fs').readFileSync(0, 'utf8').split('\\n').filter(Boolean);"
        "for (const l of lines) console.log(JSON.stringify(JSON.parse(l)));"
    )
    node = subprocess.run(
        ["node", "-e", script], input=b"\n".join(bodies), capture_output=True, check=True,
        timeout=30,
    )  # fmt: skip
    return node.stdout.splitlines()


def test_array_index_keys_come_first_in_ascending_order() -> None:
    body = build_body(
        "ats.check_completed", "d-1", datetime(2024, 1, 1, tzinfo=UTC), "u",
        {"scoreHistory": {"2024": 85.5, "2023": 71}, "10": 1, "b": 2, "9": 3},
    )  # fmt: skip
    assert body.endswith(b'"data":{"9":3,"10":1,"scoreHistory":{"2023":71,"2024":85.5},"b":2}}')
    ordered = dumps(dict.fromkeys(INDEX_LIKE_KEYS, 0))
    assert list(json.loads(ordered)) == [
        "0", "9", "10", "2023", "2024", "4294967294",
        "01", "-1", "4294967295", "1.5", "00", "1e3", " 1", "\u0661", "²", "9007199254740991", "x",
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_key_order_matches_json_stringify() -> None:
    bodies = [dumps(case) for case in KEY_ORDER_CASES]
    assert node_round_trip(bodies) == bodies


def test_data_may_nest_up_to_the_limit() -> None:
    assert payload.MAX_DEPTH == MAX_DEPTH
    deepest: object = "leaf"
    for level in range(MAX_DEPTH):
        deepest = [deepest] if level % 2 else {"k": deepest}
    assert json.loads(dumps(deepest)) == deepest
    body = build_body("e", "d", datetime(2024, 1, 1, tzinfo=UTC), "u", deepest)  # type: ignore[arg-type]
    assert json.loads(body)["data"] == deepest


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 70, 700, 5000, 100_000])
@pytest.mark.parametrize("shape", ["object", "array"])
def test_deeper_data_is_refused_naming_the_limit(levels: int, shape: str) -> None:
    deep: object = 1
    for _ in range(levels):
        deep = {"k": deep} if shape == "object" else [deep]
    for value in (deep, {"wrapper": deep}):
        with pytest.raises(PayloadError, match=f"deeper than {MAX_DEPTH} levels"):
            dumps(value)
    with pytest.raises(PayloadError, match=f"deeper than {MAX_DEPTH} levels"):
        build_body("e", "d", datetime(2024, 1, 1, tzinfo=UTC), "u", {"deep": deep})


def test_self_referencing_data_is_refused() -> None:
    looped: dict[str, object] = {"a": 1}
    looped["self"] = looped
    with pytest.raises(PayloadError, match="deeper than"):
        dumps(looped)


def test_huge_integers_are_refused_with_a_short_message() -> None:
    for value in (2**53, -(2**53), 10**5000):
        with pytest.raises(PayloadError, match="beyond 2\\*\\*53-1") as refused:
            dumps({"n": value})
        assert len(str(refused.value)) < 200
