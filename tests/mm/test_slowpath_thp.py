"""THP faults against Linux 6.12.0 mm/huge_memory.c (vma_thp_gfp_mask, defrag_show/store,
THP_FAULT_ALLOC / THP_FAULT_FALLBACK) and mm/mempolicy.c (alloc_pages_mpol's hugepage rule):
the gfp mask of every defrag mode, the setting, and both ways a fault goes under the default
``madvise`` mode.
"""

from __future__ import annotations

from typing import Any

import pytest

from emulator.engine import Sim
from emulator.mm import gfp as G
from emulator.mm import slowpath
from emulator.mm.allocator import PageAllocator
from emulator.mm.compaction import CompactResult
from emulator.mm.huge_memory import (
    DEFRAG_MODES,
    defrag_show,
    do_huge_pmd_anonymous_page,
    vma_thp_gfp_mask,
)
from emulator.mm.machine import Machine
from emulator.scenario import ScenarioError, load_scenario
from emulator.scenario import bundled_scenarios as bundled
from tests.mm.test_slowpath_decisions import ScriptedCompaction, fragmented

LIGHT = G.GFP_TRANSHUGE_LIGHT


@pytest.mark.parametrize(
    ("mode", "madvised", "expected"),
    [
        ("always", True, G.GFP_TRANSHUGE),
        ("always", False, G.GFP_TRANSHUGE | G.__GFP_NORETRY),
        ("defer", True, LIGHT | G.__GFP_KSWAPD_RECLAIM),
        ("defer", False, LIGHT | G.__GFP_KSWAPD_RECLAIM),
        ("defer+madvise", True, LIGHT | G.__GFP_DIRECT_RECLAIM),
        ("defer+madvise", False, LIGHT | G.__GFP_KSWAPD_RECLAIM),
        ("madvise", True, LIGHT | G.__GFP_DIRECT_RECLAIM),
        ("madvise", False, LIGHT),
        ("never", True, LIGHT),
        ("never", False, LIGHT),
    ],
)
def test_vma_thp_gfp_mask(mode: str, madvised: bool, expected: int) -> None:
    assert vma_thp_gfp_mask(mode, madvised) == expected


def test_gfp_values_as_tracepoints_print_them() -> None:
    # madvise + MADV_HUGEPAGE is exactly GFP_TRANSHUGE; always without it adds NORETRY
    assert vma_thp_gfp_mask("madvise", True) == G.GFP_TRANSHUGE == 0x1C24CA
    assert G.format_gfp(vma_thp_gfp_mask("always", False)) == "GFP_TRANSHUGE|__GFP_NORETRY"
    assert G.format_gfp(vma_thp_gfp_mask("madvise", False)) == "GFP_TRANSHUGE_LIGHT"


def test_defrag_setting_default_show_and_bad_value() -> None:
    m = Machine.simple(Normal=4096)
    assert m.sysctl.get("transparent_hugepage.defrag") == "madvise"
    assert defrag_show("madvise") == "always defer defer+madvise [madvise] never"
    assert tuple(DEFRAG_MODES) == ("always", "defer", "defer+madvise", "madvise", "never")
    m.sysctl.set("transparent_hugepage/defrag", "defer+madvise")
    assert m.transparent_hugepage_defrag == "defer+madvise"
    with pytest.raises(ValueError, match=r"valid always, defer, defer\+madvise, madvise, never"):
        m.sysctl.set("transparent_hugepage.defrag", "sometimes")
    assert m.transparent_hugepage_defrag == "defer+madvise"  # nothing changed


def test_defrag_setting_through_scenario_params() -> None:
    sc = load_scenario(bundled()["default"])
    p = sc.resolve({"transparent_hugepage.defrag": "always"})
    assert p.sysctls["transparent_hugepage.defrag"] == "always"
    from emulator.runner import build_context

    ctx = build_context(sc, p)
    assert ctx.machine.transparent_hugepage_defrag == "always"
    with pytest.raises(ScenarioError, match=r"transparent_hugepage.defrag='often' is invalid"):
        build_context(sc, sc.resolve({"transparent_hugepage.defrag": "often"}))


async def fault(pa: PageAllocator, sim: Sim, madvised: bool) -> tuple[int, int]:
    out: list[tuple[int, int]] = []

    async def task() -> None:
        out.append(await do_huge_pmd_anonymous_page(pa, pa.cpus[0], madvised))

    sim.spawn("cpu0", task)
    await sim.run()
    pa.check()
    return out[0]


async def test_madvise_mode_unmadvised_fault_fails_fast_and_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, pa, sim = fragmented()
    s = ScriptedCompaction([(CompactResult.COMPACT_COMPLETE, -1)])
    monkeypatch.setattr(slowpath, "try_to_compact_pages", s)
    pfn, order = await fault(pa, sim, madvised=False)
    assert pfn >= 0 and order == 0  # a base page
    assert s.calls == []  # no direct reclaim bit: no compaction, no reclaim
    ev = m.vm_events
    assert (ev["thp_fault_alloc"], ev["thp_fault_fallback"]) == (0, 1)
    assert ev["compact_stall"] == 0 and ev["allocstall_movable"] == 0
    # one order-9 request (no __GFP_DIRECT_RECLAIM: no second attempt), failed by reason
    assert pa.slowpath_stats[9].failed == {"watermark_high_order": 1}


async def test_madvise_mode_madvised_fault_compacts_local_node_first_then_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, pa, sim = fragmented()
    s = ScriptedCompaction([(CompactResult.COMPACT_COMPLETE, -1)])
    monkeypatch.setattr(slowpath, "try_to_compact_pages", s)
    pfn, order = await fault(pa, sim, madvised=True)
    assert order == 0 and pfn >= 0
    # alloc_pages_mpol: first GFP_TRANSHUGE | __GFP_THISNODE | __GFP_NORETRY (async
    # compaction, then one reclaim + async compaction: COMPLETE is not SKIPPED/DEFERRED),
    # then the plain mask (async compaction, reclaim, SYNC_LIGHT compaction, stop: costly
    # without __GFP_RETRY_MAYFAIL)
    first = G.GFP_TRANSHUGE | G.__GFP_THISNODE | G.__GFP_NORETRY
    assert s.calls == [(first, 2), (first, 2), (G.GFP_TRANSHUGE, 2), (G.GFP_TRANSHUGE, 1)]
    ev = m.vm_events
    assert (ev["thp_fault_alloc"], ev["thp_fault_fallback"]) == (0, 1)
    assert ev["compact_stall"] == ev["compact_fail"] == 4
    assert pa.slowpath_stats[9].failed == {"noretry": 1, "costly_order": 1}


async def test_madvised_fault_succeeds_after_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    m, pa, sim = fragmented()
    z = pa.zones[0]

    def free_a_block(pa: Any, n: int) -> int:
        assert z.lock.try_acquire_now("test")  # free_one_page needs zone->lock (lockdep)
        z.free_one_page(256, 8)
        z.lock.release()
        return -1

    s = ScriptedCompaction([(CompactResult.COMPACT_SUCCESS, -1)], free_a_block)
    monkeypatch.setattr(slowpath, "try_to_compact_pages", s)
    pfn, order = await fault(pa, sim, madvised=True)
    assert (pfn, order) == (0, 9)
    ev = m.vm_events
    assert (ev["thp_fault_alloc"], ev["thp_fault_fallback"]) == (1, 0)
    assert (ev["compact_stall"], ev["compact_success"]) == (1, 1)
