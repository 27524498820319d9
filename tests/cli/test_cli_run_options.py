"""`mmemu run` options a new user meets first: trace-only --events with --no-trace, replaying
a schedule from another folder, units on every duration, the kcompactd line of the summary,
and `mmemu list --params`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from rich.cells import cell_len

from emulator.cli import main

SMALL = ["--set", "memory=256M", "--set", "duration=3ms", "--set", "cpus=2"]


def test_no_trace_still_records_trace_only_events_it_selects(tmp_path: Path) -> None:
    out = tmp_path / "r"
    rc = main(
        [
            "run",
            "default",
            *SMALL,
            "--out",
            str(out),
            "--quiet",
            "--no-trace",
            "--events",
            "contention_*,mmemu_alloc_begin,mm_page_alloc",
        ]
    )
    assert rc == 0
    assert not (out / "trace.json").exists()
    names = {json.loads(line)["event"] for line in (out / "events.jsonl").open()}
    assert "mmemu_alloc_begin" in names and "mm_page_alloc" in names
    begins = sum('"mmemu_alloc_begin"' in line for line in (out / "events.jsonl").open())
    allocs = sum('"mm_page_alloc"' in line for line in (out / "events.jsonl").open())
    assert begins == allocs > 0


def test_replay_from_another_folder_finds_a_relative_scenario_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "pcp_hiding.py"
    shutil.copy(scenario, work / "mine.py")
    monkeypatch.chdir(work)
    assert main(["run", "mine.py", *SMALL, "--out", "res", "--quiet"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    rc = main(["run", "--replay", str(work / "res" / "schedule.json"), "--out", "again"])
    assert rc == 0, capsys.readouterr().err
    assert "exact" in capsys.readouterr().err
    # a schedule copied away from its scenario file: found beside the schedule
    moved = tmp_path / "moved"
    moved.mkdir()
    sched = json.loads((work / "res" / "schedule.json").read_text())
    sched["scenario_path"] = "mine.py"
    (moved / "schedule.json").write_text(json.dumps(sched))
    shutil.copy(work / "mine.py", moved / "mine.py")
    assert main(["run", "--replay", str(moved / "schedule.json"), "--out", "third", "--quiet"]) == 0
    os.remove(moved / "mine.py")
    assert main(["run", "--replay", str(moved / "schedule.json"), "--out", "fourth"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mine.py" in err and "mmemu run FILE --replay" in err


def test_warmup_needs_a_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["run", "proactive", "--set", "warmup=600000000", "--out", str(tmp_path / "r")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "warmup" in err and "unit" in err


def test_summary_says_why_kcompactd_made_no_proactive_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["run", "default", *SMALL, "--out", str(tmp_path / "r"), "--no-events"])
    assert rc == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("kcompactd0:"))
    assert "no proactive pass" in line and "500 ms" in line and "duration" in line


def test_list_params_defaults_to_the_default_scenario_in_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["list", "--params"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("default:")
    assert "cost.alloc_entry" in out and "vm.compaction_proactiveness" in out
    assert max(cell_len(line) for line in out.splitlines()) <= 80


def test_from_proc_says_what_it_read_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = Path(__file__).resolve().parents[1] / "mm" / "data" / "live-6.18"
    proc = tmp_path / "proc"
    shutil.copytree(live, proc)
    (proc / "vmstat").write_text("nr_free_pages 1\n")
    argv = ["run", "zone_lock_storm", "--from-proc", str(proc), "--out", str(tmp_path / "o")]
    assert main([*argv, "--set", "duration=100us", "--set", "sample=10us"]) == 0
    note = next(x for x in capsys.readouterr().err.splitlines() if "--from-proc" in x)
    assert "buddyinfo" in note and "vmstat not read" in note and "set-up skipped" in note
