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
