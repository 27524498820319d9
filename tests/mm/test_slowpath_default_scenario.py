"""The default scenario under the kernel's default ``transparent_hugepage/defrag=madvise``:
THP faults in MADV_HUGEPAGE regions go through the slow path and direct compaction
(compact_stall, compact_success, pgmigrate_success > 0); the others fail fast and fall back
to base pages (thp_fault_fallback > 0); summary.json carries the slow path's outcome per
order; the run is a pure function of its seed.
"""

from __future__ import annotations

from emulator.run.summary import RunSummary
from emulator.runner import run_scenario
from emulator.scenario import bundled_scenarios, load_scenario


def run(seed: int) -> RunSummary:
    sc = load_scenario(bundled_scenarios()["default"])
    res = run_scenario(sc, sc.resolve({"duration": "200ms", "seed": seed}), record=False)
    res.ctx.allocator.check()
    return res.summary()


def test_default_scenario_thp_faults_both_ways_and_deterministic() -> None:
    a = run(1)
    v = a.vmstat_delta
    for name in (
        "compact_stall",
        "compact_success",
        "pgmigrate_success",
        "thp_fault_alloc",
        "thp_fault_fallback",
    ):
        assert v.get(name, 0) > 0, name
    # compact_stall counts every direct compaction that was not SKIPPED; each ends in
    # exactly one of compact_success / compact_fail
    assert v["compact_stall"] == v["compact_success"] + v.get("compact_fail", 0)
    sp = a.slowpath[9]
    # the unmadvised faults fail in the slow path with the fast path's reason (no direct
    # reclaim: only the MIN-watermark retries), one fallback per failed fault
    assert sp.failed.get("watermark_high_order", 0) > 0
    assert sp.succeeded_after_compaction == v["compact_success"]
    assert sp.captured <= sp.succeeded_after_compaction
    assert sp.would_oom == 0
    assert a.vmstat["thp_fault_alloc"] >= v["thp_fault_alloc"]
    b = run(1)
    assert a.vmstat_delta == b.vmstat_delta
    assert a.slowpath == b.slowpath
    assert a.virtual_ns == b.virtual_ns
