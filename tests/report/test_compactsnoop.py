"""`mmemu compactsnoop`: bcc compactsnoop's columns, one line per compact_zone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.mm.procfs.parse import parse_zoneinfo
from emulator.report.compactsnoop import compactions, format_compactsnoop, header
from emulator.report.run_folder import load_summary


def _fake_run(src: Path, dst: Path, events: list[dict]) -> Path:
    """A results folder with the real run's zoneinfo and summary and the given events."""
    dst.mkdir()
    for name in ("zoneinfo", "summary.json"):
        shutil.copy(src / name, dst / name)
    (dst / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return dst


def _dma32(run: Path) -> tuple[int, int, int, int]:
    """The 1 GiB machine's main zone (DMA32: Normal starts above 4 GiB)."""
    snap = parse_zoneinfo((run / "zoneinfo").read_text())
    z = next(z for n in snap.nodes for z in n.zones if z.name == "DMA32")
    return z.start_pfn, z.wmark_min, z.wmark_low, z.wmark_high


def test_header_is_bccs() -> None:
    assert header().split() == ["COMM", "PID", "NODE", "ZONE", "ORDER", "MODE", "LAT(ms)", "STATUS"]
    assert header(extended=True).split() == [
        "COMM",
        "PID",
        "NODE",
        "ZONE",
        "ORDER",
        "MODE",
        "FRAGIDX",
        "MIN",
        "LOW",
        "HIGH",
        "FREE",
        "LAT(ms)",
        "STATUS",
    ]


def test_direct_and_kcompactd_compactions(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, wmin, wlow, whigh = _dma32(small_run)
    zone = {
        "zone_start": start,
        "migrate_pfn": start,
        "free_pfn": start + 1000,
        "zone_end": start + 2048,
    }
    events = [
        {
            "t": 1_000_000,
            "actor": "cpu2",
            "event": "mm_compaction_try_to_compact_pages",
            "order": 9,
            "gfp_mask": "GFP_TRANSHUGE_LIGHT",
            "prio": 2,
        },
        {"t": 1_000_100, "actor": "cpu2", "event": "mm_compaction_begin", **zone, "sync": False},
        {
            "t": 1_500_100,
            "actor": "cpu2",
            "event": "mm_compaction_end",
            **zone,
            "sync": False,
            "status": 8,
        },
        {
            "t": 2_000_000,
            "actor": "kcompactd0",
            "event": "mm_compaction_kcompactd_wake",
            "nid": 0,
            "order": -1,
            "highest_zoneidx": 2,
        },
        {
            "t": 2_000_000,
            "actor": "kcompactd0",
            "event": "mm_compaction_begin",
            **zone,
            "sync": True,
        },
        {
            "t": 5_250_000,
            "actor": "kcompactd0",
            "event": "mm_compaction_end",
            **zone,
            "sync": True,
            "status": "complete",
        },
    ]
    run = _fake_run(small_run, tmp_path / "run", events)
    got = list(compactions(events, run, load_summary(run)))
    assert [(c.comm, c.order, c.sync, c.lat_ns, c.status) for c in got] == [
        ("cpu2", 9, False, 500_000, "success"),
        ("kcompactd0", -1, True, 3_250_000, "complete"),
    ]
    assert got[0].zone == "ZONE_DMA32" and got[0].node == 0
    assert (got[0].wmark_min, got[0].wmark_low, got[0].wmark_high) == (wmin, wlow, whigh)
    assert got[0].free is not None and got[0].free > 0
    assert -1000 <= got[0].fragindex <= 1000
    line = format_compactsnoop(got[0])
    assert line.split() == ["cpu2", "1002", "0", "ZONE_DMA32", "9", "ASYNC", "0.500", "success"]
    assert main(["compactsnoop", str(run), "-e"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    cols = out[2].split()
    assert cols[:6] == ["kcompactd0", "100", "0", "ZONE_DMA32", "-1", "SYNC"]
    assert cols[7:10] == [str(wmin), str(wlow), str(whigh)]
    assert cols[-2:] == ["3.250", "complete"]


def test_real_run_lists_every_compaction(
    small_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = sum('"mm_compaction_end"' in line for line in (small_run / "events.jsonl").open())
    assert main(["compactsnoop", str(small_run)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + n
