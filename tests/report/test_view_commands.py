"""The view commands on a finished run: `mmemu trace -e`, `plot --sweep --y`, `diff`'s
formats, `compactsnoop` on a proactive pass, and `inspect` on this machine's /proc."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.report.compactsnoop import compactions
from emulator.report.diff import _delta, _fmt


def _tasks(text: str) -> dict[str, str]:
    """comm -> pid of every trace line."""
    out = {}
    for line in text.splitlines()[1:]:
        m = re.match(r"\s*(\S+)-(\d+) \[", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_trace_pids_do_not_depend_on_the_event_filter(
    small_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", str(small_run)]) == 0
    everything = _tasks(capsys.readouterr().out)
    kthreads = {c: p for c, p in everything.items() if c.startswith(("kswapd", "kcompactd"))}
    assert kthreads
    for event in ("mm_compaction_kcompactd_sleep", "mm_vmscan_kswapd_wake"):
        assert main(["trace", str(small_run), "-e", event]) == 0
        for comm, pid in _tasks(capsys.readouterr().out).items():
            assert everything[comm] == pid, (event, comm)


def test_trace_refuses_an_unknown_event(
    small_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", str(small_run), "-e", "mm_page_allocc"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'mm_page_allocc'" in err and "mm_page_alloc," in err


def test_trace_says_when_a_known_event_did_not_happen(
    small_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", str(small_run), "-e", "mm_page_free_batched"]) == 0
    assert "no mm_page_free_batched events" in capsys.readouterr().err


def test_sweep_with_a_missing_metric_lists_the_keys(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "plot",
            "--sweep",
            str(small_run),
            "--x",
            "cpus",
            "--y",
            "allocations.9.nope",
            "--out",
            str(tmp_path / "s.png"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "allocations.9.nope" in err
    assert re.search(r"allocations\.\{0,[0-9,]*\}\.\{attempts,", err)
    assert "lock_stat.{&zone->lock," in err and "contentions" in err


def test_diff_prints_fragindex_as_the_kernel_does_and_lock_times_in_us() -> None:
    key = "node 0 Normal fragindex order 9"
    assert _fmt(-1.0, key) == "-1.000" and _fmt(0.953, key) == "0.953"
    assert _delta(-1.0, 0.953, key) == "+1.953"  # no percentage of an index
    assert _delta(0.5, 0.75, "order 9 failure %") == "+0.25"
    assert _delta(100, 150, "pgfree") == "+50 (+50%)"


def test_diff_lock_stat_rows_are_in_us(small_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(small_run), str(small_run), "--json"]) == 0
    rows = {r["key"]: r["a"] for r in json.loads(capsys.readouterr().out)["sections"]["lock_stat"]}
    summary = json.loads((small_run / "summary.json").read_text())
    ns = summary["lock_stat"]["&zone->lock"]["waittime-max"]
    assert rows["&zone->lock waittime-max (µs)"] == round(ns / 1000, 2)


def test_compactsnoop_prints_minus_one_for_a_proactive_pass_after_a_wake(tmp_path: Path) -> None:
    zone = {"zone_start": 4096, "migrate_pfn": 4096, "free_pfn": 8000, "zone_end": 9000}
    kc = "kcompactd0"
    events = [
        {"t": 10, "actor": kc, "event": "mm_compaction_kcompactd_wake", "nid": 0, "order": 9},
        {"t": 20, "actor": kc, "event": "mm_compaction_begin", **zone, "sync": True},
        {"t": 30, "actor": kc, "event": "mm_compaction_end", **zone, "sync": True, "status": 4},
        {"t": 40, "actor": kc, "event": "mm_compaction_kcompactd_sleep", "nid": 0},
        # the 500 ms timer: a proactive pass, no wake-up event
        {"t": 500, "actor": kc, "event": "mm_compaction_begin", **zone, "sync": True},
        {"t": 900, "actor": kc, "event": "mm_compaction_end", **zone, "sync": True, "status": 4},
    ]
    got = [c.order for c in compactions(events, tmp_path)]
    assert got == [9, -1]


@pytest.mark.skipif(
    not os.access("/proc/sys/vm/compaction_proactiveness", os.R_OK), reason="no /proc/sys/vm"
)
def test_inspect_reads_this_machines_proc_sys(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/proc/buddyinfo").exists():
        pytest.skip("no /proc/buddyinfo")
    assert main(["inspect", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    text = json.dumps(doc)
    assert "unreadable" not in text
    want = int(Path("/proc/sys/vm/compaction_proactiveness").read_text())
    assert "compaction_proactiveness" in text
    assert main(["inspect"]) == 0
    out = capsys.readouterr().out
    assert f"vm.compaction_proactiveness = {want}  (/proc/sys/vm/compaction_proactiveness)" in out


def test_inspect_reads_a_saved_proc_folder_with_sys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not Path("/proc/buddyinfo").exists():
        pytest.skip("no /proc/buddyinfo")
    (tmp_path / "sys" / "vm").mkdir(parents=True)
    shutil.copy("/proc/buddyinfo", tmp_path / "buddyinfo")
    (tmp_path / "sys" / "vm" / "compaction_proactiveness").write_text("37\n")
    assert main(["inspect", "--proc", str(tmp_path)]) == 0
    assert "vm.compaction_proactiveness = 37" in capsys.readouterr().out
