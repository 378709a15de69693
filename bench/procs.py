"""Subprocesses of the benchmark: start, wait for, measure (/proc), and always stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The hookline command: the venv's script, or the same CLI through this interpreter.
HOOKLINE = (
    [str(BIN / "hookline")]
    if (BIN / "hookline").exists()
    else [sys.executable, "-c", "from hookline.cli import main; main()"]
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROFILER = "py-spy-"


def log(message: str) -> None:
    """A progress line on stderr, stamped with the time."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a live process and of its live children (the API processes of
    ``serve --workers``); 0.0 once it has ended."""
    total = cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                total += cpu_seconds(int(stat.parent.name))
    return total


def run_slices(pid: int) -> int:
    """How many times the scheduler has put a live process's threads on a CPU (the third field
    of /proc/<pid>/task/*/schedstat): near enough its wake-ups, when it is mostly asleep."""
    total = 0
    for schedstat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(schedstat.read_text().split()[2])
    return total


def machine_cpu_seconds() -> float:
    """CPU time spent busy by the whole machine (all cores, every process), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a phase's peak is its own."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    cpu_mark: float = 0.0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def mark(self) -> None:
        """Start a measured phase: CPU counted from here, peak RSS reset."""
        self.cpu_mark = tree_cpu_seconds(self.pid)
        reset_peak_rss(self.pid)

    def cpu_since_mark(self) -> float:
        return tree_cpu_seconds(self.pid) - self.cpu_mark

    def peak_rss_mib(self) -> float:
        return status_kib(self.pid, "VmHWM") / 1024

    def rss_mib(self) -> float:
        return status_kib(self.pid, "VmRSS") / 1024

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Procs:
    """Every process the benchmark started; ``stop_all`` ends them (also on failure)."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    running: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                env={**os.environ, **self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
            )
        proc = Proc(name, popen, log_path)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc, timeout_s: float = 20.0) -> None:
        """SIGTERM (a profiler: wait for it to finish writing, then SIGINT), then SIGKILL."""
        if proc.name.startswith(PROFILER) and proc.alive():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=timeout_s)  # it ends with the process it samples
        if proc.alive():
            stop_signal = signal.SIGINT if proc.name.startswith(PROFILER) else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(stop_signal)
            try:
                proc.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
                proc.popen.wait(timeout=5)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self, keep: tuple[str, ...] = ()) -> None:
        """Stop every process but those named in ``keep``: newest first, profilers last."""
        doomed = [p for p in reversed(self.running) if p.name not in keep]
        doomed.sort(key=lambda p: p.name.startswith(PROFILER))
        for proc in doomed:
            self.stop(proc, timeout_s=15.0)

    def run(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, timeout_s: float = 120
    ) -> str:
        """Run a command to completion; its stdout, or RuntimeError with its output."""
        done = subprocess.run(
            argv,
            env={**os.environ, **self.env, **(env or {})},
            capture_output=True,
            cwd=ROOT,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{name} failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}"
            )
        return done.stdout.decode()


def wait_http(url: str, proc: Proc, timeout_s: float = 30.0) -> None:
    """Wait until ``url`` answers 200 (bounded), failing early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout_s:g}s")


def wait_log(proc: Proc, needle: str, timeout_s: float = 30.0) -> None:
    """Wait until the process's log contains ``needle`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        with contextlib.suppress(OSError):
            if needle in proc.log_path.read_text(errors="replace"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not log {needle!r} within {timeout_s:g}s")
