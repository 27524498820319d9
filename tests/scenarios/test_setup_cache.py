"""The machine after a scenario's set-up, cached: a run from the cache is byte-identical to one
that built the machine (events, kernel files, decisions, summary), and a damaged entry is
rebuilt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulator.cli import main
from emulator.report.results import kernel_files
from emulator.runner import RunOptions, run_scenario
from emulator.scenario import find_scenario, load_scenario
from emulator.setup_cache import SetupCache

WALL = {"wall_s", "setup_s"}


def _run(
    name: str, sets: dict[str, str], tmp: Path, cache: SetupCache | None, record: bool = True
) -> dict[str, Any]:
    scenario = load_scenario(find_scenario(name))
    params = scenario.resolve(sets)
    tmp.mkdir()
    result = run_scenario(
        scenario,
        params,
        events=tmp / "events.jsonl" if record else None,
        record=record,
        options=RunOptions(cache=cache),
    )
    summary = {k: v for k, v in result.summary().to_json().items() if k not in WALL}
    return {
        "events": (tmp / "events.jsonl").read_bytes() if record else b"",
        "kernel": kernel_files(result),
        "decisions": list(result.ctx.sim.decisions),
        "summary": json.dumps(summary, sort_keys=True),
    }


@pytest.mark.parametrize(
    ("name", "sets"),
    [
        ("default", {"memory": "512M", "duration": "8ms", "strategy": "random", "seed": "5"}),
        ("pcp_hiding", {"memory": "256M", "duration": "5ms"}),
    ],
)
def test_a_run_from_the_cache_is_byte_identical(
    tmp_path: Path, name: str, sets: dict[str, str]
) -> None:
    cache = SetupCache(tmp_path / "cache", min_setup_s=0.0)
    plain = _run(name, sets, tmp_path / "plain", None)
    stored = _run(name, sets, tmp_path / "stored", cache)
    assert cache.last == "stored"
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 1
    hit = _run(name, sets, tmp_path / "hit", cache)
    assert cache.last == "hit"
    assert plain["events"]  # the run recorded something to compare
    for key in ("events", "kernel", "decisions", "summary"):
        assert stored[key] == plain[key], key
        assert hit[key] == plain[key], key


def test_a_machine_stored_by_a_run_without_events_serves_no_recording_run(
    tmp_path: Path,
) -> None:
    """``mmemu sweep`` and ``--no-events`` store machines whose recorder is the null one; a
    recording run of the same parameters must not load them (it would record nothing)."""
    cache = SetupCache(tmp_path / "cache", min_setup_s=0.0)
    sets = {"memory": "256M", "duration": "3ms"}
    plain = _run("default", sets, tmp_path / "plain", None)
    quiet = _run("default", sets, tmp_path / "quiet", cache, record=False)
    assert cache.last == "stored"
    assert quiet["kernel"] == plain["kernel"]  # the same run, only unrecorded
    recorded = _run("default", sets, tmp_path / "recorded", cache)
    assert cache.last == "stored"  # its own entry
    assert recorded["events"] == plain["events"]
    assert _run("default", sets, tmp_path / "again", cache)["events"] == plain["events"]
    assert cache.last == "hit"
    _run("default", sets, tmp_path / "quiet2", cache, record=False)
    assert cache.last == "hit"
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 2


def test_another_seed_or_parameter_is_another_entry(tmp_path: Path) -> None:
    cache = SetupCache(tmp_path / "cache", min_setup_s=0.0)
    sets = {"memory": "256M", "duration": "2ms"}
    _run("default", sets, tmp_path / "a", cache)
    _run("default", {**sets, "seed": "2"}, tmp_path / "b", cache)
    assert cache.last == "stored"
    _run("default", {**sets, "released": "0.5"}, tmp_path / "c", cache)
    assert cache.last == "stored"
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 3


def test_a_damaged_entry_is_rebuilt_and_replaced(tmp_path: Path) -> None:
    cache = SetupCache(tmp_path / "cache", min_setup_s=0.0)
    sets = {"memory": "256M", "duration": "4ms"}
    plain = _run("default", sets, tmp_path / "plain", None)
    _run("default", sets, tmp_path / "first", cache)
    (entry,) = (tmp_path / "cache").glob("*.pickle")
    entry.write_bytes(entry.read_bytes()[:1000])  # truncated, as a killed writer would leave it
    again = _run("default", sets, tmp_path / "again", cache)
    assert cache.last == "stored"
    assert again["events"] == plain["events"]
    assert entry.stat().st_size > 1000


def test_cli_stores_and_reuses_the_set_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mmemu run`` uses the cache in MMEMU_CACHE_DIR; ``--no-cache`` and MMEMU_CACHE=off do
    not touch it. (The default scenario's 4 GiB set-up is slow enough to be stored.)"""
    where = tmp_path / "cache"
    monkeypatch.setenv("MMEMU_CACHE_DIR", str(where))
    args = ["run", "default", "--set", "duration=1ms", "--quiet", "--no-trace"]
    assert main([*args, "--no-cache", "--out", str(tmp_path / "a")]) == 0
    assert not where.exists()
    monkeypatch.setenv("MMEMU_CACHE", "off")
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert not where.exists()
    monkeypatch.delenv("MMEMU_CACHE")
    assert main([*args, "--out", str(tmp_path / "c")]) == 0
    assert len(list(where.glob("*.pickle"))) == 1
    assert main([*args, "--out", str(tmp_path / "d")]) == 0
    for run in "bcd":
        got = (tmp_path / run / "events.jsonl").read_bytes()
        assert got == (tmp_path / "a" / "events.jsonl").read_bytes(), run
