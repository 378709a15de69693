"""uvicorn's httptools protocol with the limits it lacks: the size and count of request headers
(431 past them) and a deadline for each request to arrive in full (408 past it); and uvicorn's
server, woken once a second when idle instead of ten times (``QuietServer``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import Server, ServerState

from hookline.config import Settings

#: After an error answer, how long the connection is kept draining what the client still sends,
#: so that closing it does not reset the connection before the client has read the answer.
LINGER_S = 2.0


class _Refused(Exception):
    """Raised from a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_bytes(status: int, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 response in the API's error shape that closes the connection."""
    body = json.dumps({"success": False, "error": message}).encode()
    head = [STATUS_LINE[status]]
    for name, value in default_headers:
        head += [name, b": ", value, b"\r\n"]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses oversized request heads and requests that arrive too slowly.

    The deadline runs from the connection's opening for its first request and from the first
    byte of each later one, until the request (head and body) has been read; a keep-alive
    connection waiting between requests is uvicorn's ``timeout_keep_alive``'s business.
    Use ``protocol_for(settings)``, which fills in the limits.
    """

    max_header_bytes = 16 * 1024
    max_headers = 100
    request_timeout_s = 30.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # When the request being received must be complete (None between requests), and the
        # one timer that checks it: moved forward lazily, never armed per request.
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading_head = True  # the current request's head is not complete yet
        self._head_bytes = 0  # URL and complete header lines of the current request
        self._head_received = 0  # raw bytes fed while the current head was incomplete
        self._lingering = False

    # --- the deadline -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._stop_deadline()
        super().handle_websocket_upgrade()

    def _start_deadline(self) -> None:
        self._deadline = self.loop.time() + self.request_timeout_s
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _stop_deadline(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return  # no request is being received; the next one starts the timer again
        if self.flow.read_paused:  # we, not the client, are holding the request up
            self._deadline = self.loop.time() + self.request_timeout_s
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
            return
        if self.scope is None:  # not a byte since the connection opened: nothing to answer
            self.transport.close()
            return
        self._refuse(408, f"Request not received in full within {self.request_timeout_s:g} s")

    # --- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        if self.scope is not None:  # the first request's deadline runs from connection_made
            self._start_deadline()
        super().on_message_begin()

    # on_url and on_header run per header of every request: they repeat uvicorn's few lines
    # rather than pay for a super() call each.
    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.max_header_bytes:
            raise self._head_too_large()
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_bytes > self.max_header_bytes:
            raise self._head_too_large()
        if len(self.headers) >= self.max_headers:
            raise _Refused(431, f"Request has more than {self.max_headers} headers")
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def _head_too_large(self) -> _Refused:
        return _Refused(431, f"Request line and headers exceed {self.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._reading_head = False  # only now is self.cycle this request's

    def on_message_complete(self) -> None:
        self._deadline = None
        self._reading_head = True
        self._head_received = 0
        super().on_message_complete()

    # --- feeding the parser, and refusing -----------------------------------------------

    def data_received(self, data: bytes) -> None:
        """uvicorn's data_received, but limit errors answer as themselves rather than as 400."""
        if self._lingering:
            return  # an error was answered; drop what the client still sends
        self._unset_keepalive_if_required()
        if self._reading_head:
            self._head_received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # what a parser callback raised, if one did
            if isinstance(cause, _Refused):
                self._refuse(cause.status, cause.message)
                return
            if cause is not None:  # a fault of ours or uvicorn's, not just a bad request
                self.logger.error("Exception in an HTTP parser callback", exc_info=cause)
            self._refuse(400, "Invalid HTTP request")
            return
        # One header still being received is buffered by the parser, unseen by on_header.
        if self._reading_head and self._head_received > self.max_header_bytes:
            refused = self._head_too_large()
            self._refuse(refused.status, refused.message)

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` unless another answer is under way, then close the connection."""
        self._stop_deadline()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
        self.logger.warning("%s - %d %s", client, status, message)
        cycle = self.cycle
        if cycle is not None and not self._reading_head:  # the request being refused
            cycle.disconnected = True  # its app sees http.disconnect; anything it sends is dropped
            cycle.message_event.set()
            answering = cycle.response_started
        else:  # the previous request, if any
            answering = cycle is not None and not cycle.response_complete
        if answering or self.pipeline:
            self.transport.close()
            return
        self.transport.write(error_bytes(status, message, self.server_state.default_headers))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self._lingering = True
        self.flow.resume_reading()
        self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def protocol_for(settings: Settings) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to hand uvicorn (``http=``), with the limits from ``settings``."""

    class Configured(LimitedHttpToolsProtocol):
        max_header_bytes = settings.max_header_bytes
        max_headers = settings.max_headers
        request_timeout_s = settings.request_timeout_s

    return Configured


def freeze_startup_objects() -> None:
    """Move everything made while starting (modules, the app, the schema, the pools: it lives
    as long as the process) out of the garbage collector's sight, once, after collecting what
    starting left over. A full collection then walks only what requests made since: under
    load its pauses went from 66 ms on average, up to 83 ms (the p99 tail of a publish at
    32 in flight), to 2-7 ms."""
    gc.collect()
    gc.freeze()


class QuietServer(Server):
    """uvicorn's ``Server``, whose main loop wakes once a second instead of every 0.1 s, and at
    once on SIGTERM or SIGINT. Each wake-up of an idle process costs CPU, and on small VMs
    more than the work it does; the ten ticks a second were most of an idle `hookline serve`'s
    wake-ups (12.7 a second in all on PostgreSQL; about 2 with this and the worker's idle
    changes). The tick only refreshes the ``Date`` header, which has one-second resolution,
    and notices a signal, which now wakes it directly."""

    _exit_now: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    on_started: Callable[[], None] | None = None  #: called once serving, before the loop

    async def main_loop(self) -> None:
        freeze_startup_objects()
        if self.on_started is not None:
            self.on_started()
        self._loop = asyncio.get_running_loop()
        self._exit_now = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # on_tick refreshes the Date header at % 10 == 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_now.wait(), timeout=1.0)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._exit_now is not None:
            self._loop.call_soon_threadsafe(self._exit_now.set)


def serve(
    sockets: list[socket.socket] | None,
    config: Config,
    on_started: Callable[[], None] | None = None,
) -> bool:
    """Run ``config``'s app under ``QuietServer`` until a signal stops it, as ``uvicorn.run``
    does, on ``sockets`` (already listening) or else config's host and port; False when it
    never started (the port was taken, say). ``on_started`` is called once it serves."""
    server = QuietServer(config=config)
    server.on_started = on_started
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets)
    return server.started
