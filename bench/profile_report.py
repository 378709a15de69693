"""Summarise py-spy ``--format raw`` (collapsed stacks) files.

``python -m bench.profile_report FILE [--top N]`` prints the share of samples by leaf package,
by hookline function (inclusive) and by leaf function (self time).
"""

from __future__ import annotations

import argparse
import importlib.util
import linecache
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")

#: Leaf frames of a thread waiting, not working: py-spy's idle detection misses them here.
IDLE = {
    ("EpollSelector.select", "selectors.py"),
    ("Condition.wait", "threading.py"),
    ("Event.wait", "threading.py"),
    # A ThreadPoolExecutor thread (SQLite's write thread) blocked on its queue: a leaf only
    # then, since running a work item puts frames below it.
    ("_worker", "concurrent/futures/thread.py"),
    ("Thread._wait_for_tstate_lock", "threading.py"),
}

#: Where a sample's time goes: the first entry (in this order) whose name occurs anywhere on
#: the sample's stack names its phase. SQLAlchemy runs statements in greenlets, whose stacks
#: py-spy sees without their async caller: those fall to the "sqlalchemy" catch-all.
PHASES = (
    ("_connection_worker_thread", "SQLite calls (aiosqlite thread)"),
    ("record_attempts", "worker: record outcomes (Store.record)"),
    ("Store.record", "worker: record outcomes (Store.record)"),
    ("Store.claim", "worker: claim (Store.claim)"),
    ("Store.next_due", "worker: next_due between claims"),
    ("Store.reclaim_expired", "worker: maintenance"),
    ("Store.purge", "worker: maintenance"),
    ("build_headers", "worker: sign (build_headers)"),
    ("Sender.send", "worker: HTTP send (aiohttp)"),
    ("Store.listen", "worker: LISTEN"),
    ("Store.publish", "api: Store.publish (enqueue)"),
    ("current_user", "api: authenticate token"),
    ("run_in_threadpool", "api: sync dependencies in the threadpool"),
    ("run_sync_in_worker_thread", "api: sync dependencies in the threadpool"),
    ("serialize_response", "api: response serialisation"),
    ("request_body_to_args", "api: request validation"),
    ("StreamHandler.emit", "logging (access log)"),
    ("H11Protocol", "api: HTTP parsing (h11)"),
    ("_find_and_load", "startup imports"),
    ("Worker.", "worker: other (task and loop bookkeeping)"),
    ("BodySizeLimit", "api: other (FastAPI, Starlette, uvicorn)"),
    ("RequestResponseCycle", "api: other (FastAPI, Starlette, uvicorn)"),
    ("StreamWriter", "worker: HTTP send (aiohttp)"),
    ("Protocol.data_received", "driver/HTTP protocol callbacks"),
    ("_read_ready", "driver/HTTP protocol callbacks"),
)
SQLALCHEMY_PHASE = "sqlalchemy: statement execution (caller hidden by its greenlet)"


def _waiting_for_work(raw: str) -> bool:
    """aiosqlite's connection thread blocked on its queue (``tx.get()``): idle, not SQLite."""
    match = FRAME.match(raw.strip())
    if not match or match["func"] != "_connection_worker_thread" or not match["line"]:
        return False
    spec = importlib.util.find_spec("aiosqlite.core")
    if spec is None or spec.origin is None:
        return False
    return ".get(" in linecache.getline(spec.origin, int(match["line"]))


def parse(path: Path) -> tuple[list[tuple[list[tuple[str, str]], int]], int]:
    """(stacks with their sample counts, samples of aiosqlite threads waiting for work)."""
    stacks = []
    waiting = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if _waiting_for_work(stack.split(";")[-1]):
            waiting += int(count)
            continue
        frames = []
        for raw in stack.split(";"):
            match = FRAME.match(raw.strip())
            if match:
                frames.append((match["func"], match["file"]))
            else:
                frames.append((raw.strip(), ""))
        stacks.append((frames, int(count)))
    return stacks, waiting


def package(file: str) -> str:
    parts = file.split("/")
    if parts[0] in ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>"):
        return "import"
    return parts[0].removesuffix(".py") if parts else "?"


def report(path: Path, top: int, with_startup: bool = False) -> str:
    everything, waiting = parse(path)
    stacks = [(frames, n) for frames, n in everything if frames and frames[-1] not in IDLE]
    idle = waiting + sum(n for _, n in everything) - sum(n for _, n in stacks)
    startup = sum(n for frames, n in stacks if any(f == "_find_and_load" for f, _ in frames))
    if not with_startup:
        stacks = [(f, n) for f, n in stacks if not any(x == "_find_and_load" for x, _ in f)]
    total = sum(count for _, count in stacks)
    if not total:
        return f"{path}: no samples"
    phases: Counter[str] = Counter()
    for frames, count in stacks:
        names = [func for func, _ in frames]
        for needle, phase in PHASES:
            if any(needle in name for name in names):
                phases[phase] += count
                break
        else:
            if any(file.startswith("sqlalchemy/") for _, file in frames):
                phases[SQLALCHEMY_PHASE] += count
            else:
                phases["other (event loop, callbacks)"] += count
    by_package: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        func, file = frames[-1]
        by_package[package(file)] += count
        self_time[f"{func} ({file})"] += count
        seen = set()
        for func, file in frames:
            if file.startswith("hookline/") or file.startswith("sqlalchemy/"):
                key = f"{func} ({file})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
    lines = [
        f"{path.name}: {total} busy samples (left out: {idle} idle"
        + ("" if with_startup else f", {startup} in startup imports")
        + ")"
    ]

    def block(title: str, counter: Counter[str]) -> None:
        lines.append(f"\n{title}")
        for key, count in counter.most_common(top):
            lines.append(f"  {100 * count / total:5.1f}%  {key}")

    block("by phase (first match on the stack)", phases)
    block("by leaf package", by_package)
    block("inclusive (hookline and sqlalchemy frames)", inclusive)
    block("self (leaf frames)", self_time)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--with-startup", action="store_true", help="count import time too")
    args = parser.parse_args()
    for path in args.files:
        print(report(path, args.top, args.with_startup))
        print()


if __name__ == "__main__":
    main()
