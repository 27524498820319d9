"""``mmemu explore``: finds a violating schedule, shrinks it, writes a schedule file that
``mmemu run --replay`` reproduces byte for byte; refuses bad input with one line."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.explore.schedules import RunSpec, delays_of, non_default, run_schedule, shrink

RACE = str(Path(__file__).parent / "data" / "tie_race.py")
DELAY_RACE = str(Path(__file__).parent / "data" / "delay_race.py")


def test_explore_finds_shrinks_and_writes_an_exact_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "found"
    rc = main(["explore", RACE, "--runs", "12", "--jobs", "1", "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1, text
    assert "violating runs" in text
    assert re.search(r"distinct failure signatures +1\n", text), text
    assert "runs per minute" in text
    files = list(out.glob("*.schedule.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert doc["violation"]["property"] == "crash"
    assert "checker ran before setter" in doc["violation"]["message"]
    assert doc["explore"]["non_default_after"] == 1 < doc["explore"]["non_default_before"]
    assert len(non_default([tuple(d) for d in doc["decisions"]])) == 1
    assert f"replay: mmemu run --replay {files[0]}" in text
    # the printed command replays it exactly: same events, same crash
    rdir = tmp_path / "replayed"
    rc = main(["run", "--replay", str(files[0]), "--out", str(rdir)])
    err = capsys.readouterr().err
    assert "replay of" in err and ": exact" in err
    assert rc == 1 and "checker ran before setter" in err
    events = (rdir / "events.jsonl").read_bytes()
    assert hashlib.sha256(events).hexdigest() == doc["events_sha256"]


def test_a_clean_exploration_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explore", RACE, "--runs", "4", "--jobs", "1", "--check", "invariants"]
    rc = main([*argv, "--out", str(tmp_path / "o"), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert re.search(r"distinct failure signatures +0\n", text), text
    assert not (tmp_path / "o").exists()


def test_outcomes_do_not_depend_on_the_number_of_jobs() -> None:
    from emulator.explore.executor import run_many

    specs = [RunSpec(RACE, {}, "random", schedule_seed=s) for s in range(6)]
    one = dict(run_many(run_schedule, specs, jobs=1))
    two = dict(run_many(run_schedule, specs, jobs=2))
    assert one == two
    assert any(o.violated for o in one.values()) and not all(o.violated for o in one.values())


def test_shrinking_keeps_the_signature_and_is_deterministic() -> None:
    found = next(
        o
        for o in (run_schedule(RunSpec(RACE, {}, "random", schedule_seed=s)) for s in range(20))
        if o.violated and len(non_default(o.decisions)) >= 4
    )
    sig = found.signatures[0]
    a = shrink(found, sig, jobs=1)
    b = shrink(found, sig, jobs=2)
    assert a == b
    assert sig in a.outcome.signatures
    assert a.after == 1 < a.before
    # the shrunk decisions replay exactly with the strict replay strategy
    replayed = run_schedule(RunSpec(RACE, {}, "replay", decisions=a.outcome.decisions))
    assert replayed.events_sha256 == a.outcome.events_sha256
    assert replayed.signatures == a.outcome.signatures


def test_shrinking_halves_the_delays_to_what_the_failure_needs() -> None:
    """delay_race fails only when the setter is held back more than ``window`` (2000 ns) in
    all: ddmin drops the churn's delays, then halving brings the one left down to the
    smallest power-of-two step above the window."""
    found = next(
        o
        for o in (
            run_schedule(RunSpec(DELAY_RACE, {}, "random", schedule_seed=s, perturb=True))
            for s in range(30)
        )
        if o.violated and delays_of(o.decisions)[0] >= 3
    )
    sig = found.signatures[0]
    r = shrink(found, sig, jobs=1)
    assert sig in r.outcome.signatures
    assert (r.delays_before, r.delay_ns_before) == delays_of(found.decisions)
    assert r.delays_after == 1 < r.delays_before
    assert 2000 < r.delay_ns_after <= 2 * 2000 + 1 < r.delay_ns_before
    assert r.after == 1
    replayed = run_schedule(
        RunSpec(DELAY_RACE, {}, "replay", decisions=r.outcome.decisions, perturb=True)
    )
    assert replayed.events_sha256 == r.outcome.events_sha256
    assert shrink(found, sig, jobs=2) == r


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--strategy", "fifo"], "--strategy 'fifo': valid are random, pct"),
        (["--runs", "0"], "--runs 0: out of range: valid 1..1000000"),
        (["--runs", "1_0"], "expected an integer"),
        (["--depth", "0"], "--depth 0: out of range: valid 1..64"),
        (["--jobs", "0"], "--jobs 0: out of range"),
        (["--check", "bogus"], "unknown check 'bogus'; valid are crash, deadlock"),
        (["--set", "strategy=pct"], "explore sets it"),
        (["--set", "memory=1T"], "memory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explore", RACE, *argv]) == 2
    err = capsys.readouterr().err
    assert why in err and len(err.strip().splitlines()) == 1, err


def test_a_scenario_hook_that_raises_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "badhook.py"
    bad.write_text(
        "from emulator.scenario import Scenario\n"
        "from emulator.workload import AllocClass, Phase, Workload\n"
        "def build(p):\n"
        "    return Workload([Phase('w', [AllocClass(0, 'GFP_KERNEL')], duration=None)])\n"
        "def actors(p, ctx):\n"
        "    raise RuntimeError('boom')\n"
        "SCENARIO = Scenario('badhook', 'x', build, defaults={'memory': '256M', 'cpus': 2},"
        " actors=actors)\n"
    )
    assert main(["explore", str(bad), "--runs", "2", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "actors() failed: RuntimeError: boom" in err and len(err.strip().splitlines()) == 1


def test_race_1_stolen_page_with_capture_off_is_found_shrunk_and_replayed_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "race1"
    argv = ["explore", "races/stolen_page", "--set", "mitigation.capture=off", "--perturb"]
    argv += ["--runs", "2", "--shrink-runs", "30"]
    assert main([*argv, "--jobs", "1", "--out", str(out), "--quiet"]) == 1
    text = capsys.readouterr().out
    # the default schedule passes; schedule 2 of PCT finds it
    assert "the default (fifo) schedule already violates" not in text
    assert re.search(r"compaction_success_honoured +1\n", text), text
    (found,) = out.glob("*.schedule.json")
    doc = json.loads(found.read_text())
    assert doc["violation"]["property"] == "compaction_success_honoured"
    ex = doc["explore"]
    assert ex["schedule_seed"] == 2
    assert ex["non_default_after"] <= 2 < ex["non_default_before"]
    assert ex["delays_after"] <= ex["delays_before"]
    assert ex["delay_ns_after"] < ex["delay_ns_before"]
    rdir = tmp_path / "replayed"
    assert main(["run", "--replay", str(found), "--out", str(rdir)]) == 1
    err = capsys.readouterr().err
    assert ": exact" in err
    assert f"rerun with --replay {found}" in err
    events = (rdir / "events.jsonl").read_bytes()
    assert hashlib.sha256(events).hexdigest() == doc["events_sha256"]
