"""The kthread scenarios end to end (scenarios/proactive.py, kcompactd_backoff.py): kcompactd
and kswapd run as daemons in every scenario, summary.json carries their per-node entries, and
the scenarios show the kernel's behaviour (marks, back-off)."""

from __future__ import annotations

import itertools

from emulator.runner import RunOptions, run_scenario
from emulator.scenario import bundled_scenarios, load_scenario

S = 1_000_000_000


def _run(name: str, **overrides: str):
    sc = load_scenario(bundled_scenarios()[name])
    return run_scenario(sc, sc.resolve(overrides), record=False, options=RunOptions(strict=True))


def test_proactive_pulls_the_score_back_to_the_low_mark() -> None:
    res = _run("proactive", duration="2600ms")
    s = res.summary()
    assert s.kcompactd is not None and s.kswapd is not None
    [kc] = s.kcompactd
    assert (kc.node, kc.low, kc.high) == (0, 80, 90)
    passes = kc.proactive_passes
    assert len(passes) >= 2
    for p in passes:
        # a pass starts only above the high mark, and ends at or below the low mark
        assert p.score_before > 90 and p.score_after <= 80 and p.pages_migrated > 0
    # on the 500 ms timer, which starts after the previous pass ends
    starts = [p.t_ns for p in passes]
    assert all(b - a >= 500 * 1_000_000 for a, b in itertools.pairwise(starts))
    # the node score is in the time series at every sample
    ts = s.series
    assert len(ts.fragmentation_score) == len(ts.t_ns) and len(ts.t_ns) > 40
    assert all(len(x) == 1 for x in ts.fragmentation_score)
    [ks] = s.kswapd
    assert ks.node == 0 and ks.runs <= ks.wakeups
    f = res.ctx.findings
    assert f["huge_pages_obtained"] == f["huge_page_attempts"] > 0
    res.ctx.allocator.check()


def test_kcompactd_backoff_waits_32s_after_a_pass_without_progress() -> None:
    res = _run("kcompactd_backoff", memory="512M", duration="34s")
    f = res.ctx.findings
    starts = f["proactive_pass_starts_s"]
    assert len(starts) == 2 and 0.5 <= starts[0] < 0.6
    assert 32.0 <= f["intervals_s"][0] < 32.1
    assert f["pages_migrated"] == 0
    assert all(after >= before for before, after in f["scores"])


def test_proactive_0_pays_direct_compaction_where_20_does_not() -> None:
    # the same huge-page demand
    on = _run("proactive", duration="2600ms").ctx.findings
    off = _run("proactive", duration="2600ms", **{"vm.compaction_proactiveness": "0"})
    f0 = off.ctx.findings
    assert on["proactive_passes"] >= 2 and f0["proactive_passes"] == 0
    assert on["compact_stall"] == 0  # kcompactd kept free 2 MiB blocks ready
    assert f0["compact_stall"] >= f0["huge_page_attempts"] // 2  # paid in the allocating task
    assert on["huge_pages_obtained"] == f0["huge_pages_obtained"]
    assert f0["latency_ns"]["p50"] > 100 * on["latency_ns"]["p50"]
    kcompactd = off.summary().kcompactd
    assert kcompactd is not None and kcompactd[0].wakeups.get("timer", 0) == 0


def test_thp_fault_storm_defer_wakes_the_daemons_instead_of_compacting() -> None:
    small = {"memory": "512M", "cpus": "2", "faults": "16", "duration": "300ms"}
    always = _run("thp_fault_storm", **small, **{"transparent_hugepage.defrag": "always"})
    defer = _run("thp_fault_storm", **small, **{"transparent_hugepage.defrag": "defer"})
    fa, fd = always.ctx.findings, defer.ctx.findings
    assert fa["faults"] == fd["faults"] == 16
    assert fa["compact_stall"] > 0 and fa["thp_fault_alloc"] > fd["thp_fault_alloc"]
    # defer: no direct reclaim or compaction; kswapd reclaims and kcompactd is woken
    assert fd["compact_stall"] == 0 and fd["pgsteal_direct"] == 0
    assert fd["kswapd_runs"] >= 1 and fd["pgsteal_kswapd"] > 0
    assert fd["compact_daemon_wake"] >= 1
    assert fd["fault_latency_ns"]["p90"] < fa["fault_latency_ns"]["p50"]
