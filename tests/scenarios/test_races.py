"""The race catalogue (scenarios/races/): each race shows up as a property violation under
explored schedules with its mitigation off, and in none of the same schedules with it on.

Schedules are explored by a loop over seeds with the ``random`` and ``pct`` strategies, with
``perturb`` (delays at the kernel's unlocked windows as well as the order of actors ready at one
instant: the races here are about timing as much as order). Each run is a pure function of
scenario, parameters and seed, so a failure here is rerun by ``mmemu run races/NAME --set
seed=N --set strategy=S --set perturb=true --set mitigation.X=off``."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.mm.reclaim import vmscan
from emulator.runner import RunResult, run_scenario
from emulator.scenario import bundled_scenarios, load_scenario

STRATEGIES = ("random", "pct")


def explore(name: str, runs: int, **overrides: Any) -> list[RunResult]:
    """Run ``races/name`` under ``runs`` schedules (seeds 1.., random and pct alternately,
    perturbed)."""
    sc = load_scenario(bundled_scenarios()[f"races/{name}"])
    out = []
    for i in range(runs):
        params = sc.resolve(
            {"perturb": True, **overrides, "seed": i + 1, "strategy": STRATEGIES[i % 2]}
        )
        res = run_scenario(sc, params, record=False)
        out.append(res)
    return out


def violating(results: list[RunResult], prop: str) -> list[int]:
    """Seeds of the runs that violated ``prop``."""
    return [r.params.seed for r in results if any(v.property == prop for v in r.violations)]


def test_stolen_page_capture() -> None:
    off = explore("stolen_page", 4, **{"mitigation.capture": "off"})
    on = explore("stolen_page", 4)
    assert violating(off, "compaction_success_honoured")
    assert violating(on, "compaction_success_honoured") == []
    # the effect: with capture the compactor gets every THP it asked for, without it the
    # other CPUs take blocks it compacted
    assert all(r.ctx.findings["thp"]["compactor_failed"] == 0 for r in on)
    assert sum(r.ctx.findings["thp"]["thieves"] for r in off) > 0


def test_pcp_hidden_block_drain_after_reclaim() -> None:
    off = explore("pcp_hidden_block", 2, **{"mitigation.drain_after_reclaim": "off"})
    on = explore("pcp_hidden_block", 2)
    assert violating(off, "no_failure_with_pcp_pages") == [1, 2]
    assert violating(on, "no_failure_with_pcp_pages") == []
    assert all(r.ctx.findings["probe"] == {"ok": 1, "failed": 0} for r in on)


def test_concurrent_shrinkers_scan_a_list_others_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    inside: list[int] = [0, 0]  # now, most at once
    stops: list[int] = [0]
    scan = vmscan.slab_scan_objects

    async def counting(pa: Any, cpu: Any, nid: int, nr: int) -> int:
        inside[0] += 1
        inside[1] = max(inside)
        try:
            ret = await scan(pa, cpu, nid, nr)
        finally:
            inside[0] -= 1
        stops[0] += ret == vmscan.SHRINK_STOP or ret < nr  # emptied under it
        return ret

    monkeypatch.setattr(vmscan, "slab_scan_objects", counting)
    results = explore("concurrent_shrinkers", 4)
    assert inside[1] >= 2  # reclaimers scanned the one cache at the same time
    assert stops[0] > 0  # and found it emptied by the others (a short batch or SHRINK_STOP)
    assert all(r.reason == "deadline" and not r.violations for r in results)
    assert all(len(r.ctx.allocator.shrinkers[0].pages) == 0 for r in results)


def test_async_contention_abort() -> None:
    off = explore("async_contention", 2, **{"mitigation.async_contended_abort": "off"})
    on = explore("async_contention", 2)
    assert violating(off, "async_compaction_bounded") == [1, 2]
    assert violating(on, "async_compaction_bounded") == []
    # without the abort no async compaction that ran over the limit ended COMPACT_CONTENDED
    assert all("ended contended" not in v.message for r in off for v in r.violations)


def test_shared_migration_source_skip_claim() -> None:
    off = explore("shared_migration_source", 2, **{"mitigation.skip_claim": "off"})
    on = explore("shared_migration_source", 2)
    assert violating(off, "private_migration_source") == [1, 2]
    assert violating(on, "private_migration_source") == []


def test_fallback_mixing_alloc_nofragment() -> None:
    off = explore("fallback_mixing", 2, **{"mitigation.alloc_nofragment": "off"})
    on = explore("fallback_mixing", 2)
    assert violating(off, "no_avoidable_mixing") == [1, 2]
    assert violating(on, "no_avoidable_mixing") == []


def test_watermark_then_lost_has_no_mitigation() -> None:
    """No 6.12 mechanism closes this window: explored schedules show it, and so does fifo."""
    explored = explore("watermark_then_lost", 2)
    assert violating(explored, "watermark_honoured") == [1, 2]
    for r in explored:
        lost = r.ctx.allocator.watermark_ok_lost[4]
        assert lost > 0 and r.ctx.findings["order4"]["ok"] == r.params["blocks"]


def test_compaction_herd_deferral() -> None:
    off = explore("compaction_herd", 2, **{"mitigation.compaction_deferral": "off"})
    on = explore("compaction_herd", 2)
    assert violating(off, "compaction_herd_bounded") == [1, 2]
    assert violating(on, "compaction_herd_bounded") == []


def test_drain_refill_races_even_with_the_drain() -> None:
    """The drain is a snapshot: frees landing after it re-hide a block. Under fifo the frees
    end before the drain and it finds the block; explored schedules delay them past it."""
    fifo = run_scenario(
        sc := load_scenario(bundled_scenarios()["races/drain_refill"]), sc.resolve(), record=False
    )
    assert fifo.violations == [] and fifo.ctx.findings["probe"]["ok"] == 1
    on = explore("drain_refill", 4)
    off = explore("drain_refill", 4, **{"mitigation.drain_after_reclaim": "off"})
    assert violating(on, "no_failure_with_pcp_pages")  # the race, with the mitigation on
    assert violating(off, "no_failure_with_pcp_pages") == [1, 2, 3, 4]
