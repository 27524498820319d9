"""schedule.json: a random or PCT run replays byte for byte; a damaged schedule is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from emulator.cli import main

SMALL = ["--set", "memory=512M", "--set", "duration=4ms", "--quiet", "--strict"]


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_replay_reproduces_an_explored_run(tmp_path: Path, strategy: str) -> None:
    a = tmp_path / "a"
    argv = ["run", "default", "--out", str(a), "--seed", "9", "--strategy", strategy]
    assert main([*argv, "--perturb", *SMALL]) == 0
    sched = json.loads((a / "schedule.json").read_text())
    assert sched["strategy"]["name"] == strategy and len(sched["decisions"]) > 0
    b = tmp_path / "b"
    assert main(["run", "--replay", str(a / "schedule.json"), "--out", str(b), "--quiet"]) == 0
    assert (a / "events.jsonl").read_bytes() == (b / "events.jsonl").read_bytes()
    if strategy == "pct":
        return  # PCT's change points (drawn over 10 000 steps) may not fall in so short a run
    # random delays at the allocator's preemption points take another schedule than fifo
    c = tmp_path / "c"
    assert main(["run", "default", "--out", str(c), "--seed", "9", *SMALL]) == 0
    assert (a / "events.jsonl").read_bytes() != (c / "events.jsonl").read_bytes()


def test_truncated_schedule_diverges_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = tmp_path / "a"
    assert main(["run", "default", "--out", str(a), "--strategy", "random", *SMALL]) == 0
    sched = json.loads((a / "schedule.json").read_text())
    half = len(sched["decisions"]) // 2
    sched["decisions"] = sched["decisions"][:half]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(sched))
    capsys.readouterr()
    # an edited schedule is refused up front: its digest no longer matches
    assert main(["run", "--replay", str(bad), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "decisions were edited" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
    # with the digest made to match (as if the model had changed under the schedule), the
    # replay runs, diverges, exits 1 and names the first decision it could not follow
    sched["decisions_sha256"] = hashlib.sha256(
        json.dumps(sched["decisions"], sort_keys=True).encode()
    ).hexdigest()
    bad.write_text(json.dumps(sched))
    assert main(["run", "--replay", str(bad), "--out", str(tmp_path / "c"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"replay diverged at decision {half}" in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [("{", "not JSON"), ('{"format": "x"}', "not a schedule"), ("", "not JSON")],
)
def test_bad_schedule_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    f = tmp_path / "s.json"
    f.write_text(content)
    assert main(["run", "--replay", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
