"""Properties: a scenario's named checks run over the run's events (as they are emitted), at
quiescent instants during the run, and at its end; violations land in RunResult.violations,
summary.json's "properties", and make ``mmemu run`` exit 1 naming the first one and the seed
and strategy that reproduce it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from emulator.explore.properties import (
    INVARIANTS,
    NO_DEADLOCK,
    Event,
    Property,
    PropertyRun,
)
from emulator.runner import EventsLog, Run, run_scenario
from emulator.scenario import Scenario, ScenarioError, load_scenario
from emulator.workload import AllocClass, Phase, Workload

ROOT = Path(__file__).resolve().parents[2]


def _build(_p: Any) -> Workload:
    return Workload(
        [
            Phase(
                "s",
                [
                    AllocClass(0, "GFP_KERNEL", lifetime="exp(20us)"),
                    AllocClass(2, "GFP_KERNEL", lifetime="exp(20us)"),
                ],
                rate=200_000.0,
            )
        ]
    )


SMALL = {"memory": "128M", "cpus": 2, "duration": "1ms", "sample": "500us"}


def _count_order2(run: PropertyRun, ev: Event) -> list[str]:
    run.state["n"] = run.state.get("n", 0) + 1
    if ev.fields["order"] == 2 and ev.fields["pfn"] >= 0 and "first" not in run.state:
        run.state["first"] = ev.t
        return [f"{ev.actor} took an order-2 block at pfn {ev.fields['pfn']}"]
    return []


def _seen_allocations(run: PropertyRun) -> list[str]:
    return [f"saw {run.state.get('n', 0)} allocations"]


NO_ORDER2 = Property(
    "no_order2",
    "no order-2 allocation succeeds (a property this workload breaks)",
    on_event=_count_order2,
    events=("mm_page_alloc",),
    check=_seen_allocations,
)


def test_event_and_end_hooks_report_violations_with_times() -> None:
    sc = Scenario("props", "test", _build, defaults=SMALL, properties=[NO_ORDER2])
    res = run_scenario(sc, sc.resolve(), record=False)
    assert res.reason == "deadline"
    mine = [v for v in res.violations if v.property == "no_order2"]
    assert len(mine) == 2
    first, end = mine
    assert "took an order-2 block" in first.message and 0 < first.time_ns <= res.virtual_ns
    n_allocs = sum(s.attempts for s in res.summary().allocations.values())
    assert end.message == f"saw {n_allocs} allocations" and end.time_ns == res.virtual_ns
    summary = res.summary().properties["no_order2"]
    assert summary.violations == 2 and summary.first[0].message == first.message


def test_properties_see_every_event_whatever_the_events_filter() -> None:
    sc = Scenario("props", "test", _build, defaults=SMALL, properties=[NO_ORDER2])
    res = Run(sc, sc.resolve(), events=EventsLog(None, "mm_compaction_*")).execute()
    assert any("took an order-2" in v.message for v in res.violations)
    recorded = {e["event"] for e in res.ctx.sim.recorder.events()}
    assert "mm_page_alloc" not in recorded  # the filter left them out of the record


def test_standard_properties_hold_on_a_normal_run() -> None:
    sc = Scenario("props", "test", _build, defaults=SMALL, properties=[INVARIANTS, NO_DEADLOCK])
    res = run_scenario(sc, sc.resolve(), record=False)
    assert res.violations == []
    assert res.summary().properties["invariants"].violations == 0


def test_periodic_hook_runs_at_quiescent_instants() -> None:
    seen: list[int] = []

    def probe(run: PropertyRun) -> list[str]:
        seen.append(run.now)
        run.ctx.allocator.check()  # quiescent: every invariant holds here
        return []

    prop = Property("probe", "records when it runs", periodic=probe, every_ns=100_000)
    sc = Scenario("props", "test", _build, defaults=SMALL, properties=[prop])
    res = run_scenario(sc, sc.resolve(), record=False)
    assert res.violations == []
    assert len(seen) >= 5 and seen == sorted(seen)


ABBA = """
from emulator.engine import SpinLock
from emulator.explore.properties import NO_DEADLOCK
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
                    defaults={"memory": "128M", "cpus": 1, "duration": "5ms",
                              "sample": "1ms"})
properties = [NO_DEADLOCK]
"""


def test_deadlock_detection_is_a_property(tmp_path: Path) -> None:
    f = tmp_path / "abba.py"
    f.write_text(ABBA)
    sc = load_scenario(f)
    assert [p.name for p in sc.properties] == ["no_deadlock"]
    res = run_scenario(sc, sc.resolve(), record=False)
    assert res.reason == "deadlock"
    (v,) = res.violations
    assert v.property == "no_deadlock" and "abba-1" in v.message and "abba-2" in v.message


def test_a_scenario_file_declares_properties_beside_scenario(tmp_path: Path) -> None:
    f = tmp_path / "bad.py"
    f.write_text(ABBA.replace("properties = [NO_DEADLOCK]", "properties = ['no_deadlock']"))
    with pytest.raises(ScenarioError, match="properties must be a list"):
        load_scenario(f)


def test_property_declaration_is_checked() -> None:
    with pytest.raises(ValueError, match="give check, on_event or periodic"):
        Property("empty", "no hooks")
    with pytest.raises(ValueError, match="letters, digits"):
        Property("no spaces", "x", check=lambda run: [])


VIOLATING = """
from emulator.explore.properties import Property
from emulator.scenario import Scenario
from emulator.workload import AllocClass, Phase, Workload

def build(p):
    return Workload([Phase("s", [AllocClass(1, "GFP_KERNEL", lifetime="exp(20us)")],
                           rate=100000.0)])

def first_order1(run, ev):
    if ev.fields["pfn"] >= 0 and not run.state:
        run.state["seen"] = True
        return ["an order-1 block was handed out"]
    return []

SCENARIO = Scenario("violating", "breaks its property", build,
                    defaults={"memory": "128M", "cpus": 2, "duration": "1ms",
                              "sample": "500us"})
properties = [Property("no_order1", "no order-1 block", on_event=first_order1,
                       events=("mm_page_alloc",))]
"""


def test_cli_exits_1_naming_the_first_violation_and_the_rerun(tmp_path: Path) -> None:
    f = tmp_path / "violating.py"
    f.write_text(textwrap.dedent(VIOLATING))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "emulator", "run", str(f), "--out", str(out), "--quiet"]
    cmd += ["--no-events", "--set", "seed=7", "--set", "strategy=random"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mmemu run: property no_order1 violated at t=")
    assert "an order-1 block was handed out" in lines[0]
    assert "rerun with --seed 7 --strategy random" in lines[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["properties"]["no_order1"]["violations"] == 1
