"""trace.json of a real run obeys the Chrome JSON trace event format rules Perfetto relies on."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.report.perfetto import (
    PID_COUNTERS,
    PID_CPUS,
    PID_LOCKS,
    fragmentation_marks,
    write_trace,
)

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
    flows: dict[tuple, dict[str, float]] = defaultdict(dict)
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
            key = (ev["id"], ev["cat"], ev["name"])  # how Perfetto pairs v1 flow events
            assert ph not in flows[key], f"flow {key} has two {ph}"
            flows[key][ph] = ev["ts"]
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
    assert counts["B"] == counts["E"]
    assert counts["X"] > 100  # leaf slices (alloc, free) and lock holds
    assert counts["C"] > 10
    evs = doc["traceEvents"]
    threads = {
        (e["pid"], e["args"]["name"]) for e in evs if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert {(PID_CPUS, f"cpu{i}") for i in range(4)} <= threads
    lock_tracks = {n for p, n in threads if p == PID_LOCKS}
    assert any(n.startswith("zone->lock:0:") for n in lock_tracks)
    # the default lock policy (zone): a CPU's own pcp->lock only when someone waited for it
    pcp = {
        e["tid"]
        for e in evs
        if e["ph"] == "M"
        and e["pid"] == PID_LOCKS
        and e["args"].get("name", "").startswith("pcp->lock")
    }
    assert not [e for e in evs if e.get("cat") == "lock_hold" and e["tid"] in pcp]
    assert "lru_lock:0" in lock_tracks  # movable and file pages join the node's LRU
    names = {e.get("name") for e in evs if e["pid"] == PID_CPUS and e["ph"] in "BX"}
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


def test_slow_path_compaction_flows_and_kernel_threads(tmp_path: Path) -> None:
    """Events shaped like include/trace/events/{compaction,vmscan,lock}.h become nested CPU
    slices, kernel-thread slices, a flow from the compaction to the allocation, counters."""
    zone = {"zone_start": 0x1000, "migrate_pfn": 0x1000, "free_pfn": 0x3FE00, "zone_end": 0x40000}

    def ev(t: int, actor: str, event: str, **f: object) -> dict:
        return {"t": t, "actor": actor, "event": event, **f}

    events = [
        ev(100, "cpu1", "mmemu_alloc_begin", order=9, gfp_flags="GFP_TRANSHUGE_LIGHT"),
        ev(100, "cpu1", "contention_begin", lock_addr="zone->lock:0:Normal", flags=1),
        ev(150, "cpu0", "contention_begin", lock_addr="zone->lock:0:Normal", flags=1),
        ev(200, "cpu1", "contention_end", lock_addr="zone->lock:0:Normal", ret=0),
        ev(200, "cpu1", "lock_acquired", name="&zone->lock", lock_addr="zone->lock:0:Normal"),
        ev(260, "cpu1", "lock_release", name="&zone->lock", lock_addr="zone->lock:0:Normal"),
        ev(260, "cpu0", "contention_end", lock_addr="zone->lock:0:Normal", ret=0),
        ev(260, "cpu0", "lock_acquired", name="&zone->lock", lock_addr="zone->lock:0:Normal"),
        ev(300, "cpu0", "lock_release", name="&zone->lock", lock_addr="zone->lock:0:Normal"),
        ev(300, "cpu1", "mmemu_slowpath_begin", order=9),
        ev(310, "kswapd0", "mm_vmscan_kswapd_wake", nid=0, zid=2, order=9),
        ev(
            320,
            "cpu1",
            "mm_compaction_try_to_compact_pages",
            order=9,
            gfp_mask="GFP_TRANSHUGE_LIGHT",
            prio=2,
        ),
        ev(320, "cpu1", "mm_compaction_begin", **zone, sync=False),
        ev(
            400,
            "cpu1",
            "mm_compaction_isolate_migratepages",
            start_pfn=0x1000,
            end_pfn=0x1200,
            nr_scanned=512,
            nr_taken=32,
        ),
        ev(
            450,
            "cpu1",
            "mm_compaction_isolate_freepages",
            start_pfn=0x3FC00,
            end_pfn=0x3FE00,
            nr_scanned=64,
            nr_taken=40,
        ),
        ev(500, "cpu1", "mm_compaction_migratepages", nr_migrated=30, nr_failed=2),
        ev(600, "cpu1", "mm_compaction_end", **zone, sync=False, status="success"),
        ev(700, "cpu1", "mmemu_slowpath_end", pfn=0x3FC00, order=9, reason=""),
        ev(
            700,
            "cpu1",
            "mm_page_alloc",
            pfn=0x3FC00,
            order=9,
            migratetype=1,
            gfp_flags="GFP_TRANSHUGE_LIGHT",
        ),
        ev(800, "kswapd0", "mm_vmscan_kswapd_sleep", nid=0),
        ev(900, "kcompactd0", "mm_compaction_kcompactd_wake", nid=0, order=-1, highest_zoneidx=2),
        ev(950, "cpu2", "mmemu_alloc_begin", order=9, gfp_flags="GFP_TRANSHUGE_LIGHT"),
        ev(960, "cpu2", "mm_compaction_begin", **zone, sync=True),
        ev(990, "cpu2", "mm_compaction_end", **zone, sync=True, status="complete"),
        ev(
            1000,
            "cpu2",
            "mm_page_alloc",
            pfn=-1,
            order=9,
            migratetype=1,
            gfp_flags="GFP_TRANSHUGE_LIGHT",
        ),
    ]
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run / "summary.json").write_text(
        json.dumps({"scenario": "t", "virtual_ns": 2000, "params": {}, "timeseries": {}})
    )
    write_trace(run)
    doc = json.loads((run / "trace.json").read_text())
    check_trace(doc)
    evs = doc["traceEvents"]
    names = {
        (e["args"]["name"]): (e["pid"], e["tid"])
        for e in evs
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    names_by_tid = {tid: n for n, (pid, tid) in names.items() if pid == PID_LOCKS}
    cpu1 = names["cpu1"]
    nested = [e["name"] for e in evs if e["ph"] == "B" and (e["pid"], e["tid"]) == cpu1]
    assert nested == ["alloc order=9", "slowpath order=9", "compact_zone"]
    assert names["kswapd0"][0] == names["kcompactd0"][0] == 2  # the kernel threads process
    kslices = [e["name"] for e in evs if e["ph"] in "BX" and e["pid"] == 2]
    assert kslices == ["kswapd", "kcompactd"]
    starts = [e for e in evs if e["ph"] == "s"]
    assert [e["ts"] for e in starts] == [pytest.approx(0.5995), pytest.approx(0.9895)]
    ends = {e["id"]: e["name"] for e in evs if e["ph"] == "f"}
    assert all(ends[e["id"]] == e["name"] for e in starts)  # Perfetto pairs by name too
    assert [e["name"] for e in evs if e["ph"] == "f"] == [
        "compaction→alloc satisfied",
        "compaction→alloc lost",
    ]
    waits = [
        (e["ts"], e["dur"], e["name"], names_by_tid[e["tid"]])
        for e in evs
        if e["ph"] == "X" and e["cat"] == "lock_wait"
    ]
    assert waits == [
        (0.1, pytest.approx(0.1), "cpu1 waits", "zone->lock:0:Normal wait cpu1"),
        (0.15, pytest.approx(0.11), "cpu0 waits", "zone->lock:0:Normal wait cpu0"),
    ]
    holds = [
        (e["ts"], e["dur"], e["name"]) for e in evs if e["ph"] == "X" and e["cat"] == "lock_hold"
    ]
    assert holds == [
        (0.2, pytest.approx(0.06), "held by cpu1"),
        (0.26, pytest.approx(0.04), "held by cpu0"),
    ]
    waiters = [
        e["args"]["waiters"]
        for e in evs
        if e["ph"] == "C" and e["name"] == "waiters zone->lock:0:Normal"
    ]
    assert waiters == [1, 2, 1, 0]
    iso = [e["args"] for e in evs if e["ph"] == "C" and e["name"] == "pages isolated by compaction"]
    assert iso[:4] == [
        {"migrate": 32, "free": 0},
        {"migrate": 32, "free": 40},
        {"migrate": 0, "free": 10},
        {"migrate": 0, "free": 0},
    ]
    fail = [e for e in evs if e["ph"] == "i" and e["cat"] == "failure"]
    assert len(fail) == 1 and fail[0]["tid"] == names["cpu2"][1]


def test_traced_runs_are_byte_identical(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = [
            "run",
            "default",
            "--set",
            "memory=512M",
            "--set",
            "duration=3ms",
            "--strategy",
            "random",
            "--seed",
            "4",
            "--out",
            str(out),
            "--quiet",
        ]
        assert main(args) == 0
        outs.append(out)
    for f in ("events.jsonl", "trace.json"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    # the trace-only events (lock hooks, mmemu markers) stay out of the tracepoint log
    log = (outs[0] / "events.jsonl").read_bytes()
    assert b'"lock_acquired"' not in log and b'"mmemu_' not in log
    assert b'"held by cpu' in (outs[0] / "trace.json").read_bytes()


def _run(out: Path, *extra: str) -> Path:
    args = ["run", "default", "--set", "memory=512M", "--set", "duration=4ms"]
    args += ["--set", "cpus=4", "--seed", "3", "--out", str(out), "--quiet", *extra]
    assert main(args) == 0
    return out


def _events(doc: dict) -> list[dict]:
    return doc["traceEvents"]


def _lock_tracks(doc: dict) -> dict[int, str]:
    return {
        e["tid"]: e["args"]["name"]
        for e in _events(doc)
        if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == PID_LOCKS
    }


def test_events_log_is_the_same_with_and_without_the_trace(tmp_path: Path) -> None:
    traced = _run(tmp_path / "traced")
    plain = _run(tmp_path / "plain", "--no-trace")
    assert (traced / "events.jsonl").read_bytes() == (plain / "events.jsonl").read_bytes()
    doc = json.loads((traced / "trace.json").read_text())
    check_trace(doc)
    other = doc["otherData"]
    assert other["trace_locks"] == "zone" and other["trace_only_events"] > 0
    summary = json.loads((traced / "summary.json").read_text())
    with (traced / "events.jsonl").open() as f:
        assert sum(1 for _ in f) == summary["engine"]["events"]


def test_selected_trace_events_go_to_the_log_and_the_trace_is_unchanged(tmp_path: Path) -> None:
    """``--events '*'`` sends the lock hooks and markers to events.jsonl too; the trace built
    as the run went (from two merged streams) is the one built from that log afterwards, and
    the one of the default run: the merge keeps emission order."""
    default = _run(tmp_path / "default")
    everything = _run(tmp_path / "all", "--events", "*")
    log = (everything / "events.jsonl").read_text()
    assert '"lock_acquired"' in log and '"mmemu_alloc_begin"' in log
    assert '"mmemu_free_begin"' in log and '"contention_begin"' in log

    def body(path: Path) -> list[dict]:
        return _events(json.loads(path.read_text()))

    streamed = body(everything / "trace.json")
    assert streamed == body(default / "trace.json")
    write_trace(everything, out=tmp_path / "afterwards.json")
    assert streamed == body(tmp_path / "afterwards.json")


@pytest.mark.parametrize("policy", ["zone", "contended", "all"])
def test_trace_locks_policy(tmp_path: Path, policy: str) -> None:
    out = _run(tmp_path / policy, "--trace-locks", policy)
    doc = json.loads((out / "trace.json").read_text())
    check_trace(doc)
    tracks = _lock_tracks(doc)
    holds = [e for e in _events(doc) if e["ph"] == "X" and e.get("cat") == "lock_hold"]
    waits = [e for e in _events(doc) if e["ph"] == "X" and e.get("cat") == "lock_wait"]
    held = {tracks[e["tid"]].split(" ")[0] for e in holds}
    pcp_holds = [e for e in holds if tracks[e["tid"]].startswith("pcp->lock")]
    zone_holds = [e for e in holds if tracks[e["tid"]].startswith("zone->lock")]
    assert doc["otherData"]["trace_locks"] == policy
    if policy == "all":
        # every CPU's own pcp->lock is taken on each allocation and free
        pcp_cpus = {n.split(":")[1] for n in held if n.startswith("pcp->lock:")}
        assert pcp_cpus == {f"cpu{i}" for i in range(4)}
        assert len(pcp_holds) > len(zone_holds) > 0
    elif policy == "zone":
        assert not pcp_holds and zone_holds
    else:
        # only holds someone waited behind: each overlaps a wait for the same lock
        assert len(holds) <= len(waits)
        for h in holds:
            lock = tracks[h["tid"]].split(" ")[0]
            assert any(
                w["args"]["lock"] == lock
                and w["ts"] <= h["ts"] + h["dur"]
                and w["ts"] + w["dur"] >= h["ts"]
                for w in waits
            ), h


def test_trace_locks_rejects_an_unknown_policy(tmp_path: Path) -> None:
    try:
        rc = main(["run", "default", "--trace-locks", "some", "--out", str(tmp_path / "x")])
    except SystemExit as exc:  # argparse's choices error
        rc = exc.code
    assert rc == 2
    assert not (tmp_path / "x").exists()
