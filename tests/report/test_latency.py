"""Latency attribution: every allocation's virtual time split into the kernel's parts, kept in
summary.json and latency.npz, shown by `mmemu latency`, the run summary, `mmemu diff`, the
plots and trace.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emulator.cli import main
from emulator.mm.alloc_latency import INTERLEAVING, PARTS
from emulator.mm.page_alloc.alloc_stats import part_columns
from emulator.report.latency import LATENCY_FILE, load_latency
from emulator.runner import run_scenario
from emulator.scenario import find_scenario, load_scenario

STORM = ["--set", "cpus=4", "--set", "faults=24", "--set", "duration=40ms"]


def _storm(out: Path, *extra: str) -> Path:
    rc = main(["run", "thp_fault_storm", *STORM, "--out", str(out), "--quiet", *extra])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def storm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A THP fault storm with nothing recorded but the results (no events, no trace)."""
    return _storm(tmp_path_factory.mktemp("lat") / "storm", "--no-events")


def test_parts_add_up_to_every_allocation_latency() -> None:
    sc = load_scenario(find_scenario("thp_fault_storm"))
    r = run_scenario(sc, sc.resolve({"cpus": 4, "faults": 24, "duration": "40ms"}), record=False)
    timed = 0
    for cpu in r.ctx.allocator.cpus:
        for stats in cpu.stats:
            cols = np.asarray(part_columns(stats), dtype=np.int64).reshape(len(PARTS), -1)
            lat = np.frombuffer(stats.latencies, dtype=np.int64)
            assert (cols >= 0).all()
            assert (cols.sum(axis=0) == lat).all()
            timed += len(stats.parts) // (len(PARTS) + 1)
    assert timed > 0
    s = r.summary()
    nine = s.allocations[9].latency_parts
    assert nine.total_ns == sum(p.total_ns for p in nine.parts.values())
    # the storm direct-compacts: scanning and migration are there, and CPUs wait for zone->lock
    for part in ("compact_scan", "compact_migrate", "zone_lock_wait"):
        assert nine.parts[part].total_ns > 0, part
    assert set(nine.interleaving) == INTERLEAVING
    # allocations' zone->lock waits are part of all zone->lock waits (kthreads wait too)
    waited = sum(a.latency_parts.parts["zone_lock_wait"].total_ns for a in s.allocations.values())
    assert 0 < waited <= s.lock_stat["&zone->lock"].waittime_total


def test_latency_file_holds_every_allocation_and_zone_lock_wait(storm_run: Path) -> None:
    summary = json.loads((storm_run / "summary.json").read_text())
    data = load_latency(storm_run)
    assert data is not None
    for order, a in summary["allocations"].items():
        o = data.orders[int(order)]
        assert o.latency.size == a["attempts"]
        assert (o.parts.sum(axis=1) == o.latency).all()
        # the file gives the same split as the summary
        for name, p in a["latency_parts"]["parts"].items():
            assert int(o.parts[:, PARTS.index(name)].sum()) == p["total_ns"]
    waits = sum(len(w) for w in data.zone_waits.values())
    assert waits == summary["lock_stat"]["&zone->lock"]["contentions"] > 0


def test_latency_file_is_deterministic(tmp_path: Path) -> None:
    a = _storm(tmp_path / "a", "--no-events")
    b = _storm(tmp_path / "b", "--no-events")
    assert (a / LATENCY_FILE).read_bytes() == (b / LATENCY_FILE).read_bytes()


def test_latency_command_on_a_finished_run(
    storm_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["latency", str(storm_run), "--order", "9", "--by", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "order 9:" in out and "zone_lock_wait" in out and "compact_migrate" in out
    assert "interleaving" in out and "cost table" in out
    assert "by cpu" in out and "cpu3" in out
    assert main(["latency", str(storm_run), "--by", "phase"]) == 0
    assert "trickle" in capsys.readouterr().out


def test_latency_command_refuses_an_order_the_run_lacks(
    storm_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["latency", str(storm_run), "--order", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--order 5" in err and "9" in err


def test_run_summary_prints_the_parts_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["run", "thp_fault_storm", *STORM, "--out", str(tmp_path / "r"), "--no-events"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "latency parts" in out
    head = next(line for line in out.splitlines() if line.strip().startswith("part "))
    assert "order 9" in head
    row = next(line for line in out.splitlines() if line.strip().startswith("compact_migrate"))
    assert row.rstrip().endswith("cost")


def test_diff_shows_the_parts_side_by_side(
    storm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _storm(tmp_path / "c", "--no-events", "--set", "cpus=2")
    main(["diff", str(storm_run), str(other)])
    out = capsys.readouterr().out
    assert "latency parts" in out
    assert "order 9 zone_lock_wait share %" in out


def _series(path: Path) -> dict:
    with Image.open(path) as im:
        return dict(json.loads(im.text["mmemu:series"]))


def test_plots_of_a_finished_run_use_every_allocation_and_wait(
    storm_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run recorded with --no-events has no markers and no lock events: the plots come from
    latency.npz, with every allocation and every zone->lock wait."""
    summary = json.loads((storm_run / "summary.json").read_text())
    assert main(["plot", str(storm_run)]) == 0
    capsys.readouterr()
    cdf = _series(storm_run / "plots" / "alloc_latency_cdf.png")
    for order, a in summary["allocations"].items():
        assert cdf[f"order{order}"] == a["attempts"]
    waits = _series(storm_run / "plots" / "zone_lock_wait.png")
    assert sum(waits.values()) == summary["lock_stat"]["&zone->lock"]["contentions"]


def test_trace_nests_each_allocations_parts(tmp_path: Path) -> None:
    run = _storm(tmp_path / "t")
    doc = json.loads((run / "trace.json").read_text())
    events = doc["traceEvents"]
    tracks = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "thread_name"
        and e["args"]["name"].endswith("latency parts")
    }
    assert tracks
    on = [e for e in events if (e.get("pid"), e.get("tid")) in tracks and e.get("ph") != "M"]
    begins = [e for e in on if e["ph"] == "B"]
    assert begins and all(e["name"].startswith("alloc order=") for e in begins)
    children = [e for e in on if e["ph"] == "X"]
    assert {e["name"] for e in children} <= set(PARTS)
    assert {"compact_migrate", "zone_lock_wait"} <= {e["name"] for e in children}
