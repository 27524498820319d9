"""Deadlocks and actors that make no progress are reported, never passed off as success. The
engine raises them (DeadlockError despite daemons, the virtual-time watchdog); these tests state
what the CLI does with them: one line, exit 1, the results written with ``reason``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from emulator.report.results import KERNEL_FILES

ROOT = Path(__file__).resolve().parents[2]

ABBA = """
from emulator.engine import SpinLock
from emulator.scenario import Scenario
from emulator.workload import AllocClass, Phase, Workload

def build(p):
    return Workload([Phase("s", [AllocClass(0, "GFP_KERNEL", lifetime="exp(10us)")],
                           rate=1000.0, duration=200_000)])

def actors(p, ctx):
    a, b = SpinLock(ctx.sim, "A"), SpinLock(ctx.sim, "B")

    async def one():
        await a.acquire("one")
        await ctx.sim.delay(100)
        await b.acquire("one")

    async def two():
        await b.acquire("two")
        await ctx.sim.delay(100)
        await a.acquire("two")

    return [("abba-1", one), ("abba-2", two)]

SCENARIO = Scenario("abba", "ABBA deadlock", build, actors=actors,
                    defaults={"memory": "256M", "cpus": 1, "duration": "100ms",
                              "sample": "1ms"})
"""

SPINNER = """
from emulator.scenario import Scenario
from emulator.workload import AllocClass, Phase, Workload

def build(p):
    return Workload([Phase("s", [AllocClass(0, "GFP_KERNEL", lifetime="exp(10us)")],
                           rate=1000.0)])

def actors(p, ctx):
    async def spin():
        await ctx.sim.delay(1000)
        while True:
            await ctx.sim.delay(0)

    return [("spinner", spin)]

SCENARIO = Scenario("spinner", "delay(0) forever", build, actors=actors,
                    defaults={"memory": "256M", "cpus": 1, "duration": "10ms"})
"""


def _run(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    f = tmp_path / "s.py"
    f.write_text(textwrap.dedent(body))
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # a subprocess with a safety timeout: without the engine's detection the run never ends
    proc = subprocess.run(
        [sys.executable, "-m", "emulator", "run", str(f), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    return proc, out


def test_a_deadlock_exits_1_with_one_line_and_results(tmp_path: Path) -> None:
    """Before: the sampler daemon kept the run alive to its deadline, exit 0, reason
    ``deadline``."""
    proc, out = _run(tmp_path, ABBA)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mmemu run: deadlock:")
    assert "abba-1" in lines[0] and "abba-2" in lines[0]
    s = json.loads((out / "summary.json").read_text())
    assert s["reason"] == "deadlock"
    assert s["virtual_ns"] < 100_000_000  # reported when it happened, not at the deadline
    assert "abba-1" in s["error"]
    for name in ("schedule.json", "events.jsonl", *KERNEL_FILES):
        assert (out / name).is_file(), name


def test_an_actor_making_no_virtual_progress_is_reported_by_name(tmp_path: Path) -> None:
    """Before: an actor looping on delay(0) hung the run with no message."""
    proc, out = _run(tmp_path, SPINNER)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmemu run: watchdog:"), proc.stderr
    assert "spinner" in lines[0]
    s = json.loads((out / "summary.json").read_text())
    assert s["reason"] == "watchdog" and "spinner" in s["error"]
    assert (out / "schedule.json").is_file()
