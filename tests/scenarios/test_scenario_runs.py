"""Whole scenarios end to end: determinism, findings, result files, and the CLI's bad input."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.mm.procfs.parse import parse_buddyinfo
from emulator.report.results import KERNEL_FILES
from emulator.runner import RunOptions, run_scenario
from emulator.scenario import ScenarioError, bundled_scenarios, load_scenario

SMALL = ["--set", "memory=512M", "--set", "duration=3ms", "--set", "cpus=4", "--quiet", "--strict"]


def _run_cli(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    assert main(["run", "default", "--out", str(out), *SMALL, *extra]) == 0
    return out


def test_bundled_scenarios_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert {"default", "zone_lock_storm", "pcp_hiding"} <= set(bundled_scenarios())
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out]
    assert {"default", "zone_lock_storm", "pcp_hiding"} <= set(names)
    assert all(len(line.split(None, 1)) == 2 for line in out)  # every scenario has a summary


def test_same_seed_gives_byte_identical_events_and_files(tmp_path: Path) -> None:
    a = _run_cli(tmp_path, "a", "--seed", "5")
    b = _run_cli(tmp_path, "b", "--seed", "5")
    ea, eb = (a / "events.jsonl").read_bytes(), (b / "events.jsonl").read_bytes()
    assert len(ea) > 10_000
    assert ea == eb
    for name in ("buddyinfo", "pagetypeinfo", "zoneinfo", "vmstat", "lock_stat"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_another_seed_under_random_differs(tmp_path: Path) -> None:
    a = _run_cli(tmp_path, "a", "--seed", "5", "--strategy", "random")
    b = _run_cli(tmp_path, "b", "--seed", "6", "--strategy", "random")
    assert (a / "events.jsonl").read_bytes() != (b / "events.jsonl").read_bytes()
    sa = json.loads((a / "summary.json").read_text())
    assert sa["engine"]["strategy"]["name"] == "random"
    assert sa["engine"]["decisions"] > 0


def test_results_folder_is_complete_and_consistent(tmp_path: Path) -> None:
    out = _run_cli(tmp_path, "r", "--seed", "3")
    for name in ("events.jsonl", "summary.json", "schedule.json", *KERNEL_FILES):
        assert (out / name).is_file(), name
    s = json.loads((out / "summary.json").read_text())
    assert {
        "scenario",
        "seed",
        "params",
        "virtual_ns",
        "wall_s",
        "vmstat",
        "allocations",
        "lock_stat",
        "timeseries",
    } <= set(s)
    assert s["scenario"] == "default" and s["seed"] == 3
    assert s["virtual_ns"] == 3_000_000
    o0 = s["allocations"]["0"]
    assert o0["attempts"] > 100 and 0 < o0["pcp_hits"] <= o0["attempts"]
    assert o0["latency_ns"]["p50"] <= o0["latency_ns"]["p99"] <= o0["latency_ns"]["max"]
    # the buddyinfo file parses back to the free counts the summary's vmstat reports
    snap = parse_buddyinfo((out / "buddyinfo").read_text())
    free = sum(n << o for z in snap.zones for o, n in enumerate(z.nr_free))
    assert free == s["vmstat"]["nr_free_pages"]
    vm = dict(line.split() for line in (out / "vmstat").read_text().splitlines())
    assert int(vm["nr_free_pages"]) == free
    ts = s["timeseries"]
    assert len(ts["t_ns"]) == len(ts["fragmentation_score"]) >= 2
    assert ts["t_ns"] == sorted(ts["t_ns"])
    assert (out / "lock_stat").read_text().startswith("lock_stat version 0.4\n")
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    ts_events = [e["t"] for e in events]
    assert ts_events == sorted(ts_events)
    allocs = [e for e in events if e["event"] == "mm_page_alloc"]
    assert len(allocs) == sum(a["attempts"] for a in s["allocations"].values())


def test_pcp_hiding_drain_makes_the_allocation_succeed() -> None:
    sc = load_scenario(bundled_scenarios()["pcp_hiding"])
    res = run_scenario(sc, sc.resolve({}), record=False, options=RunOptions(strict=True))
    f = res.ctx.findings
    assert f["before"]["pcp_pages"] == 6 * 256  # six pageblocks' odd pages sit on pcp lists
    assert f["first_attempt"]["pfn"] == -1
    assert f["first_attempt"]["failure_reasons"] == {"watermark_high_order": 1}
    assert f["drain_all_pages"]["pages_drained"] == 6 * 256
    assert f["after_drain_attempt"]["pfn"] >= 0
    assert f["after_drain_attempt"]["pfn"] % 512 == 0
    assert f["hidden_then_found"] is True


def test_plain_contention_at_the_deadline_is_not_reported_as_deadlock() -> None:
    sc = load_scenario(bundled_scenarios()["zone_lock_storm"])
    small = {
        "memory": "1G",
        "duration": "3ms",
        "hold": "1ms",
        "cpus": "8",
        "vm.percpu_pagelist_high_fraction": "1024",
    }
    res = run_scenario(sc, sc.resolve(small), record=False, options=RunOptions(strict=True))
    assert res.ctx.findings["zone_lock_contended_pct"] > 50
    assert "lock_deadlock_at_end" not in res.ctx.findings


def test_zone_lock_storm_contention_rises_with_cpus() -> None:
    sc = load_scenario(bundled_scenarios()["zone_lock_storm"])
    # small pcp lists (high = max(managed/1024/cpus, 4*batch)) so that 2000 held pages per CPU
    # keep every CPU refilling and draining through zone->lock
    small = {
        "memory": "1G",
        "duration": "3ms",
        "hold": "1ms",
        "vm.percpu_pagelist_high_fraction": "1024",
    }
    one = run_scenario(
        sc, sc.resolve({**small, "cpus": "1"}), record=False, options=RunOptions(strict=True)
    )
    four = run_scenario(
        sc, sc.resolve({**small, "cpus": "4"}), record=False, options=RunOptions(strict=True)
    )
    assert one.ctx.findings["zone_lock_contended_pct"] == 0.0
    assert four.ctx.findings["zone_lock_contended_pct"] > 10.0
    assert four.ctx.findings["zone_lock_wait_avg_ns"] > 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "nosuch=1"], "unknown parameter 'nosuch'"),
        (["--set", "memory=lots"], "memory"),
        (["--set", "vm.compaction_proactiveness=500"], "vm.compaction_proactiveness"),
        (["--set", "cpus=3", "--set", "nodes=2"], "does not divide"),
        (["--set", "cost.nosuch=3"], "unknown cost"),
        (["--strategy", "chaos"], "strategy"),
        (["--set", "duration"], "NAME=VALUE"),
    ],
)
def test_bad_parameters_give_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    rc = main(["run", "default", "--out", str(tmp_path / "x"), "--quiet", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mmemu run: error:")
    assert needle in err


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("def broken(:\n", "syntax error"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("X = 1\n", "defines no SCENARIO"),
    ],
)
def test_bad_scenario_files_give_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, needle: str
) -> None:
    f = tmp_path / "bad.py"
    f.write_text(body)
    rc = main(["run", str(f), "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err and "bad.py" in err


def test_missing_scenario_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "/nonexistent/x.py", "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_actor_crash_and_interrupt_keep_what_was_recorded(tmp_path: Path) -> None:
    f = tmp_path / "crashy.py"
    f.write_text(
        textwrap.dedent(
            """
            from emulator.scenario import Scenario
            from emulator.workload import AllocClass, Phase, Workload

            def build(p):
                return Workload([Phase("s", [AllocClass(0, "GFP_KERNEL", lifetime="exp(10us)")],
                                       rate=200000.0)])

            def actors(p, ctx):
                async def bomb():
                    await ctx.sim.delay(p["at"])
                    raise p["kind"] == "interrupt" and KeyboardInterrupt() or RuntimeError("bang")
                return [("bomb", bomb)]

            SCENARIO = Scenario("crashy", "crashes", build, actors=actors,
                                defaults={"memory": "256M", "cpus": 2, "duration": "5ms"},
                                params={"at": (1000000, "when"), "kind": ("crash", "how")})
            """
        )
    )
    sc = load_scenario(f)
    crash = run_scenario(sc, sc.resolve({}), events=tmp_path / "c.jsonl")
    assert crash.reason == "error"
    assert crash.error is not None and "'bomb'" in crash.error and "t=1000000 ns" in crash.error
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    assert lines and json.loads(lines[-1])["t"] <= 1_000_000 + 10_000
    stop = run_scenario(sc, sc.resolve({"kind": "interrupt"}), events=tmp_path / "i.jsonl")
    assert stop.reason == "interrupted"
    assert (tmp_path / "i.jsonl").read_text().count("mm_page_alloc") > 10
    rc = main(["run", str(f), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 1
    assert (tmp_path / "o" / "summary.json").is_file()


def test_scenario_param_types_and_errors() -> None:
    sc = load_scenario(bundled_scenarios()["default"])
    p = sc.resolve(
        {"memory": "2G", "duration": "1.5ms", "rate": "1000", "vm.min_free_kbytes": "8192"}
    )
    assert p.memory_mib == 2048 and p.duration_ns == 1_500_000 and p["rate"] == 1000.0
    assert p.sysctls == {"vm.min_free_kbytes": 8192}
    with pytest.raises(ScenarioError, match=r"valid:.*memory"):
        sc.resolve({"memroy": "2G"})


def test_cpus_stuck_on_a_lock_at_the_deadline_are_a_deadlock(tmp_path: Path) -> None:
    f = tmp_path / "stuck.py"
    f.write_text(
        textwrap.dedent(
            """
            from emulator.engine import SpinLock
            from emulator.scenario import Scenario
            from emulator.workload import AllocClass, Phase, Workload

            def build(p):
                return Workload([Phase("s", [AllocClass(0, "GFP_KERNEL", lifetime="exp(10us)")],
                                       rate=1000.0)])

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

            SCENARIO = Scenario("stuck", "ABBA", build, actors=actors,
                                defaults={"memory": "256M", "cpus": 1, "duration": "1ms"})
            """
        )
    )
    sc = load_scenario(f)
    res = run_scenario(sc, sc.resolve({}), record=False, options=RunOptions(strict=True))
    # the cycle formed after the last sample: found at the end, still a deadlock
    assert res.reason == "deadlock" and res.error is not None
    assert "lock cycle abba-1 -> abba-2 -> abba-1" in res.error
    stuck = res.summary().findings["lock_deadlock_at_end"]
    assert set(stuck) == {"abba-1", "abba-2"}
    assert "B (held by abba-2)" in stuck["abba-1"] and "A (held by abba-1)" in stuck["abba-2"]
