"""The race catalogue (scenarios/races/): each race shows up as a property violation under
explored schedules with its mitigation off, and in none of the same schedules with it on.

Races 1, 7 and 10 (stolen_page; kcompactd_cached_positions and final_compaction;
shared_migration_source) pass under the default schedule: only explored ones expose them, as
``mmemu explore --perturb`` draws them (PCT, its change points spread over the default
schedule's steps; ``pct_schedules``).

Schedules are explored by a loop over seeds with the ``random`` and ``pct`` strategies, with
``perturb`` (delays at the kernel's unlocked windows as well as the order of actors ready at one
instant: the races here are about timing as much as order). Each run is a pure function of
scenario, parameters and seed, so a failure here is rerun by ``mmemu run races/NAME --set
seed=N --set strategy=S --set perturb=true --set mitigation.X=off``."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from emulator.explore.schedules import Outcome, RunSpec, run_schedule
from emulator.mm.reclaim import vmscan
from emulator.runner import RunOptions, RunResult, run_scenario
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


def pct_schedules(name: str, seeds: range, **overrides: Any) -> tuple[Outcome, list[Outcome]]:
    """``races/name``'s default (fifo) schedule and the PCT schedules ``seeds`` with perturb,
    as ``mmemu explore races/NAME --perturb --seed S`` runs them."""
    path = str(bundled_scenarios()[f"races/{name}"])
    sc = load_scenario(path)
    params = sc.resolve({**overrides, "strategy": "pct", "perturb": True}).as_json()
    fifo = run_schedule(RunSpec(path, params, "fifo", perturb=True))
    steps = len(fifo.decisions)
    spec = RunSpec(path, params, "pct", steps=steps, perturb=True)
    return fifo, [run_schedule(attrs.evolve(spec, schedule_seed=s)) for s in seeds]


def pct_violating(outcomes: list[Outcome], prop: str) -> list[int]:
    """Schedule seeds of the outcomes that violated ``prop``."""
    return [o.spec.schedule_seed for o in outcomes if any(v.property == prop for v in o.violations)]


def violating(results: list[RunResult], prop: str) -> list[int]:
    """Seeds of the runs that violated ``prop``."""
    return [r.params.seed for r in results if any(v.property == prop for v in r.violations)]


def test_stolen_page_needs_an_explored_schedule_and_capture_closes_it() -> None:
    prop = "compaction_success_honoured"
    fifo, off = pct_schedules("stolen_page", range(1, 5), **{"mitigation.capture": "off"})
    assert not fifo.violated  # the default schedule's polls miss every window
    assert pct_violating(off, prop) == [2, 3]
    fifo_on, on = pct_schedules("stolen_page", range(1, 5))
    assert not fifo_on.violated and pct_violating(on, prop) == []


def test_stolen_page_shows_under_every_schedule_with_a_fast_thief() -> None:
    off = explore("stolen_page", 2, **{"mitigation.capture": "off", "poll": "2us"})
    on = explore("stolen_page", 2, poll="2us")
    assert violating(off, "compaction_success_honoured") == [1, 2]
    assert violating(on, "compaction_success_honoured") == []
    # the effect: with capture the compactor gets every THP it asked for, without it the
    # other CPU takes blocks it compacted
    assert all(r.ctx.findings["thp"]["compactor_failed"] == 0 for r in on)
    assert all(r.ctx.findings["thp"]["thieves"] > 0 for r in off)


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


def test_shared_migration_source_needs_an_explored_schedule_and_the_claim_closes_it() -> None:
    prop = "private_migration_source"
    over = {"mitigation.skip_claim": "off"}
    fifo, off = pct_schedules("shared_migration_source", range(9, 13), **over)
    assert not fifo.violated  # 100 us apart, the default schedule keeps their blocks apart
    assert pct_violating(off, prop) == [10]
    _, on = pct_schedules("shared_migration_source", range(9, 13))
    assert pct_violating(on, prop) == []


def test_shared_migration_source_shows_under_every_schedule_when_they_start_together() -> None:
    together = {"cpus": 4, "stagger": 0}
    off = explore("shared_migration_source", 2, **together, **{"mitigation.skip_claim": "off"})
    on = explore("shared_migration_source", 2, **together)
    assert violating(off, "private_migration_source") == [1, 2]
    assert violating(on, "private_migration_source") == []


def test_kcompactd_and_a_direct_compactor_meet_at_the_cached_positions() -> None:
    prop = "private_migration_source"
    over = {"mitigation.skip_claim": "off"}
    fifo, off = pct_schedules("kcompactd_cached_positions", range(1, 5), **over)
    assert not fifo.violated
    found = pct_violating(off, prop)
    assert found
    # the two compactors that met are kcompactd and the CPU faulting THPs
    msg = next(v.message for o in off for v in o.violations if v.property == prop)
    assert "kcompactd0" in msg and "cpu0-thp" in msg
    _, on = pct_schedules("kcompactd_cached_positions", range(1, 5))
    assert pct_violating(on, prop) == []


def test_the_final_compaction_priority_needs_an_explored_schedule_and_whole_zone() -> None:
    prop = "final_compaction_covers_zone"
    fifo, off = pct_schedules("final_compaction", range(1, 5), **{"mitigation.whole_zone": "off"})
    assert not fifo.violated  # kcompactd puts the positions back at the edges first
    assert pct_violating(off, prop) == [3]
    msg = next(v.message for o in off for v in o.violations if v.property == prop)
    assert "started at cached positions" in msg
    _, on = pct_schedules("final_compaction", range(1, 5))
    assert pct_violating(on, prop) == []
    # either way the allocation fails: nothing in the zone can be moved
    assert all(o.reason == "deadline" for o in off + on)


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


RACES = sorted(n.removeprefix("races/") for n in bundled_scenarios() if n.startswith("races/"))


@pytest.mark.parametrize("name", RACES)
def test_race_scenario_touches_shared_state_only_when_synchronised(name: str) -> None:
    """Strict mode under a 1 µs sync quantum with its mitigation defaults: a scenario's own
    actors reach the kernel (a wakeup, an allocation) only at a synchronised instant, as the
    model's do. A scenario actor that delays and then wakes kcompactd without synchronising
    fails here with PrimitiveMisuse."""
    sc = load_scenario(bundled_scenarios()[f"races/{name}"])
    params = sc.resolve({"quantum": "1us", "duration": "1ms", "memory": "64M", "seed": 3})
    res = run_scenario(sc, params, record=False, options=RunOptions(strict=True))
    assert res.error is None, res.error
