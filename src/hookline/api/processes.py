"""``hookline serve --workers N``: N API processes sharing one listening socket.

The parent binds the socket, starts N children (``hookline serve --socket-fd FD``) that
inherit it, and supervises them:

- SIGTERM or SIGINT stops them all gracefully (SIGKILL after the grace period);
- a child that dies after it began serving is started again a second later (each writes a
  byte to a pipe once its server has started); if it dies again before serving, later and
  later (up to 30 s);
- a child of the first round that dies before it served stops the rest, and the parent
  exits non-zero: its siblings would fail the same way.

Only the first child runs the delivery worker. The children count their metrics into one
directory (prometheus_client's multiprocess mode), so ``/metrics`` on any of them answers
the sum of all.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from hookline.metrics import MULTIPROC_DIR_ENV

log = logging.getLogger("hookline")

#: The pid of the supervising parent, in each child's environment.
PARENT_ENV = "HOOKLINE_SERVE_PARENT"
#: The file descriptor, in each child's environment, of the pipe it writes once serving.
READY_FD_ENV = "HOOKLINE_SERVE_READY_FD"
#: How long after a crash a child is started again; doubled for each restart in a row that
#: failed before it served, up to RESTART_DELAY_MAX_S.
RESTART_DELAY_S = 1.0
RESTART_DELAY_MAX_S = 30.0

_PR_SET_PDEATHSIG = 1


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (an address or a name: its first address) that
    children can inherit. Raises OSError."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def inherited(fd: int) -> socket.socket:
    """The listening socket a child got from its parent; its family is read from the fd."""
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    return sock


def die_with_parent() -> None:
    """In a child: have the kernel send SIGTERM when the supervising parent dies (Linux), so a
    SIGKILLed parent leaves no API process serving; exit at once if it is already gone."""
    parent = os.environ.get(PARENT_ENV)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent is not None and str(os.getppid()) != parent:
        sys.exit(0)


def tell_parent_ready() -> None:
    """In a child: say that its server has started (a no-op outside ``serve --workers``)."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(int(fd), b"1")
            os.close(int(fd))


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    ready_fd: int  #: the read end of the child's ready pipe
    restarted: bool  #: started again after a crash (not in the first round)

    def was_ready(self) -> bool:
        try:
            return os.read(self.ready_fd, 1) == b"1"  # non-blocking: b"" or EAGAIN if never
        except BlockingIOError:
            return False
        finally:
            os.close(self.ready_fd)


def supervise(sock: socket.socket, child_argv: Sequence[str], workers: int, grace_s: float) -> int:
    """Run ``workers`` children serving ``sock`` until a signal stops them or one of the first
    round fails to start; returns the exit code for the parent. ``child_argv`` is the command
    line of a child; ``--socket-fd FD`` is added, and ``--no-worker`` for all but the first."""
    metrics_dir = tempfile.mkdtemp(prefix="hookline-metrics-")
    env = {**os.environ, MULTIPROC_DIR_ENV: metrics_dir, PARENT_ENV: str(os.getpid())}
    fd = sock.fileno()
    children: dict[int, _Child] = {}
    failed_restarts: dict[int, int] = {}  # index -> restarts in a row that never served
    stopping = False
    code = 0

    def start(index: int, restarted: bool) -> None:
        argv = [*child_argv, "--socket-fd", str(fd)]
        if index > 0 and "--no-worker" not in argv:
            argv.append("--no-worker")
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        child_env = {**env, READY_FD_ENV: str(write_end)}
        try:
            process = subprocess.Popen(argv, env=child_env, pass_fds=(fd, write_end))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        children[process.pid] = _Child(index, process, read_end, restarted)
        if stopping:  # a stop signal came while it was being started
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)

    def signal_all(signum: int) -> None:
        for child in children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.process.pid, signum)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            signal_all(signal.SIGTERM)
            # A child first finishes its requests (grace + 5 s), then its worker's (grace).
            signal.alarm(int(2 * grace_s) + 15)  # then SIGKILL, below

    def kill(signum: int, frame: FrameType | None) -> None:
        if not stopping:
            return  # an alarm that is not ours
        if children:
            log.warning("API processes still running after the grace period: killing them")
        signal_all(signal.SIGKILL)

    def pause(seconds: float) -> None:
        """Sleep, but no longer once a stop has begun."""
        deadline = time.monotonic() + seconds
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, kill)
    try:
        for index in range(workers):
            if stopping:
                break
            start(index, restarted=False)
        log.info("serving with %d API processes (pids %s)", workers, ", ".join(map(str, children)))
        while children:
            pid, status = os.waitpid(-1, 0)  # resumed after a signal's handler (PEP 475)
            child = children.pop(pid, None)
            if child is None:
                continue
            child.process.returncode = exit_code = os.waitstatus_to_exitcode(status)
            was_ready = child.was_ready()
            if stopping:
                continue
            if not was_ready and not child.restarted:
                log.error(
                    "API process %d exited with code %d while starting; stopping the others",
                    child.index,
                    exit_code,
                )
                code = exit_code if exit_code > 0 else 3
                stop(signal.SIGTERM, None)
                continue
            # A crash after serving is started again at once (after a second); one that keeps
            # failing to start again (its database down, say) waits longer each time.
            failures = failed_restarts[child.index] = (
                0 if was_ready else failed_restarts.get(child.index, 0) + 1
            )
            delay = min(RESTART_DELAY_S * 2**failures, RESTART_DELAY_MAX_S)
            log.error(
                "API process %d (pid %d) exited with code %d%s; starting it again in %.0f s",
                child.index,
                pid,
                exit_code,
                "" if was_ready else " before it served",
                delay,
            )
            pause(delay)
            if stopping:
                continue
            try:
                start(child.index, restarted=True)
            except OSError as exc:
                log.error("cannot start API process %d again (%s); stopping", child.index, exc)
                code = 1
                stop(signal.SIGTERM, None)
    finally:
        signal.alarm(0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal_all(signal.SIGKILL)  # only if this is left by an exception
        for child in children.values():
            os.close(child.ready_fd)
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return code
