"""`mmemu trace`: the event log as trace-cmd report lines with the kernel's TP_printk formats."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.report.ftrace import format_event, write_ftrace
from emulator.report.perfetto import read_events

# the line shape ftrace parsers (e.g. perf's and trace-cmd's python bindings, pandas readers)
# split on: TASK-PID [CPU] SECONDS: EVENT: FIELDS
LINE = re.compile(
    r"^\s*(?P<comm>\S+)-(?P<pid>\d+)\s+\[(?P<cpu>\d{3})\]\s+(?P<ts>\d+\.\d{6}):\s+"
    r"(?P<event>\w+):\s+(?P<fields>.*)$"
)
MM_PAGE_ALLOC = re.compile(
    r"^page=[0-9a-f]{16} pfn=0x[0-9a-f]+ order=\d+ migratetype=\d+ gfp_flags=[A-Z_|]+$"
)
MM_PAGE_FREE = re.compile(r"^page=[0-9a-f]{16} pfn=0x[0-9a-f]+ order=\d+$")


def test_every_event_is_one_parseable_line(small_run: Path) -> None:
    out = io.StringIO()
    events = list(read_events(small_run / "events.jsonl"))
    n = write_ftrace(events, out, cpus=4)
    text = out.getvalue().splitlines()
    assert text[0] == "cpus=4"
    assert n == len(events) == len(text) - 1
    last = 0.0
    for line, ev in zip(text[1:], events, strict=True):
        m = LINE.match(line)
        assert m, line
        assert m["event"] == ev["event"]
        assert float(m["ts"]) >= last
        last = float(m["ts"])
        if ev["actor"].startswith("cpu"):
            assert int(m["cpu"]) == int(ev["actor"][3:])
        if ev["event"] == "mm_page_alloc":
            assert MM_PAGE_ALLOC.match(m["fields"]), m["fields"]
            if ev["pfn"] >= 0:
                assert f"pfn={ev['pfn']:#x} order={ev['order']} " in m["fields"]
            else:  # the kernel prints a NULL page and pfn 0 on failure
                assert m["fields"].startswith("page=0000000000000000 pfn=0x0 ")
        elif ev["event"] == "mm_page_free":
            assert MM_PAGE_FREE.match(m["fields"]), m["fields"]


def test_compaction_tracepoints_use_the_kernel_formats() -> None:
    begin = {
        "event": "mm_compaction_begin",
        "zone_start": 0x1000,
        "migrate_pfn": 0x1000,
        "free_pfn": 0x3FE00,
        "zone_end": 0x40000,
        "sync": False,
    }
    assert format_event(begin) == (
        "zone_start=0x1000 migrate_pfn=0x1000 free_pfn=0x3fe00 zone_end=0x40000, mode=async"
    )
    end = {**begin, "event": "mm_compaction_end", "sync": True, "status": 8}
    assert format_event(end).endswith("zone_end=0x40000, mode=sync status=success")
    assert format_event({**end, "status": "partial_skipped"}).endswith("status=partial_skipped")
    suitable = {"event": "mm_compaction_suitable", "nid": 0, "idx": 2, "order": 9, "ret": 4}
    assert format_event(suitable) == "node=0 zone=Normal   order=9 ret=continue"
    deferred = {
        "event": "mm_compaction_deferred",
        "nid": 0,
        "idx": 1,
        "order": 9,
        "order_failed": 9,
        "considered": 3,
        "defer_shift": 2,
    }
    assert format_event(deferred) == (
        "node=0 zone=DMA32    order=9 order_failed=9 consider=3 limit=4"
    )
    iso = {
        "event": "mm_compaction_isolate_migratepages",
        "start_pfn": 0x200,
        "end_pfn": 0x400,
        "nr_scanned": 512,
        "nr_taken": 32,
    }
    assert format_event(iso) == "range=(0x200 ~ 0x400) nr_scanned=512 nr_taken=32"
    wake = {"event": "mm_compaction_kcompactd_wake", "nid": 1, "order": -1, "highest_zoneidx": 2}
    assert format_event(wake) == "nid=1 order=-1 classzone_idx=Normal  "
    assert format_event({"event": "mm_vmscan_kswapd_wake", "nid": 0, "zid": 2, "order": 3}) == (
        "nid=0 order=3"
    )
    assert (
        format_event({"event": "contention_begin", "lock_addr": "zone->lock:0:Normal", "flags": 1})
        == "zone->lock:0:Normal (flags=SPIN)"
    )


def test_trace_cli_filters_and_errors(small_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(small_run), "-e", "mm_page_free", "-t"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "cpus=4" and len(lines) > 10
    assert all(" mm_page_free: " in line for line in lines[1:])
    assert all(re.search(r"\] \d+\.\d{9}: ", line) for line in lines[1:])
    assert main(["trace", str(small_run / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a results folder" in err


def test_summary_has_the_cpu_count(small_run: Path) -> None:
    assert json.loads((small_run / "summary.json").read_text())["params"]["cpus"] == 4
