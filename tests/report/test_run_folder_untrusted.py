"""Results folders read as untrusted input by ``mmemu trace``, ``compactsnoop``, ``plot`` and
``diff``: a cut-short last line (what a killed run leaves), garbage and non-object lines,
missing fields, wrong types, binary files and directories in place of files. A view uses the
complete lines and names the first bad one on stderr (exit 0), or refuses with one line and
exit 2 when nothing usable remains; never an internal error."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.report.run_folder import EventLog, RunFolderError, load_summary

VIEWS: dict[str, Callable[[Path, Path], list[str]]] = {
    "trace": lambda d, _tmp: ["trace", str(d)],
    "compactsnoop": lambda d, _tmp: ["compactsnoop", "-e", str(d)],
    "plot": lambda d, tmp: ["plot", str(d), "--out", str(tmp / "plots")],
    "diff": lambda d, _tmp: ["diff", str(d), str(d)],
}


def _copy(small_run: Path, tmp: Path) -> Path:
    d = tmp / "run"
    shutil.copytree(small_run, d, ignore=shutil.ignore_patterns("plots", "trace.json"))
    return d


def _lines(d: Path) -> list[str]:
    return (d / "events.jsonl").read_text().splitlines(keepends=True)


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_refusal(rc: int, err: str) -> None:
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_cut_short_last_line_is_skipped_and_named(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], view: str
) -> None:
    d = _copy(small_run, tmp_path)
    lines = _lines(d)
    cut = "".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]
    (d / "events.jsonl").write_text(cut)
    rc, out, err = _run(capsys, VIEWS[view](d, tmp_path))
    assert rc == 0, err
    assert f"events.jsonl:{len(lines)}: cut short" in err, err
    assert len(err.strip().splitlines()) == 1, err
    if view == "trace":  # every complete line is printed
        assert len(out.splitlines()) == 1 + len(lines) - 1


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("garbage here\n", "not JSON"),
        ("[1, 2, 3]\n", "a list, not an event object"),
        ('"text"\n', "a string, not an event object"),
        ('{"actor": "cpu0", "event": "mm_page_alloc"}\n', "no time 't'"),
        ('{"t": "soon", "actor": "cpu0", "event": "mm_page_alloc"}\n', "'t' is a string"),
        ('{"t": 5, "actor": ["cpu0"], "event": "mm_page_free"}\n', "'actor' is a list"),
        ('{"t": 5, "actor": "cpu0", "event": 7}\n', "no 'event' name"),
        ('{"t": 5, "actor": "cpu0", "event": "x", "pfn": {"a": 1}}\n', "field 'pfn' is an object"),
        (b"\xff\xfe\x00binary\n", "not UTF-8"),
    ],
)
def test_a_bad_line_among_good_ones_is_named(
    small_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    view: str,
    bad: str | bytes,
    why: str,
) -> None:
    d = _copy(small_run, tmp_path)
    lines = _lines(d)
    raw = "".join(lines[:3]).encode() + (bad if isinstance(bad, bytes) else bad.encode())
    (d / "events.jsonl").write_bytes(raw + "".join(lines[3:]).encode())
    rc, _out, err = _run(capsys, VIEWS[view](d, tmp_path))
    assert rc == 0, err
    assert f"events.jsonl:4: {why}" in err, err
    assert "internal error" not in err


@pytest.mark.parametrize("view", ["compactsnoop", "plot", "diff"])
def test_events_missing_fields_or_of_wrong_types_are_rejected_not_crashed_on(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], view: str
) -> None:
    d = _copy(small_run, tmp_path)
    bad = [
        {"t": 10, "actor": "cpu0", "event": "mm_page_alloc", "pfn": "x", "order": 0},
        {"t": 11, "actor": "cpu0", "event": "mm_page_alloc"},
        {"t": 12, "actor": "cpu1", "event": "mm_compaction_begin", "zone_start": "DMA"},
        {"t": 13, "actor": "cpu1", "event": "contention_begin"},
        {"t": 14, "actor": "kcompactd0", "event": "mm_compaction_kcompactd_wake", "order": "x"},
    ]
    text = "".join(json.dumps(e) + "\n" for e in bad)
    (d / "events.jsonl").write_text(text + (d / "events.jsonl").read_text())
    rc, _out, err = _run(capsys, VIEWS[view](d, tmp_path))
    assert rc == 0, err
    assert "internal error" not in err


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize(
    "content", ["", "garbage\n", "garbage\n{not json either\n", b"\x00\x01\x02\xff" * 64]
)
def test_nothing_usable_is_one_line_and_exit_2(
    small_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    view: str,
    content: str | bytes,
) -> None:
    d = _copy(small_run, tmp_path)
    raw = content if isinstance(content, bytes) else content.encode()
    (d / "events.jsonl").write_bytes(raw)
    rc, _out, err = _run(capsys, VIEWS[view](d, tmp_path))
    if content == "":  # an empty log (a run recording nothing) is not an error
        assert rc == 0, err
        return
    _one_line_refusal(rc, err)
    assert "events.jsonl" in err


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("name", ["events.jsonl", "summary.json", "zoneinfo", "buddyinfo"])
def test_a_directory_in_place_of_a_file(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], view: str, name: str
) -> None:
    d = _copy(small_run, tmp_path)
    (d / name).unlink()
    (d / name).mkdir()
    rc, _out, err = _run(capsys, VIEWS[view](d, tmp_path))
    assert rc in (0, 2), err
    if rc == 2:
        _one_line_refusal(rc, err)
    assert "internal error" not in err
    if name in ("events.jsonl", "summary.json") and not (view == "plot" and name == "events.jsonl"):
        assert rc == 2, err


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize(
    ("summary", "why"),
    [
        ("{", "not JSON"),
        ("[]", "should hold a JSON object, not a list"),
        (b"\xff\x00", "not UTF-8"),
        ('{"params": {"cpus": [1]}}', "params.cpus"),
        ('{"params": 3}', "field 'params' should be an object"),
        ('{"timeseries": {"t_ns": "x"}}', "t_ns"),
        ('{"timeseries": {"t_ns": [1, 2], "nr_free_pages": [1]}}', "nr_free_pages has 1"),
        ('{"timeseries": {"free_pages_per_order": [["a"]]}}', "free_pages_per_order[0][0]"),
        ('{"virtual_ns": "long"}', "virtual_ns"),
        ('{"allocations": {"nine": {}}}', "allocations.nine"),
    ],
)
def test_a_bad_summary_is_one_line_naming_the_field(
    small_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    view: str,
    summary: str | bytes,
    why: str,
) -> None:
    d = _copy(small_run, tmp_path)
    (d / "summary.json").write_bytes(summary if isinstance(summary, bytes) else summary.encode())
    rc, _out, err = _run(capsys, VIEWS[view](d, tmp_path))
    _one_line_refusal(rc, err)
    assert why in err, err


def test_a_summary_missing_fields_still_serves_the_views(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _copy(small_run, tmp_path)
    (d / "summary.json").write_text('{"scenario": "default", "reason": "interrupted"}')
    for view in sorted(VIEWS):
        rc, _out, err = _run(capsys, VIEWS[view](d, tmp_path))
        assert rc == 0, (view, err)


@pytest.mark.parametrize("name", ["zoneinfo", "buddyinfo", "vmstat"])
def test_garbage_kernel_files(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    d = _copy(small_run, tmp_path)
    for content in (b"Node x, zone ???\n", b"\xff\xfe\x00"):
        (d / name).write_bytes(content)
        for view in sorted(VIEWS):
            rc, _out, err = _run(capsys, VIEWS[view](d, tmp_path))
            assert rc in (0, 2), (view, err)
            assert "internal error" not in err, (view, err)
            if rc == 2:
                _one_line_refusal(rc, err)


def test_plot_out_at_a_file_or_an_unwritable_place(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _copy(small_run, tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    rc, _out, err = _run(capsys, ["plot", str(d), "--out", str(a_file)])
    _one_line_refusal(rc, err)
    assert "not a folder" in err
    rc, _out, err = _run(capsys, ["plot", str(d), "--out", str(a_file / "sub")])
    _one_line_refusal(rc, err)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        rc, _out, err = _run(capsys, ["plot", str(d), "--out", str(locked / "p")])
        _one_line_refusal(rc, err)
    sweep = ["plot", "--sweep", str(d), "--x", "seed", "--y", "virtual_ns"]
    rc, _out, err = _run(capsys, [*sweep, "--out", str(tmp_path / "nowhere" / "s.png")])
    _one_line_refusal(rc, err)


def test_plot_sweep_prints_the_path_it_wrote(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = ["plot", "--sweep", str(small_run), "--x", "seed", "--y", "virtual_ns"]
    rc, out, err = _run(capsys, [*sweep, "--out", str(tmp_path / "fig")])
    assert rc == 0, err
    written = out.split(" (")[0]
    assert written == str(tmp_path / "fig.png") and Path(written).is_file()
    rc, out, err = _run(capsys, [*sweep, "--out", str(tmp_path)])
    assert rc == 0, err
    written = out.split(" (")[0]
    assert Path(written).parent == tmp_path and Path(written).is_file()


def test_event_log_counts_and_first_bad_line(tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    f.write_bytes(b'{"t":1,"event":"a"}\nnope\n{"t":2,"event":"b"}\n{"t":3,"ev')
    log = EventLog(f)
    assert [e["t"] for e in log] == [1, 2]
    assert (log.good, log.bad, log.first_bad) == (2, 2, (2, "not JSON (Expecting value)"))
    assert log.warning() == f"{f}:2: not JSON (Expecting value) (2 bad lines skipped)"
    log.require_usable()
    f.write_bytes(b"nope\n")
    log = EventLog(f)
    assert list(log) == []
    with pytest.raises(RunFolderError, match="no usable event"):
        log.require_usable()


def test_summary_reads_back_typed(small_run: Path) -> None:
    s = load_summary(small_run)
    assert s.scenario == "default" and s.cpus == 4 and s.reason == "deadline"
    assert len(s.timeseries.t_ns) == len(s.timeseries.free_pages_per_order) > 1
