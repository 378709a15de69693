"""Identifiers: opaque ``c...`` ids for rows, UUIDv4 for delivery ids, random tokens."""

from __future__ import annotations

import base64
import secrets
import time
import uuid

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 36)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id() -> str:
    """A 25-character, time-ordered, opaque id in the style of the guide's ``clx...``."""
    return "c" + _base36(time.time_ns() // 1_000_000, 8) + _base36(secrets.randbits(82), 16)


def new_delivery_id() -> str:
    return str(uuid.uuid4())


def new_token() -> str:
    """An API token: 32 random bytes, URL-safe, with a recognisable prefix."""
    return "hl_" + secrets.token_urlsafe(32)


def new_secret() -> str:
    """A webhook secret in the Standard Webhooks format: ``whsec_`` + base64 of 32 bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
