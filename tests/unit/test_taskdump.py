"""tests/taskdump.py: a test that runs too long leaves its asyncio tasks' stacks in stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SLOW_TEST = """
import asyncio


async def waits_for_ever():
    await asyncio.Event().wait()


def test_slow():
    async def main():
        stuck = asyncio.create_task(waits_for_ever(), name="the-stuck-one")
        await asyncio.sleep(1.0)
        stuck.cancel()

    asyncio.run(main())
"""


def test_a_test_past_the_delay_leaves_its_tasks_in_stderr(tmp_path: Path) -> None:
    (tmp_path / "test_slow.py").write_text(SLOW_TEST)
    env = {**os.environ, "HOOKLINE_TEST_DUMP_AFTER_S": "0.3"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "tests.taskdump",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_slow.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_slow.py::test_slow: call still running after 0.3 s" in run.stderr
    assert "name='the-stuck-one'" in run.stderr
    assert "in waits_for_ever" in run.stderr
