"""trace.json of a real run obeys the Chrome JSON trace event format rules Perfetto relies on."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

from emulator.cli import main
from emulator.report.perfetto import PID_COUNTERS, PID_CPUS, PID_LOCKS, fragmentation_marks

REQUIRED = {
    "B": {"name", "ts", "pid", "tid"},
    "E": {"ts", "pid", "tid"},
    "X": {"name", "ts", "dur", "pid", "tid"},
    "i": {"name", "ts", "pid", "tid", "s"},
    "C": {"name", "ts", "pid", "args"},
    "b": {"name", "ts", "pid", "id", "cat"},
    "e": {"name", "ts", "pid", "id", "cat"},
    "s": {"name", "ts", "pid", "tid", "id", "cat"},
    "f": {"name", "ts", "pid", "tid", "id", "cat"},
    "M": {"name", "pid", "args"},
}


def check_trace(doc: dict) -> dict[str, int]:
    """Every format rule the test enforces; returns counts per phase."""
    assert isinstance(doc["traceEvents"], list)
    stacks: dict[tuple, list[tuple[str, float]]] = defaultdict(list)
    last_ts: dict[tuple, float] = {}
    x_slices: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    asyncs: dict[tuple, float] = {}
    flows: dict[int, dict[str, float]] = defaultdict(dict)
    counts: dict[str, int] = defaultdict(int)
    for ev in doc["traceEvents"]:
        ph = ev["ph"]
        counts[ph] += 1
        missing = REQUIRED[ph] - ev.keys()
        assert not missing, f"{ph} event {ev} lacks {missing}"
        if ph == "M":
            continue
        assert isinstance(ev["ts"], int | float) and ev["ts"] >= 0
        if ph in "BEXi":
            track = (ev["pid"], ev["tid"])
            assert ev["ts"] >= last_ts.get(track, 0.0), f"time goes back on {track}: {ev}"
            last_ts[track] = ev["ts"]
        if ph == "B":
            stacks[(ev["pid"], ev["tid"])].append((ev["name"], ev["ts"]))
        elif ph == "E":
            stack = stacks[(ev["pid"], ev["tid"])]
            assert stack, f"E without B: {ev}"
            _name, t0 = stack.pop()
            assert ev["ts"] >= t0
        elif ph == "X":
            assert ev["dur"] >= 0
            x_slices[(ev["pid"], ev["tid"])].append((ev["ts"], ev["ts"] + ev["dur"]))
        elif ph == "b":
            key = (ev["cat"], ev["id"])
            assert key not in asyncs, f"async id reused while open: {ev}"
            asyncs[key] = ev["ts"]
        elif ph == "e":
            t0 = asyncs.pop((ev["cat"], ev["id"]))
            assert ev["ts"] >= t0
        elif ph in "sf":
            assert ph not in flows[ev["id"]], f"flow id {ev['id']} has two {ph}"
            flows[ev["id"]][ph] = ev["ts"]
    assert all(not s for s in stacks.values()), "unbalanced B/E"
    assert not asyncs, "async slices left open"
    for track, spans in x_slices.items():
        spans.sort()
        for (_a0, a1), (b0, _b1) in pairwise(spans):
            assert b0 >= a1 - 1e-9, f"X slices overlap on {track}"
    for fid, ends in flows.items():
        assert set(ends) == {"s", "f"}, f"flow {fid} not paired"
        assert ends["s"] <= ends["f"]
    return counts


def test_trace_of_a_real_run_follows_the_format(small_run: Path) -> None:
    doc = json.loads((small_run / "trace.json").read_text())
    counts = check_trace(doc)
    assert counts["B"] == counts["E"] > 100
    assert counts["X"] > 100  # lock holds
    assert counts["C"] > 10
    evs = doc["traceEvents"]
    threads = {
        (e["pid"], e["args"]["name"]) for e in evs if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert {(PID_CPUS, f"cpu{i}") for i in range(4)} <= threads
    lock_tracks = {n for p, n in threads if p == PID_LOCKS}
    assert any(n.startswith("zone->lock:0:") for n in lock_tracks)
    assert any(n.startswith("pcp->lock:cpu") for n in lock_tracks)
    assert "lru_lock:0" in lock_tracks  # movable and file pages join the node's LRU
    names = {e.get("name") for e in evs if e["pid"] == PID_CPUS and e["ph"] == "B"}
    assert {"alloc order=0", "free order=0"} <= names
    frag = [e for e in evs if e["ph"] == "C" and e["name"] == "fragmentation score node0"]
    low, high = fragmentation_marks(20)
    assert frag and all(e["args"]["low"] == low == 80 and e["args"]["high"] == high for e in frag)
    orders = [e for e in evs if e["ph"] == "C" and e["pid"] == PID_COUNTERS]
    assert any(e["name"] == "free pages per order" and len(e["args"]) == 11 for e in orders)
    # virtual time: the last timestamp is within the run's virtual duration (µs)
    assert max(e["ts"] for e in evs if "ts" in e) <= doc["otherData"]["virtual_ns"] / 1000


def test_every_failed_allocation_is_an_instant(small_run: Path) -> None:
    doc = json.loads((small_run / "trace.json").read_text())
    fails = [e for e in doc["traceEvents"] if e["ph"] == "i" and e["cat"] == "failure"]
    n = 0
    with (small_run / "events.jsonl").open() as f:
        for line in f:
            ev = json.loads(line)
            n += ev["event"] == "mm_page_alloc" and ev["pfn"] < 0
    assert len(fails) == n


def test_no_trace_turns_it_off(tmp_path: Path) -> None:
    out = tmp_path / "r"
    rc = main(
        [
            "run",
            "default",
            "--set",
            "memory=256M",
            "--set",
            "duration=2ms",
            "--out",
            str(out),
            "--quiet",
            "--no-trace",
        ]
    )
    assert rc == 0
    assert not (out / "trace.json").exists()
    with (out / "events.jsonl").open() as f:
        assert not any('"lock_acquired"' in line or '"mmemu_' in line for line in f)
