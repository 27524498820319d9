"""The compaction_test scenario (tools/testing/selftests/mm/compaction_test.c) meets the
selftest's criterion with vm.compact_unevictable_allowed=1 (the mlocked pages between the
unmapped chunks are migrated: more than a quarter of 80% of MemFree becomes huge pages) and
obtains much less with 0 (mlocked pages cannot be isolated), and summary.json carries the
verdict as "scenario_result".
"""

from __future__ import annotations

from pathlib import Path

from emulator.run.summary import RunSummary
from emulator.runner import run_scenario
from emulator.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "compaction_test.py"


def run(allowed: int) -> RunSummary:
    sc = load_scenario(SCENARIO)
    params = sc.resolve({"memory": "512M", "vm.compact_unevictable_allowed": allowed})
    res = run_scenario(sc, params, record=False)
    assert res.error is None
    return res.summary()


def test_compaction_test_passes_with_unevictable_compaction_and_not_without() -> None:
    on = run(1)
    r1 = on.scenario_result
    assert r1["passed"] is True
    assert r1["huge_pages"] >= r1["needed"] > 0
    assert on.vmstat_delta["compact_stall"] > 0
    assert on.vmstat_delta["pgmigrate_success"] > 0

    off = run(0)
    r0 = off.scenario_result
    assert r0["passed"] is False
    assert r0["needed"] == r1["needed"]
    assert r0["huge_pages"] * 4 < r1["needed"]  # much less
