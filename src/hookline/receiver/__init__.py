"""Verifying a delivery on the receiving side: raw body and headers in, a typed event out.

    from hookline.receiver import Verifier, WebhookVerificationError

    verifier = Verifier(os.environ["WEBHOOK_SECRET"])  # "whsec_new whsec_old" while rotating
    try:
        event = verifier.verify(raw_body, request_headers)
    except WebhookVerificationError as exc:
        ...  # answer 401; exc.reason says why

The rule (docs/receiving.md, "Secret rotation"): a delivery is genuine when its
``webhook-signature`` verifies, with a timestamp within ``tolerance_s`` of now, with any secret
held. ``X-Webhook-Signature`` is signed with hookline's newest secret only, so it is checked
when a held secret is the newest one, i.e. when it verifies the first ``webhook-signature``.
``guide_only=True`` checks ``X-Webhook-Signature`` alone, for receivers that get nothing
else; it carries no timestamp, so a captured request can be replayed.

This package imports the standard library and ``hookline.payload`` only; the framework
adapters live in ``hookline.receiver.fastapi`` and ``hookline.receiver.flask``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hookline.payload import SECRET_PREFIX, guide_signature, standard_signature

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "Reason",
    "Verifier",
    "WebhookEvent",
    "WebhookVerificationError",
    "parse_secrets",
    "verify",
]

#: How far ``webhook-timestamp`` may be from the receiver's clock, either way, in seconds.
DEFAULT_TOLERANCE_S = 300.0


class Reason(enum.StrEnum):
    """Why a request was refused."""

    MISSING_HEADER = "missing_header"  #: a signature header this mode needs is absent or empty
    STALE_TIMESTAMP = "stale_timestamp"  #: webhook-timestamp is not Unix seconds near now
    BAD_SIGNATURE = "bad_signature"  #: no held secret verifies the signature
    BAD_BODY = "bad_body"  #: signed correctly, yet not a webhook payload


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh delivery; ``reason`` says which check failed."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified delivery: the guide's payload ``{event, deliveryId, timestamp, userId, data}``."""

    event: str
    delivery_id: str  #: ``deliveryId``: the same on every retry; use it to drop duplicates
    timestamp: datetime  #: when the event happened, aware UTC
    user_id: str  #: ``userId``
    data: dict[str, Any]
    #: Verified only by a secret hookline has replaced: it stops signing with that secret at
    #: ``previousSecretExpiresAt``, so give the receiver the new one before then.
    replaced_secret: bool = False


class Headers(Protocol):
    """What ``verify`` needs of request headers: a dict, Starlette's, Werkzeug's, email's."""

    def items(self) -> Iterable[tuple[str, Any]]: ...


def parse_secrets(secrets: str | Sequence[str]) -> list[str]:
    """The secrets as a list: a string may hold several, separated by spaces or commas."""
    if isinstance(secrets, str):
        secrets = re.split(r"[\s,]+", secrets.strip())
    return [secret for secret in secrets if secret]


def _is_standard_secret(secret: str) -> bool:
    """``whsec_`` and base64, as hookline hands secrets out."""
    try:
        return bool(base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True))
    except binascii.Error:
        return False


def _equal(expected: str, offered: str) -> bool:
    """Constant-time comparison that refuses, rather than raises on, non-ASCII input."""
    return offered.isascii() and hmac.compare_digest(expected, offered)


class Verifier:
    """Verifies deliveries against the secrets a receiver holds, newest or not, in any order.

    Secrets are checked here, once, so a misconfigured receiver fails at start-up.
    """

    def __init__(
        self,
        secrets: str | Sequence[str],
        *,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        guide_only: bool = False,
    ) -> None:
        self.secrets = parse_secrets(secrets)
        if not self.secrets:
            raise ValueError(
                "no webhook secret: pass the secret hookline gave you (whsec_...),"
                " or several separated by spaces or commas"
            )
        if not guide_only and not all(map(_is_standard_secret, self.secrets)):
            raise ValueError(
                "a webhook secret is whsec_ and base64, as hookline hands it out;"
                " one of those given is not"
            )
        self.tolerance_s = tolerance_s
        self.guide_only = guide_only

    def verify(self, body: bytes, headers: Headers) -> WebhookEvent:
        """The delivery's event, or WebhookVerificationError. ``body`` is the raw request body."""
        lowered = {str(name).lower(): str(value) for name, value in headers.items()}
        if self.guide_only:
            self._verify_guide(body, lowered)
            return _parse(body, replaced_secret=False)
        position = self._verify_standard(body, lowered)
        return _parse(body, replaced_secret=position > 0)

    def _verify_guide(self, body: bytes, headers: dict[str, str]) -> None:
        offered = _header(headers, "X-Webhook-Signature")
        if not any(_equal(guide_signature(secret, body), offered) for secret in self.secrets):
            raise WebhookVerificationError(
                Reason.BAD_SIGNATURE, "X-Webhook-Signature does not verify with any held secret"
            )

    def _verify_standard(self, body: bytes, headers: dict[str, str]) -> int:
        """Which webhook-signature entry a held secret verifies: 0 is hookline's newest secret."""
        msg_id = _header(headers, "webhook-id")
        timestamp = _header(headers, "webhook-timestamp")
        signatures = _header(headers, "webhook-signature")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise WebhookVerificationError(
                Reason.STALE_TIMESTAMP, "webhook-timestamp is not Unix seconds"
            )
        skew_s = time.time() - int(timestamp)
        if abs(skew_s) > self.tolerance_s:
            when = "old" if skew_s > 0 else "far in the future"
            raise WebhookVerificationError(
                Reason.STALE_TIMESTAMP,
                f"webhook-timestamp is {abs(skew_s):.0f} s {when}; the tolerance is"
                f" {self.tolerance_s:g} s (a replay, or a clock that is off)",
            )
        # hookline lists one signature per secret it still signs with, newest first.
        offered = [entry for entry in signatures.split() if entry.startswith("v1,")]
        for position, signature in enumerate(offered):
            for secret in self.secrets:
                expected = standard_signature(secret, msg_id, int(timestamp), body)
                if not _equal(expected, signature):
                    continue
                if position == 0:
                    # This secret is hookline's newest, the one X-Webhook-Signature uses.
                    guide = _header(headers, "X-Webhook-Signature")
                    if not _equal(guide_signature(secret, body), guide):
                        raise WebhookVerificationError(
                            Reason.BAD_SIGNATURE,
                            "webhook-signature verifies but X-Webhook-Signature does not",
                        )
                return position
        raise WebhookVerificationError(
            Reason.BAD_SIGNATURE, "webhook-signature does not verify with any held secret"
        )


def verify(
    body: bytes,
    headers: Headers,
    secrets: str | Sequence[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    guide_only: bool = False,
) -> WebhookEvent:
    """Verify one delivery; see Verifier, which an application should build once."""
    verifier = Verifier(secrets, tolerance_s=tolerance_s, guide_only=guide_only)
    return verifier.verify(body, headers)


def _header(headers: dict[str, str], name: str) -> str:
    """The value of header ``name`` from lowercased ``headers``; missing or empty raises."""
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise WebhookVerificationError(Reason.MISSING_HEADER, f"the {name} header is missing")
    return value


def _parse(body: bytes, *, replaced_secret: bool) -> WebhookEvent:
    try:
        payload = json.loads(body)
        event = WebhookEvent(
            event=payload["event"],
            delivery_id=payload["deliveryId"],
            timestamp=datetime.fromisoformat(payload["timestamp"]),
            user_id=payload["userId"],
            data=payload["data"],
            replaced_secret=replaced_secret,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookVerificationError(Reason.BAD_BODY, f"not a webhook payload: {exc}") from exc
    texts = (event.event, event.delivery_id, event.user_id)
    if not all(isinstance(text, str) for text in texts) or not isinstance(event.data, dict):
        raise WebhookVerificationError(Reason.BAD_BODY, "not a webhook payload: wrong field types")
    return event
