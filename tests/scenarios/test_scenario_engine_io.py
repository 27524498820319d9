"""The engine's run-level options seen from the CLI: ``--events`` tracepoint filters (only the
matching events are written, the summary counts the rest) and ``--driver`` (the fast driver and
the trio-task reference driver write byte-identical results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli import main

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
