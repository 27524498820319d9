"""Replays are exact or say where they are not."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from emulator import __version__
from emulator.cli import main
from emulator.scenario import bundled_scenarios

SMALL = ["--set", "memory=256M", "--set", "duration=3ms", "--set", "cpus=2", "--quiet"]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / "a"
    assert (
        main(["run", "default", "--out", str(out), "--strategy", "random", "--perturb", *SMALL])
        == 0
    )
    sched = json.loads((out / "schedule.json").read_text())
    assert len(sched["decisions"]) > 10
    return out, sched


def _replay(
    capsys: pytest.CaptureFixture[str], sched: dict[str, Any], tmp: Path
) -> tuple[int, str]:
    f = tmp / "edited.json"
    f.write_text(json.dumps(sched))
    capsys.readouterr()
    rc = main(["run", "--replay", str(f), "--out", str(tmp / "replay"), "--quiet"])
    return rc, capsys.readouterr().err


def test_schedule_records_version_and_digests(recorded: tuple[Path, dict[str, Any]]) -> None:
    out, sched = recorded
    assert sched["mmemu_version"] == __version__
    scenario = Path(bundled_scenarios()["default"]).read_bytes()
    assert sched["scenario_sha256"] == hashlib.sha256(scenario).hexdigest()
    assert sched["params_sha256"] == _digest(sched["params"])
    assert sched["decisions_sha256"] == _digest(sched["decisions"])
    events = (out / "events.jsonl").read_bytes()
    assert sched["events_sha256"] == hashlib.sha256(events).hexdigest()


def test_an_exact_replay_says_so_and_exits_0(
    recorded: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = recorded
    capsys.readouterr()
    rc = main(["run", "--replay", str(out / "schedule.json"), "--out", str(tmp_path / "b")])
    assert rc == 0
    assert "exact" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda s: s.update(mmemu_version="0.0.1"), "recorded with mmemu 0.0.1"),
        (lambda s: s.pop("mmemu_version"), "records no mmemu_version"),
        (lambda s: s["params"].update(cpus=4), "its params were edited"),
        (lambda s: s["decisions"].append([2, 0]), "its decisions were edited"),
        (lambda s: s["decisions"].__setitem__(3, [2, 1 - s["decisions"][3][1]]), "were edited"),
    ],
)
def test_a_schedule_that_cannot_replay_exactly_is_refused(
    recorded: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Any,
    needle: str,
) -> None:
    _, sched = recorded
    if needle == "were edited" and sched["decisions"][3][0] != 2:
        sched["decisions"][3] = [2, 0]
    edit(sched)
    rc, err = _replay(capsys, sched, tmp_path)
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "replay").exists()


def test_a_changed_scenario_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mine.py"
    shutil.copy(bundled_scenarios()["zone_lock_storm"], f)
    out = tmp_path / "a"
    assert main(["run", str(f), "--out", str(out), *SMALL]) == 0
    f.write_text(f.read_text().replace("2_000_000.0", "1_000_000.0"))
    capsys.readouterr()
    rc = main(["run", "--replay", str(out / "schedule.json"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "changed since the schedule was recorded" in err


def test_an_in_range_edit_with_matching_digest_is_detected(
    recorded: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even with the decisions' digest forged to match, the replay's events differ from the
    recording's and the replay exits 1 (before: "exact", exit 0)."""
    _, sched = recorded
    i = next(k for k, (n, _) in enumerate(sched["decisions"]) if n == 0)
    sched["decisions"][i] = [0, sched["decisions"][i][1] + 5000]
    sched["decisions_sha256"] = _digest(sched["decisions"])
    rc, err = _replay(capsys, sched, tmp_path)
    assert rc == 1, err
    assert "replay diverged" in err and len(err.strip().splitlines()) == 1, err


def test_extra_decisions_with_matching_digest_exit_1_naming_the_decision(
    recorded: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, sched = recorded
    n = len(sched["decisions"])
    sched["decisions"] += [[2, 0], [2, 1]]
    sched["decisions_sha256"] = _digest(sched["decisions"])
    rc, err = _replay(capsys, sched, tmp_path)
    assert rc == 1, err
    assert f"replay diverged at decision {n}" in err, err
    assert (tmp_path / "replay" / "summary.json").is_file()
