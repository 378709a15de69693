"""The bytes on the wire: the webhook body, its headers, and both signatures.

The body is compact UTF-8 JSON in the guide's key order, written so that a receiver that
re-serialises the parsed body with JavaScript's ``JSON.stringify`` gets the same bytes back
(the guide's Node verification example does exactly that): numbers in JavaScript's notation,
object keys in JavaScript's property order, nothing JavaScript would round or refuse, and
nothing nested deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from hookline.timeutil import iso_millis

SECRET_PREFIX = "whsec_"
MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
MAX_ARRAY_INDEX = 2**32 - 2  # the largest key JavaScript lists first, as an array index

#: How deep objects and arrays may nest in event data, ``data`` itself being level 1.
#: Real events use a few levels. With the envelope's one more, every body stays well inside
#: the default depth limit of receivers' parsers (64 in .NET's System.Text.Json and Json.NET),
#: and serialising it never comes near Python's recursion limit.
MAX_DEPTH = 32


class PayloadError(ValueError):
    """The event data cannot be represented as JSON that receivers read back identically."""


def _js_number(value: float) -> str:
    """Format a finite float the way JavaScript's Number.prototype.toString does."""
    if value == 0:
        return "0"
    sign, digits_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digits_tuple)).rstrip("0") or "0"
    # value = 0.d1d2...dk * 10**n  (ECMA-262 Number::toString)
    n = len(digits_tuple) + exponent
    k = len(digits)
    prefix = "-" if sign else ""
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        exp = n - 1
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp)}"
    return prefix + text


def _array_index(key: str) -> int | None:
    """The key as JavaScript's array index (canonical decimal, 0 ... 2**32-2), or None."""
    if key.isascii() and key.isdigit() and (key[0] != "0" or key == "0") and len(key) <= 10:
        index = int(key)
        if index <= MAX_ARRAY_INDEX:
            return index
    return None


def _js_key_order(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with its keys in the order JSON.stringify lists them after JSON.parse: array
    indices first, ascending, then every other key in insertion order (ECMA-262
    OrdinaryOwnPropertyKeys)."""
    indexed: list[tuple[int, str]] = []
    for key in obj:
        index = _array_index(key)
        if index is not None:
            indexed.append((index, key))
    if not indexed:
        return obj
    indexed.sort()  # indices are unique: canonical keys are distinct numbers
    ordered = {key: obj[key] for _, key in indexed}
    ordered.update((key, item) for key, item in obj.items() if key not in ordered)
    return ordered


def _too_deep() -> PayloadError:
    return PayloadError(f"data nests objects and arrays deeper than {MAX_DEPTH} levels (the limit)")


def _jsonable(value: Any, depth: int = 1) -> Any:
    """Copy ``value`` with floats pre-rendered and keys in JavaScript's order.

    ``depth`` is the nesting level of ``value``; containers past ``MAX_DEPTH`` are refused
    before descending into them, so the recursion is never deeper than MAX_DEPTH frames
    (a container that holds itself is refused the same way).
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            # JSON.parse would round it, and the guide's verification would then fail. The
            # value is left out of the message: it may have thousands of digits.
            raise PayloadError("data contains an integer beyond 2**53-1, which JavaScript rounds")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError("data contains a number that is not finite (NaN or Infinity)")
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        return orjson.Fragment(_js_number(value))
    if isinstance(value, Mapping):
        if depth > MAX_DEPTH:
            raise _too_deep()
        obj = {str(key): _jsonable(item, depth + 1) for key, item in value.items()}
        for key in obj:
            if "0" <= key[:1] <= "9":  # the cheap test: most objects have no such key
                return _js_key_order(obj)
        return obj
    if isinstance(value, Sequence):
        if depth > MAX_DEPTH:
            raise _too_deep()
        return [_jsonable(item, depth + 1) for item in value]
    raise PayloadError(f"data contains a value JSON cannot hold: {type(value).__name__}")


def _encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise PayloadError(f"data cannot be encoded as JSON: {exc}") from exc


def dumps(value: Any) -> bytes:
    """Compact JSON bytes that round-trip through JSON.parse/JSON.stringify unchanged.

    Raises PayloadError for what cannot: NaN, integers beyond 2**53-1, lone surrogates,
    nesting deeper than MAX_DEPTH (``value`` itself being level 1).
    """
    return _encode(_jsonable(value))


def build_body(
    event: str, delivery_id: str, timestamp: datetime, user_id: str, data: Mapping[str, Any]
) -> bytes:
    """The guide's payload ``{event, deliveryId, timestamp, userId, data}`` as bytes."""
    return _encode(
        {
            "event": event,
            "deliveryId": delivery_id,
            "timestamp": iso_millis(timestamp),
            "userId": user_id,
            # data's own depth counts from 1, as POST /api/events and publish() check it.
            "data": _jsonable(data),
        }
    )


def body_from_data_json(
    event: str, delivery_id: str, timestamp: datetime, user_id: str, data_json: bytes
) -> bytes:
    """``build_body`` for data already serialised by ``dumps``: the same bytes, without
    walking the data again. A delivery's body is built this way from its event's stored data,
    so every attempt sends identical bytes."""
    return orjson.dumps(
        {
            "event": event,
            "deliveryId": delivery_id,
            "timestamp": iso_millis(timestamp),
            "userId": user_id,
            "data": orjson.Fragment(data_json),
        }
    )


def delivery_body(
    stored: bytes,
    *,
    event: str,
    delivery_id: str,
    published_at: datetime,
    user_id: str,
    data_json: bytes | None,
) -> bytes:
    """A delivery's body: the one stored with it (deliveries made before event data was
    stored once), else built from its event's data."""
    if stored:
        return stored
    assert data_json is not None, "a delivery without a body has its event's data"
    return body_from_data_json(event, delivery_id, published_at, user_id, data_json)


def guide_signature(secret: str, body: bytes) -> str:
    """X-Webhook-Signature: lowercase hex HMAC-SHA256 of the body, keyed with the secret's UTF-8."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """One Standard Webhooks v1 signature, ``v1,<base64>``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def build_headers(
    *,
    body: bytes,
    event: str,
    delivery_id: str,
    secrets: Sequence[str],
    timestamp_s: int,
    user_agent: str,
    event_id: str | None = None,
) -> dict[str, str]:
    """Headers for one attempt: the guide's five, Standard Webhooks' three, and
    ``X-Webhook-Event-Id``, the same on every delivery of one event (to every endpoint).

    ``secrets`` is newest first: the guide's signature uses the newest; ``webhook-signature``
    carries one signature per secret still in use, space-separated.
    """
    return {
        "Content-Type": "application/json",
        "X-Webhook-Signature": guide_signature(secrets[0], body),
        "X-Webhook-Event": event,
        "X-Webhook-Delivery-Id": delivery_id,
        "User-Agent": user_agent,
        "X-Webhook-Event-Id": event_id or delivery_id,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": " ".join(
            standard_signature(secret, delivery_id, timestamp_s, body) for secret in secrets
        ),
    }


def verify_guide_signature(secret: str, body: bytes, signature: str) -> bool:
    """Check X-Webhook-Signature against the raw body, in constant time."""
    # As bytes: compare_digest refuses str with non-ASCII characters (a forged header).
    expected = guide_signature(secret, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape"))
