"""The engine's run-level options seen from the CLI: ``--events`` tracepoint filters (only the
matching events are written, the summary counts the rest) and ``--driver`` (the fast driver and
the trio-task reference driver write byte-identical results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.report.results import KERNEL_FILES

SMALL = ["--set", "memory=512M", "--set", "duration=3ms", "--set", "cpus=4", "--quiet", "--strict"]


def _run(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    assert main(["run", "default", "--out", str(out), "--seed", "4", *SMALL, *extra]) == 0
    return out


def test_events_filter_keeps_only_matching_tracepoints(tmp_path: Path) -> None:
    full = _run(tmp_path, "full")
    some = _run(tmp_path, "some", "--events", "mm_page_alloc_*,mm_page_free")
    names = {"mm_page_alloc_zone_locked", "mm_page_alloc_extfrag", "mm_page_free"}
    want = [
        ln
        for ln in (full / "events.jsonl").read_text().splitlines()
        if json.loads(ln)["event"] in names
    ]
    got = (some / "events.jsonl").read_text().splitlines()
    assert got == want and len(got) > 100
    sf = json.loads((full / "summary.json").read_text())["engine"]
    ss = json.loads((some / "summary.json").read_text())["engine"]
    assert sf["events_dropped"] == 0 and sf["events_filter"] is None
    assert ss["events"] == len(got)
    assert ss["events"] + ss["events_dropped"] == sf["events"]
    assert ss["events_filter"] == "mm_page_alloc_*,mm_page_free"
    # the kernel files do not depend on what was recorded
    assert (full / "buddyinfo").read_bytes() == (some / "buddyinfo").read_bytes()


@pytest.mark.parametrize("spec", ["", "mm_page_alloc,", "mm page"])
def test_bad_events_filter_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    out = tmp_path / "x"
    assert main(["run", "default", "--out", str(out), *SMALL, "--events", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--events" in err[0] and "Traceback" not in err[0]
    assert not out.exists()


DRIVER_RUNS = [
    ("default", "fifo", SMALL),
    ("default", "random", SMALL),
    ("default", "pct", SMALL),
    ("default", "fifo", [*SMALL, "--quantum", "1000ns"]),
    ("zone_lock_storm", "fifo", [*SMALL[:2], *SMALL[4:]]),
    ("pcp_hiding", "random", ["--quiet", "--strict"]),
]


@pytest.mark.parametrize(("scenario", "strategy", "opts"), DRIVER_RUNS)
def test_fast_and_trio_drivers_write_byte_identical_results(
    tmp_path: Path, scenario: str, strategy: str, opts: list[str]
) -> None:
    outs = []
    for driver in ("fast", "trio"):
        out = tmp_path / driver
        args = ["run", scenario, "--out", str(out), "--seed", "3", "--strategy", strategy]
        assert main([*args, *opts, "--driver", driver]) == 0
        outs.append(out)
    fast, trio = outs
    assert len((fast / "events.jsonl").read_bytes()) > 1000
    for name in ("events.jsonl", "schedule.json", *KERNEL_FILES):
        assert (fast / name).read_bytes() == (trio / name).read_bytes(), name
    sf = json.loads((fast / "summary.json").read_text())
    st = json.loads((trio / "summary.json").read_text())
    assert (sf["engine"]["driver"], st["engine"]["driver"]) == ("fast", "trio")
    for key in ("virtual_ns", "vmstat", "allocations", "lock_stat", "timeseries"):
        assert sf[key] == st[key], key
    assert sf["engine"]["decisions"] == st["engine"]["decisions"]


def test_a_run_recorded_under_one_driver_replays_exactly_under_the_other(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", "--strategy", "pct", "--driver", "trio")
    b = tmp_path / "b"
    replay = ["run", "--replay", str(a / "schedule.json"), "--out", str(b), "--quiet"]
    assert main([*replay, "--driver", "fast"]) == 0
    assert (a / "events.jsonl").read_bytes() == (b / "events.jsonl").read_bytes()


STOPPER = """
from emulator.scenario import Scenario
from emulator.workload import AllocClass, Phase, Workload

def build(p):
    return Workload([Phase("s", [AllocClass(0, "GFP_KERNEL", lifetime="exp(20us)")],
                           rate=200000.0)])

def actors(p, ctx):
    async def ctrl_c():
        await ctx.sim.delay(STOP_NS)
        await ctx.sim.sync()
        raise KeyboardInterrupt  # Ctrl-C, as it reaches an actor

    return [("stopper", ctrl_c)]

SCENARIO = Scenario("stopper", "stops itself", build, actors=actors,
                    defaults={"memory": "256M", "cpus": 4, "duration": "10ms"})
"""


@pytest.mark.parametrize("driver", ["fast", "trio"])
def test_an_interrupted_run_records_nothing_after_its_virtual_ns(
    tmp_path: Path, driver: str
) -> None:
    f = tmp_path / "stopper.py"
    f.write_text(STOPPER.replace("STOP_NS", "1_234_567"))
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--quiet", "--driver", driver]) == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reason"] == "interrupted" and summary["virtual_ns"] == 1_234_567
    times = [json.loads(ln)["t"] for ln in (out / "events.jsonl").read_text().splitlines()]
    assert len(times) > 100 and max(times) <= summary["virtual_ns"]
    assert summary["engine"]["events"] == len(times)
