"""One HTTP attempt. Client library errors are translated here, at the seam, into Outcomes;
nothing above this module sees an aiohttp or asyncio exception."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import errno
import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from hookline.ssrf import BlockedTarget, PinningResolver, TargetPolicy
from hookline.timeutil import utcnow


class OutcomeKind(enum.StrEnum):
    SUCCESS = "success"  #: a 2xx answer in time
    HTTP_STATUS = "http_status"  #: any other status, 3xx included (redirects are not followed)
    TIMEOUT = "timeout"  #: no complete answer within the timeout
    CONNECTION_FAILED = "connection_failed"  #: refused, DNS, reset, TLS
    BLOCKED = "blocked"  #: the target address is not allowed; never retried


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.SUCCESS

    @property
    def retryable(self) -> bool:
        return self.kind is not OutcomeKind.BLOCKED


_ERRNO_NAMES = {
    errno.ECONNREFUSED: "ECONNREFUSED",
    errno.ECONNRESET: "ECONNRESET",
    errno.EHOSTUNREACH: "EHOSTUNREACH",
    errno.ENETUNREACH: "ENETUNREACH",
    errno.ETIMEDOUT: "ETIMEDOUT",
}


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - utcnow()).total_seconds())


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    """Node-style wording, as in the guide: ``connect ECONNREFUSED 127.0.0.1:3000``."""
    name = _ERRNO_NAMES.get(exc.os_error.errno or 0)
    where = f"{exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate error for {where}: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error for {where}: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"getaddrinfo ENOTFOUND {exc.host}"
    if name:
        return f"connect {name} {where}"
    return f"connect failed {where}: {exc.os_error.strerror or exc.os_error}"


CHECKED_URLS_KEPT = 10_000
#: The most of an error message kept from a receiver or the network (reason phrases, errors).
ERROR_CHARS = 500


def safe_text(text: str, limit: int) -> str:
    """Text that came from a receiver or the network, made safe to store: at most ``limit``
    characters, valid UTF-8 (no lone surrogates), and no NUL, which PostgreSQL's text
    type refuses (one odd response once failed a whole batch of outcomes there)."""
    text = text[:limit]
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _safe(outcome: Outcome, excerpt_chars: int) -> Outcome:
    """``outcome`` with its receiver-supplied text passed through ``safe_text``."""
    error, excerpt = outcome.error, outcome.response_excerpt
    safe_error = None if error is None else safe_text(error, ERROR_CHARS)
    safe_excerpt = None if excerpt is None else safe_text(excerpt, excerpt_chars)
    if safe_error == error and safe_excerpt == excerpt:
        return outcome
    return dataclasses.replace(outcome, error=safe_error, response_excerpt=safe_excerpt)


class Sender:
    """Sends webhook requests over one pooled keep-alive session."""

    def __init__(
        self,
        *,
        timeout_s: float,
        max_response_bytes: int,
        excerpt_chars: int,
        concurrency: int,
        policy: TargetPolicy,
        connector_kwargs: dict[str, Any] | None = None,
    ) -> None:
        # aiohttp rounds deadlines above ``ceil_threshold`` (5 s by default) up to the loop's
        # next whole second, which made the 10 s timeout 10 to 11 s: never round.
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, ceil_threshold=math.inf)
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.excerpt_chars = excerpt_chars
        self.policy = policy
        self._connector_kwargs = {
            "limit": concurrency,
            "timeout_ceil_threshold": math.inf,
            **(connector_kwargs or {}),
        }
        self._session: aiohttp.ClientSession | None = None
        self._checked: dict[str, URL] = {}  # URLs that passed the policy's literal check

    def _target(self, url: str) -> URL:
        """``url`` parsed and checked (``check_url_target``). A user's URL rarely changes and
        the policy never does, so a URL that passed is remembered instead of parsed per
        attempt; a blocked or unparseable one raises every time."""
        target = self._checked.get(url)
        if target is None:
            target = URL(url)
            self.policy.check_url_target(target)  # literal IPs never reach the resolver
            if len(self._checked) >= CHECKED_URLS_KEPT:
                self._checked.clear()
            self._checked[url] = target
        return target

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # Every name is resolved through the policy and the connection goes to the
                # address that was checked, so DNS rebinding cannot reach a blocked address.
                connector=aiohttp.TCPConnector(
                    resolver=PinningResolver(self.policy), **self._connector_kwargs
                ),
                trust_env=False,
                skip_auto_headers=("Accept", "Accept-Encoding"),
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """POST ``body`` to ``url`` once and say how it went; any text in the outcome that
        came from the receiver is safe to store (``safe_text``)."""
        return _safe(await self._send(url, body, headers), self.excerpt_chars)

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.perf_counter()

        def elapsed_ms() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            target = self._target(url)
            async with self.session.post(
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self.timeout,
            ) as response:
                raw = await response.content.read(self.max_response_bytes)
                status = response.status
                retry_after = response.headers.get("Retry-After")
                reason = response.reason or ""
        except BlockedTarget as exc:
            return Outcome(OutcomeKind.BLOCKED, elapsed_ms(), error=str(exc))
        except ValueError as exc:  # yarl cannot parse the URL: no attempt can succeed
            return Outcome(OutcomeKind.BLOCKED, elapsed_ms(), error=f"invalid URL: {exc}")
        except TimeoutError:
            return Outcome(
                OutcomeKind.TIMEOUT, elapsed_ms(), error=f"timeout after {self.timeout_s:g}s"
            )
        except aiohttp.ClientConnectorError as exc:
            return Outcome(OutcomeKind.CONNECTION_FAILED, elapsed_ms(), error=_connect_error(exc))
        except aiohttp.ClientError as exc:
            text = str(exc) or type(exc).__name__
            return Outcome(OutcomeKind.CONNECTION_FAILED, elapsed_ms(), error=text)
        except (OSError, asyncio.IncompleteReadError) as exc:
            return Outcome(OutcomeKind.CONNECTION_FAILED, elapsed_ms(), error=str(exc))
        excerpt = raw.decode("utf-8", errors="replace")[: self.excerpt_chars]
        if 200 <= status < 300:
            return Outcome(OutcomeKind.SUCCESS, elapsed_ms(), status, None, excerpt)
        return Outcome(
            OutcomeKind.HTTP_STATUS,
            elapsed_ms(),
            status,
            f"HTTP {status} {reason}".strip(),
            excerpt,
            _retry_after_s(retry_after) if status in (429, 503) else None,
        )
