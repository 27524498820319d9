"""Every stop keeps its results: SIGINT, SIGTERM, SIGHUP, a second signal while
the results are written, and SIGINT during the set-up. The CLI runs as a subprocess and gets
real signals; the tests wait for the run to reach a stage (a file appearing), never for a time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator.report.results import KERNEL_FILES

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

ROOT = Path(__file__).resolve().parents[2]

#: a run far longer than any test waits: only a signal ends it
LONG = ["--set", "memory=256M", "--set", "cpus=2", "--set", "duration=3600s"]
LONG += ["--set", "sample=100ms"]


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


def _wait_for(pred, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 120  # a safety net against a hung test, not a timing claim
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"mmemu exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"mmemu never reached {what}")
        time.sleep(0.02)


def _partial(out: Path) -> list[Path]:
    """The folder a run is writing (it becomes ``out`` when the results are complete)."""
    return sorted(out.parent.glob(f".{out.name}.*.partial"))


def _events_started(out: Path) -> bool:
    return any(
        (d / "events.jsonl").is_file() and (d / "events.jsonl").stat().st_size > 0
        for d in _partial(out)
    )


def _check_results(out: Path, reason: str, stop_instant: bool = False) -> dict:
    s = json.loads((out / "summary.json").read_text())
    assert s["reason"] == reason
    for name in ("schedule.json", *KERNEL_FILES):
        assert (out / name).is_file(), name
    text = (out / "events.jsonl").read_text()
    assert text == "" or text.endswith("\n"), "a cut last line"
    events = [json.loads(line) for line in text.splitlines()]  # complete lines only
    if events and stop_instant:
        # no event after the instant the run stopped at (the engine drops them)
        assert events[-1]["t"] <= s["virtual_ns"]
    json.loads((out / "schedule.json").read_text())
    return s


@pytest.mark.parametrize(
    ("sig", "reason", "status"),
    [
        (signal.SIGINT, "interrupted", 130),
        (signal.SIGTERM, "terminated", 143),
        (signal.SIGHUP, "hangup", 129),
    ],
)
def test_a_signal_during_the_run_writes_everything(
    tmp_path: Path, sig: signal.Signals, reason: str, status: int
) -> None:
    out = tmp_path / "o"
    proc = _start(out, "default", *LONG)
    _wait_for(lambda: _events_started(out), proc, "the run")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    s = _check_results(out, reason)
    assert 0 < s["virtual_ns"] < 3600 * 10**9


def test_a_second_signal_while_results_are_written_does_not_lose_them(tmp_path: Path) -> None:
    out = tmp_path / "o"
    proc = _start(out, "default", *LONG)
    _wait_for(lambda: _events_started(out), proc, "the run")
    proc.send_signal(signal.SIGINT)
    # the second signal lands while the run stops and its results are written
    for _ in range(5):
        time.sleep(0.03)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    _check_results(out, "interrupted")


def test_sigint_during_the_set_up_writes_the_results(tmp_path: Path) -> None:
    out = tmp_path / "o"
    # a large machine: the default scenario's set-up (its fragmented past) takes seconds
    proc = _start(out, "default", "--set", "memory=16G", "--set", "duration=1s")
    _wait_for(lambda: any((d / "events.jsonl").is_file() for d in _partial(out)), proc, "set-up")
    time.sleep(0.5)  # into the set-up, past the boot (either stage must be handled)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    s = json.loads((out / "summary.json").read_text())
    assert s["reason"] == "interrupted"
    if "stage" not in s:  # stopped after the boot: the state then is written
        assert s["virtual_ns"] == 0
        _check_results(out, "interrupted")


def test_events_of_a_stopped_run_end_at_its_stop_instant(tmp_path: Path) -> None:
    """events.jsonl and summary.json's virtual_ns agree after a stop (the engine drops what
    actors that ran ahead recorded after the stop instant)."""
    out = tmp_path / "o"
    proc = _start(out, "default", *LONG)
    _wait_for(lambda: _events_started(out), proc, "the run")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    _check_results(out, "interrupted", stop_instant=True)
