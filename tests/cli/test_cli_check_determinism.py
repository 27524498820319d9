"""``mmemu run --check-determinism`` runs twice and names the first event that differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.cli import main

DATA = Path(__file__).parents[1] / "explore" / "data"


def test_a_nondeterministic_scenario_is_named_at_its_first_differing_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = str(DATA / "nondeterministic.py")
    rc = main(["run", scenario, "--check-determinism", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("mmemu run: nondeterministic: event ")
    assert '"event":"mmemu_probe"' in line and '"run":1' in line and '"run":2' in line


def test_a_deterministic_run_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", str(DATA / "tie_race.py"), "--set", "duration=100us", "--check-determinism"]
    rc = main([*argv, "--strategy", "random", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "a second run recorded the same events, byte for byte" in out


def test_check_determinism_needs_the_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(DATA / "tie_race.py"), "--check-determinism", "--no-events"]) == 2
    assert "drop --no-events" in capsys.readouterr().err
