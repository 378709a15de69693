"""What a webhook target may be: URL rules at save time, and the sender that enforces the
address rules at delivery time. The one place target checks live."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from hookline.config import Settings
from hookline.delivery.sender import Sender
from hookline.ssrf import BlockedTarget, TargetPolicy, UnresolvableHost

MAX_URL_LENGTH = 2048


class TargetError(ValueError):
    """A target URL is not acceptable; the message says which rule it breaks."""


def check_url(url: str, settings: Settings) -> str:
    """Validate a webhook URL's form; returns it unchanged or raises TargetError."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetError(f"must be at most {MAX_URL_LENGTH} characters")
    if not url or url != url.strip() or any(ch.isspace() for ch in url):
        raise TargetError("must be an absolute http(s) URL without spaces")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise TargetError("must not contain control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError("must be an absolute http(s) URL, like https://example.com/webhooks")
    if port == 0:
        raise TargetError("must not use port 0")
    if parts.scheme != "https" and not settings.development:
        raise TargetError("must use https in production")
    return url


RESOLVE_TIMEOUT_S = 5.0


def policy_for(settings: Settings) -> TargetPolicy:
    """The address rules: development mode allows loopback; operators add an allow-list."""
    return TargetPolicy.from_settings(settings.development, settings.allow_targets)


async def check_target(url: str, policy: TargetPolicy) -> None:
    """Save-time address check: a literal IP, or a name resolving to a blocked address, fails.

    A name that does not resolve (yet) is accepted; every delivery checks again anyway.
    """
    host = urlsplit(url).hostname or ""
    try:
        await asyncio.wait_for(policy.check_host(host), timeout=RESOLVE_TIMEOUT_S)
    except BlockedTarget as exc:
        raise TargetError(str(exc)) from exc
    except (UnresolvableHost, TimeoutError):
        return


def sender_for(settings: Settings) -> Sender:
    """The sender deliveries use, configured from settings."""
    return Sender(
        timeout_s=settings.timeout_s,
        max_response_bytes=settings.max_response_bytes,
        excerpt_chars=settings.response_excerpt_chars,
        concurrency=settings.worker_concurrency,
        policy=policy_for(settings),
    )
