"""A results folder holds one run, and a refused or failed run leaves ``--out`` as it was:
stale files, default folder names, bad scenario writes, read-only and full disks, replays of
stopped and --from-proc runs, strict schedule checks, --from-proc shapes, bundled names before
files, and what a run says before it starts."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from emulator.cli import main
from emulator.report.outputs import SummaryFiles
from emulator.runner import Run
from emulator.scenario import bundled_scenarios, find_scenario

SMALL = ["--set", "memory=256M", "--set", "duration=2ms", "--set", "cpus=2", "--quiet"]
ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "tests" / "mm" / "data" / "live-6.18"


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(argv)
    return rc, capsys.readouterr().err


def _tree(d: Path) -> dict[str, str]:
    """Every file under ``d`` with its sha256 (what a refused run must not change)."""
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def _no_partials(out: Path) -> None:
    left = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not left, left


# -- one run per folder -------------------------------------------------------------------


def test_a_rerun_with_fewer_outputs_leaves_no_stale_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "o"
    assert main(["run", "default", "--out", str(out), "--seed", "1", *SMALL]) == 0
    assert (out / "trace.json").is_file() and (out / "events.jsonl").is_file()
    args = ["run", "default", "--out", str(out), "--seed", "2", "--no-trace", "--no-events"]
    assert main([*args, *SMALL]) == 0
    assert not (out / "trace.json").exists() and not (out / "events.jsonl").exists()
    assert json.loads((out / "summary.json").read_text())["seed"] == 2
    rc, err = _run(capsys, ["trace", str(out)])
    assert rc == 2 and "no events.jsonl" in err
    _no_partials(out)


def test_the_default_folder_names_strategy_and_quantum_and_is_never_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "default", *SMALL]) == 0
    assert main(["run", "default", "--strategy", "random", *SMALL]) == 0
    assert main(["run", "default", "--quantum", "1us", *SMALL]) == 0
    names = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert len(names) == 3, names
    assert any("random" in n for n in names) and any("quantum=1000ns" in n for n in names)
    # the same run again replaces its own folder; another run in a folder of that name is
    # never overwritten
    base = tmp_path / "results" / next(n for n in names if "random" not in n and "quantum" not in n)
    summary = json.loads((base / "summary.json").read_text())
    summary["params"]["rate"] = -1.0  # now it holds some other run
    (base / "summary.json").write_text(json.dumps(summary))
    assert main(["run", "default", *SMALL]) == 0
    assert (base.parent / f"{base.name}-2" / "summary.json").is_file()
    assert json.loads((base / "summary.json").read_text())["params"]["rate"] == -1.0


def test_a_replay_without_out_never_overwrites_the_run_it_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "default", *SMALL]) == 0
    (run,) = (tmp_path / "results").iterdir()
    before = _tree(run)
    assert main(["run", "--replay", str(run / "schedule.json"), "--quiet"]) == 0
    assert _tree(run) == before
    assert len(list((tmp_path / "results").iterdir())) == 2


def test_out_holding_other_files_is_refused_untouched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    rc, err = _run(capsys, ["run", "default", "--out", str(out), *SMALL])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "notes.txt" in err, err
    assert _tree(out) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}


# -- bad input never touches --out -------------------------------------------------------


def _writes_scenario(tmp_path: Path, writes: str) -> Path:
    f = tmp_path / "writes.py"
    f.write_text(
        textwrap.dedent(
            f"""
            from emulator.scenario import Scenario
            from emulator.workload import AllocClass, Phase, Workload

            def build(p):
                return Workload([Phase("s", [AllocClass(0, "GFP_KERNEL", lifetime="exp(10us)")],
                                       rate=10000.0)])

            def raising(p):
                raise RuntimeError("boom")

            SCENARIO = Scenario("w", "writes", build, writes={writes},
                                defaults={{"memory": "256M", "cpus": 2, "duration": "1ms"}})
            """
        )
    )
    return f


@pytest.mark.parametrize(
    ("writes", "needle"),
    [
        ("None", "writes must be a list"),
        ("5", "writes must be a list"),
        ('[("0", "vm.compact_memory", "1", None)]', "cpu must be an integer"),
        ('[("0", "vm.compact_memory", "1", [0])]', "cpu must be an integer"),
        ('[("0", "vm.compact_memory", "1", 7)]', "cpu 7 out of range"),
        ('[("0", "vm.compact_memory")]', "expected (time, path, value[, cpu])"),
        ('[("soon", "vm.compact_memory", "1")]', "duration"),
        ("raising", "writes() failed: RuntimeError: boom"),
    ],
)
def test_bad_writes_are_one_line_and_leave_out_as_it_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, writes: str, needle: str
) -> None:
    out = tmp_path / "o"
    assert main(["run", "default", "--out", str(out), *SMALL]) == 0
    before = _tree(out)
    f = _writes_scenario(tmp_path, writes)
    rc, err = _run(capsys, ["run", str(f), "--out", str(out), "--quiet"])
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert "internal error" not in err
    assert _tree(out) == before
    _no_partials(out)


def test_writes_after_the_end_are_reported(tmp_path: Path) -> None:
    f = _writes_scenario(
        tmp_path, '[("500us", "vm.compact_memory", "1"), ("5s", "vm.compact_memory", "1")]'
    )
    out = tmp_path / "o"
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["findings"]["writes_after_end"] == [
        {"at_ns": 5_000_000_000, "path": "vm.compact_memory", "value": "1", "cpu": 0}
    ]
    assert len(s["findings"]["writes"]) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir(mode=0o500)
    rc, err = _run(capsys, ["run", "default", "--out", str(out), *SMALL])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not writable" in err, err


@pytest.mark.parametrize("where", ["events", "results"])
def test_no_space_left_keeps_the_old_run_and_removes_temporaries(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    out = tmp_path / "o"
    assert main(["run", "default", "--out", str(out), *SMALL]) == 0
    before = _tree(out)

    def full(*_a: Any, **_k: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "events":
        import emulator.engine.recorder as recorder

        monkeypatch.setattr(recorder._Sink, "_flush", full)
    else:
        monkeypatch.setattr(SummaryFiles, "write", full)
    rc, err = _run(capsys, ["run", "default", "--out", str(out), "--seed", "9", *SMALL])
    assert rc == 1, err
    assert len(err.strip().splitlines()) == 1 and "no space left on device" in err, err
    assert _tree(out) == before
    _no_partials(out)


# -- every run replays ----------------------------------------------------------------------


def _start(out: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "emulator", "run", "--out", str(out), "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_an_interrupted_run_replays_to_where_it_stopped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "o"
    long = ["--set", "memory=256M", "--set", "cpus=2", "--set", "duration=3600s"]
    proc = _start(out, "default", *long, "--strategy", "random", "--set", "sample=100ms")
    deadline = time.monotonic() + 120
    while not any(
        (d / "events.jsonl").is_file() and (d / "events.jsonl").stat().st_size > 200_000
        for d in tmp_path.glob(".o.*.partial")
    ):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    sched = json.loads((out / "schedule.json").read_text())
    assert sched["stopped"]["reason"] == "interrupted" and sched["decisions"]
    rc, err = _run(
        capsys, ["run", "--replay", str(out / "schedule.json"), "--out", str(tmp_path / "r")]
    )
    assert rc == 0, err
    assert "exact to where the recorded run stopped" in err
    lines = sched["stopped"]["events_lines"]
    replayed = (tmp_path / "r" / "events.jsonl").read_bytes().splitlines(keepends=True)
    assert b"".join(replayed[:lines]) == (out / "events.jsonl").read_bytes()


def test_a_from_proc_run_replays_from_its_snapshot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "o"
    proc = tmp_path / "proc"
    shutil.copytree(LIVE, proc)
    argv = ["run", "zone_lock_storm", "--from-proc", str(proc), "--out", str(out), "--quiet"]
    assert main([*argv, "--set", "duration=100us", "--set", "sample=10us"]) == 0
    shutil.rmtree(proc)  # the replay needs only the schedule
    sched = json.loads((out / "schedule.json").read_text())
    assert set(sched["from_proc"]) == {"buddyinfo", "pagetypeinfo", "zoneinfo"}
    rc, err = _run(
        capsys, ["run", "--replay", str(out / "schedule.json"), "--out", str(tmp_path / "r")]
    )
    assert rc == 0 and "replay of" in err and "exact" in err, err
    assert (tmp_path / "r" / "events.jsonl").read_bytes() == (out / "events.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"delays": "false"}, "delays must be true or false"),
        ({"delays": 0}, "delays must be true or false"),
        ({"scenario_sha256": None}, "records no scenario_sha256"),
        ({"events_sha256": None}, "events_sha256 must be a string"),
        ({"params_sha256": None}, "params_sha256 must be a string"),
        ({"decisions_sha256": None}, "decisions_sha256 must be a string"),
        ({"events_recorded": None}, "events_recorded must be true or false"),
        ({"stopped": {"reason": "interrupted"}}, "stopped must be"),
        ({"from_proc": {"buddyinfo": "x"}}, "from_proc_sha256"),
    ],
)
def test_schedule_checks_are_strict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, edit: dict[str, Any], needle: str
) -> None:
    out = tmp_path / "o"
    assert main(["run", "default", "--out", str(out), *SMALL]) == 0
    sched = json.loads((out / "schedule.json").read_text())
    sched.update(edit)
    f = tmp_path / "s.json"
    f.write_text(json.dumps(sched))
    rc, err = _run(capsys, ["run", "--replay", str(f), "--out", str(tmp_path / "r")])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "r").exists()


# -- --from-proc consistency ---------------------------------------------------------------


def _proc(tmp_path: Path, buddy: str | None = None, **zoneinfo_edits: tuple[str, str]) -> Path:
    d = tmp_path / "proc"
    d.mkdir()
    if buddy is not None:
        (d / "buddyinfo").write_text(buddy)
        return d
    shutil.copy(LIVE / "buddyinfo", d / "buddyinfo")
    text = (LIVE / "zoneinfo").read_text()
    for old, new in zoneinfo_edits.values():
        assert old in text
        text = text.replace(old, new, 1)
    (d / "zoneinfo").write_text(text)
    return d


_ROW = " ".join(["1"] * 11)


@pytest.mark.parametrize(
    ("buddy", "edits", "needle"),
    [
        (f"Node 0, zone DMA {_ROW}\nNode 5, zone Normal {_ROW}\n", {}, "nodes 0, 5"),
        (f"Node 1, zone Normal {_ROW}\n", {}, "nodes 1"),
        (f"Node 9999, zone Normal {_ROW}\n", {}, "nodes 9999"),
        (None, {"a": ("start_pfn:           1048576", "start_pfn:           5000")}, "overlap"),
        (None, {"a": ("managed  3840", "managed  4000")}, "managed 4000 > present 3998"),
        (None, {"a": ("present  3998", "present  5000")}, "present 5000 > spanned 4095"),
        (None, {"a": ("managed  196608", "managed  1000")}, "free pages > managed 1000"),
    ],
)
def test_impossible_proc_snapshots_are_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    buddy: str | None,
    edits: dict[str, tuple[str, str]],
    needle: str,
) -> None:
    proc = _proc(tmp_path, buddy, **edits)
    out = tmp_path / "o"
    rc, err = _run(
        capsys, ["run", "default", "--from-proc", str(proc), "--out", str(out), "--quiet"]
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert needle in err and "internal error" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("name", ["memory", "nodes"])
def test_from_proc_refuses_setting_the_machine_size(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    argv = ["run", "default", "--from-proc", str(LIVE), "--out", str(tmp_path / "o")]
    rc, err = _run(capsys, [*argv, "--set", f"{name}=1G" if name == "memory" else f"{name}=2"])
    assert rc == 2 and "--from-proc takes the machine's" in err, err


# -- bundled names and saying what is about to happen --------------------------------------


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_bare_name_is_the_bundled_scenario_even_with_a_file_of_that_name_here(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if kind == "file":
        (tmp_path / "compaction_test").write_bytes(b"\x7fELF selftest binary")
    else:
        (tmp_path / "compaction_test").mkdir()
    args = ["run", "compaction_test", "--out", str(tmp_path / "o")]
    rc, err = _run(capsys, [*args, *[a for a in SMALL if a != "--quiet"]])
    assert rc == 0, err
    assert "scenario compaction_test (bundled:" in err
    rc, err = _run(capsys, ["run", "./compaction_test", "--out", str(tmp_path / "p"), *SMALL])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err


def test_a_catalogue_name_is_the_bundled_race_scenario(tmp_path: Path) -> None:
    """``races/NAME`` names a bundled race scenario though it has a ``/``; a path to a real
    file still wins when the name is no bundled scenario."""
    assert find_scenario("races/stolen_page") == bundled_scenarios()["races/stolen_page"]
    own = tmp_path / "races" / "mine.py"
    own.parent.mkdir()
    own.write_text("")
    assert find_scenario(str(own)) == own


def test_a_big_run_says_how_much_it_will_write(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class _Started(BaseException):
        pass

    def stub(*_a: Any, **_k: Any) -> None:
        raise _Started

    monkeypatch.setattr(Run, "execute", stub)
    capsys.readouterr()
    with pytest.raises(_Started):
        main(["run", "default", "--set", "duration=60s", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert "expect about" in err and "GB of events and trace" in err, err
    with pytest.raises(_Started):
        main(
            ["run", "default", "--set", "duration=60s", "--no-events", "--out", str(tmp_path / "o")]
        )
    assert "expect about" not in capsys.readouterr().err
