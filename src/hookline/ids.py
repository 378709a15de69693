"""Identifiers: opaque ``c...`` ids for rows, UUIDv4 for delivery ids, random tokens.

Row ids and delivery ids take their random bits from a per-thread buffer of ``os.urandom``
output, refilled ``_BUFFER`` bytes at a time: the same source as ``secrets``, without a system
call per id (a published event makes three ids, and at thousands of events a second one call
each cost more than the rest of the id). A forked child starts with an empty buffer, so it
never repeats its parent's ids. Tokens and secrets still come from ``secrets`` directly.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
#: Every pair of base-36 digits, indexed by its value (0 .. 36**2 - 1).
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_BUFFER = 4096


class _Entropy(threading.local):
    def __init__(self) -> None:
        self.buffer = b""
        self.at = 0
        self.generation = _generation


_generation = 0
_local = _Entropy()


def _after_fork() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_after_fork)


def _random_bytes(n: int) -> bytes:
    """``n`` bytes from ``os.urandom``, taken from this thread's buffer."""
    local = _local
    at = local.at
    if at + n > len(local.buffer) or local.generation != _generation:
        local.buffer, at, local.generation = os.urandom(_BUFFER), 0, _generation
    local.at = at + n
    return local.buffer[at : at + n]


def _eight(number: int) -> str:
    """The low eight base-36 digits of ``number``, zero-padded."""
    number, d = divmod(number, 1296)
    number, c = divmod(number, 1296)
    a, b = divmod(number, 1296)
    return _PAIRS[a % 1296] + _PAIRS[b] + _PAIRS[c] + _PAIRS[d]


_HALF_BITS = 41  # 36**8 > 2**41: eight digits hold each half of the 82 random bits
_HALF_MASK = (1 << _HALF_BITS) - 1
_stamp = (-1, "")  # the last millisecond written, and its eight digits


def new_id() -> str:
    """A 25-character, time-ordered, opaque id in the style of the guide's ``clx...``: "c",
    eight digits of milliseconds, then 82 random bits as two halves of eight digits."""
    global _stamp
    ms = time.time_ns() // 1_000_000
    stamp = _stamp
    if stamp[0] != ms:
        stamp = _stamp = (ms, _eight(ms))
    bits = int.from_bytes(_random_bytes(11), "big") >> 6
    return "c" + stamp[1] + _eight(bits >> _HALF_BITS) + _eight(bits & _HALF_MASK)


def new_delivery_id() -> str:
    """A random UUID (version 4), as text."""
    raw = bytearray(_random_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_token() -> str:
    """An API token: 32 random bytes, URL-safe, with a recognisable prefix."""
    return "hl_" + secrets.token_urlsafe(32)


def new_secret() -> str:
    """A webhook secret in the Standard Webhooks format: ``whsec_`` + base64 of 32 bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
