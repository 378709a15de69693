"""`hookline serve` against raw sockets on loopback: oversized request heads are answered 431,
requests that arrive too slowly are closed (408) within HOOKLINE_REQUEST_TIMEOUT_S while other
connections keep being served, and ordinary requests, keep-alive and pipelining still work."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import TEST_KEY, free_port

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.0  # HOOKLINE_REQUEST_TIMEOUT_S of the server under test
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
GIVE_UP_S = TIMEOUT_S + 3  # an unlimited server keeps the connection; stop waiting by then


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`hookline serve --no-worker` on a free loopback port: (port, its log file)."""
    tmp = tmp_path_factory.mktemp("http-limits")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(
        HOOKLINE_ENV="development",
        HOOKLINE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'hookline.db'}",
        HOOKLINE_SECRET_KEYS=TEST_KEY,
        HOOKLINE_REQUEST_TIMEOUT_S=str(TIMEOUT_S),
        HOOKLINE_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        HOOKLINE_MAX_HEADERS=str(MAX_HEADERS),
    )
    command = [sys.executable, "-c", "from hookline.cli import main; main()"]
    subprocess.run([*command, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "serve", "--no-worker", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(port, "/healthz").status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hookline serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield port, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- raw HTTP/1.1 on a socket ---------------------------------------------------------------


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request(path: str, *headers: str, method: str = "GET", body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_reply(sock: socket.socket, buffer: bytearray | None = None) -> Reply:
    """One response with a Content-Length body; ``buffer`` carries bytes read past it."""
    data = buffer if buffer is not None else bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response head: {bytes(data)!r}")
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the whole response body")
        body += chunk
    data[:] = body[length:]
    return Reply(int(status_line.split()[1]), headers, bytes(body[:length]))


def get(port: int, path: str) -> Reply:
    with connect(port) as sock:
        sock.sendall(request(path, "Connection: close"))
        return read_reply(sock)


def closes(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes the connection (after any answer) within ``within_s``."""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            return False
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
    return False


def assert_error(reply: Reply, status: int) -> None:
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["connection"] == "close"
    body = reply.json()
    assert isinstance(body, dict) and body["success"] is False, body
    assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"]


# --- header limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(
            request("/healthz", *[f"X-Pad-{i}: {'a' * 1000}" for i in range(20)]),
            id="20-KiB-of-headers",
        ),
        pytest.param(request("/healthz", f"Cookie: {'c' * 20 * 1024}"), id="one-20-KiB-header"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20 * 1024, id="unfinished-header"
        ),
        pytest.param(f"GET /{'p' * 20 * 1024} HTTP/1.1\r\n".encode(), id="20-KiB-url"),
        pytest.param(request("/healthz", *[f"X-H{i}: v" for i in range(150)]), id="150-headers"),
    ],
)
def test_oversized_request_head_is_answered_431_and_closed(
    server: tuple[int, Path], head: bytes
) -> None:
    port, _ = server
    with connect(port) as sock:
        sock.sendall(head)
        assert_error(read_reply(sock), 431)
        assert closes(sock, within_s=1.0)
    assert get(port, "/healthz").status == 200


def test_headers_just_under_the_limits_are_served(server: tuple[int, Path]) -> None:
    port, _ = server
    headers = [f"X-H{i}: {'v' * 100}" for i in range(MAX_HEADERS - 2)]  # plus Host, Connection
    head = request("/healthz", "Connection: close", *headers)
    assert len(head) < MAX_HEADER_BYTES
    with connect(port) as sock:
        sock.sendall(head)
        reply = read_reply(sock)
    assert reply.status == 200 and reply.json() == {"ok": True}


# --- slow requests --------------------------------------------------------------------------


def assert_healthz_fast(port: int) -> None:
    started = time.monotonic()
    assert get(port, "/healthz").status == 200
    assert time.monotonic() - started < 0.5


def trickle(
    sock: socket.socket, data: bytes, between: Callable[[], object], interval_s: float = 0.2
) -> tuple[float, bytes]:
    """Send ``data`` a byte every ``interval_s``, calling ``between`` after each, until the server
    closes the connection: (time.monotonic() when it did, or inf after GIVE_UP_S; what it sent)."""
    start = time.monotonic()
    received = bytearray()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        between()
        end = time.monotonic() + interval_s
        while (left := end - time.monotonic()) > 0 and select.select([sock], [], [], left)[0]:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return time.monotonic(), bytes(received)
            received += chunk
        if time.monotonic() - start > GIVE_UP_S:
            return float("inf"), bytes(received)
    return (time.monotonic() if closes(sock, GIVE_UP_S) else float("inf")), bytes(received)


@pytest.mark.parametrize(
    ("prefix", "rest"),
    [
        pytest.param(b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", id="request-line"),
        pytest.param(b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\nX-A: b\r\n\r\n", id="headers"),
        pytest.param(
            request(
                "/api/events", "Content-Type: application/json", method="POST", body=b"x" * 100
            )[:-100],
            b"{" * 100,
            id="body",
        ),
    ],
)
def test_slow_request_is_closed_within_the_timeout(
    server: tuple[int, Path], prefix: bytes, rest: bytes
) -> None:
    port, _ = server
    slow = [connect(port) for _ in range(5)]
    started = time.monotonic()
    try:
        for sock in slow[1:]:
            sock.sendall(prefix + rest[:3])  # a few more stalled connections alongside
        slow[0].sendall(prefix)
        assert_healthz_fast(port)
        closed_at, answer = trickle(slow[0], rest, between=lambda: assert_healthz_fast(port))
        assert closed_at - started <= TIMEOUT_S + 0.6, f"still open after {GIVE_UP_S} s"
        assert closed_at - started >= TIMEOUT_S - 0.3
        assert_error(read_reply(slow[0], bytearray(answer)), 408)
        for sock in slow[1:]:
            assert closes(sock, within_s=1.0)
        assert time.monotonic() - started < TIMEOUT_S + 2
        assert_healthz_fast(port)
    finally:
        for sock in slow:
            sock.close()


def test_silent_connection_is_closed_without_an_answer(server: tuple[int, Path]) -> None:
    port, _ = server
    with connect(port) as sock:
        started = time.monotonic()
        assert select.select([sock], [], [], GIVE_UP_S)[0], f"still open after {GIVE_UP_S} s"
        assert sock.recv(65536) == b""
        assert TIMEOUT_S - 0.3 <= time.monotonic() - started <= TIMEOUT_S + 0.6


# --- ordinary traffic -----------------------------------------------------------------------

ORDINARY = (
    "User-Agent: curl/8.5.0",
    "Accept: application/json",
    "Accept-Encoding: gzip, deflate",
    "Accept-Language: en-US,en;q=0.9",
    "X-Request-Id: 5f0c4b9e-2d6a-4c1e-9a57-3b1d2f6e8a90",
)


def test_keep_alive_outlives_the_request_timeout(server: tuple[int, Path]) -> None:
    port, _ = server
    with connect(port) as sock:
        sock.sendall(request("/healthz", *ORDINARY))
        first = read_reply(sock)
        assert first.status == 200 and first.json() == {"ok": True}
        assert "close" not in first.headers.get("connection", "")
        time.sleep(TIMEOUT_S + 0.5)  # idle between requests: uvicorn's keep-alive (5 s) applies
        second = request("/healthz", *ORDINARY)
        for piece in (second[:10], second[10:40], second[40:]):  # arrives in parts, in time
            sock.sendall(piece)
            time.sleep(TIMEOUT_S / 5)
        assert read_reply(sock).status == 200


def test_pipelined_requests_and_a_large_body_in_one_packet(server: tuple[int, Path]) -> None:
    port, _ = server
    body = json.dumps({"userId": "u", "event": "resume.parsed", "data": {"pad": "x" * 60_000}})
    post = request(
        "/api/events", "Content-Type: application/json", method="POST", body=body.encode()
    )
    with connect(port) as sock:
        sock.sendall(request("/healthz", *ORDINARY) + post + request("/healthz", *ORDINARY))
        buffer = bytearray()
        assert read_reply(sock, buffer).status == 200
        assert read_reply(sock, buffer).status == 401  # no token; neither 408 nor 431
        assert read_reply(sock, buffer).status == 200


def test_the_log_names_each_refusal(server: tuple[int, Path]) -> None:
    port, log = server
    with connect(port) as sock:
        sock.sendall(request("/healthz", *[f"X-H{i}: v" for i in range(150)]))
        assert read_reply(sock).status == 431
    time.sleep(0.2)
    text = log.read_text()
    assert f"431 Request has more than {MAX_HEADERS} headers" in text
    assert "Exception in ASGI application" not in text
