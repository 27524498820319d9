"""Deferral against mm/compaction.c (6.12): defer_compaction / compaction_deferred /
compaction_defer_reset / compaction_restarting step by step, and end to end: a sync direct
compaction that completes without success defers the zone, the next non-SYNC_FULL attempt is
DEFERRED (each check counts a consideration), SYNC_FULL ignores deferral, and after 2^shift
considerations compaction runs again.
"""

from __future__ import annotations

from emulator.engine import Sim
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import COMPACT_MAX_DEFER_SHIFT, CompactPriority, CompactResult
from emulator.mm.compaction.defer import (
    compaction_defer_reset,
    compaction_deferred,
    compaction_restarting,
    defer_compaction,
)
from emulator.mm.compaction.skip import reset_cached_positions
from emulator.mm.initstate import free_k_of_n
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_PINNED
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.mm.snapshot import PAGEBLOCK_NR_PAGES


def bare_zone():
    return Machine.simple(Normal=8192).populated_zones()[0]


def test_backoff_doubles_up_to_64_checks() -> None:
    z = bare_zone()
    assert not compaction_deferred(z, 9)  # shift 0: limit 1, never deferred
    for shift in range(1, COMPACT_MAX_DEFER_SHIFT + 3):
        defer_compaction(z, 9)
        expect = min(shift, COMPACT_MAX_DEFER_SHIFT)
        assert z.compact_defer_shift == expect and z.compact_considered == 0
        skipped = 0
        while compaction_deferred(z, 9):
            skipped += 1
        # (1 << shift) - 1 checks are skipped, the next one may compact
        assert skipped == (1 << expect) - 1
        assert z.compact_considered == 1 << expect
    assert compaction_restarting(z, 9)
    assert not compaction_restarting(z, z.compact_order_failed - 1)


def test_order_failed_and_reset() -> None:
    z = bare_zone()
    z.compact_order_failed = 11  # nothing failed yet at any order
    defer_compaction(z, 9)
    assert z.compact_order_failed == 9
    assert not compaction_deferred(z, 8)  # below the failed order: never deferred
    assert z.compact_considered == 0  # ... and not counted
    assert compaction_deferred(z, 9)
    compaction_defer_reset(z, 9, False)  # expected success: order raised, back-off kept
    assert z.compact_order_failed == 10 and z.compact_defer_shift == 1
    assert not compaction_deferred(z, 9)
    compaction_defer_reset(z, 9, True)  # a real allocation: back-off cleared
    assert z.compact_defer_shift == 0 and z.compact_considered == 0


def pinned_fragmented(mem_pages: int = 65536):
    """Half the pages free (order-0 holes) and one pinned page in every pageblock, so no
    compaction can ever free a whole pageblock."""
    m = Machine.simple(Normal=mem_pages)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    z = pa.zones[0]
    free_k_of_n(z, 1, 2)
    reset_cached_positions(z)  # zeroed struct zone in a zone at pfn 0: see test_..._capture
    for b in range(z.zone_start_pfn, z.zone_end_pfn, PAGEBLOCK_NR_PAGES):
        m.memmap.set_owner(b + 1, 0, OWNER_PINNED)
    adopt_allocated(pa)
    return m, sim, pa, z


async def test_failed_sync_compaction_defers_and_sync_full_ignores_it() -> None:
    _, sim, pa, z = pinned_fragmented()
    cpu = pa.cpus[0]
    ac, alloc_flags, _ = pa.prepare_alloc_pages(cpu, GFP_TRANSHUGE)
    results: list[tuple[CompactResult, int, int]] = []

    async def compactor() -> None:
        for prio in (
            CompactPriority.COMPACT_PRIO_SYNC_LIGHT,  # runs, fails: defer (shift 1)
            CompactPriority.COMPACT_PRIO_SYNC_LIGHT,  # considered 1 < 2: DEFERRED
            CompactPriority.COMPACT_PRIO_SYNC_FULL,  # deferral not checked: runs, defers
            CompactPriority.COMPACT_PRIO_ASYNC,  # shift 2: considered 1, 2, 3 < 4: DEFERRED
            CompactPriority.COMPACT_PRIO_ASYNC,
            CompactPriority.COMPACT_PRIO_ASYNC,
            CompactPriority.COMPACT_PRIO_ASYNC,  # considered 4 >= 4: runs (async: no defer)
        ):
            r, page = await try_to_compact_pages(pa, cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, prio)
            results.append((r, page, z.compact_defer_shift))

    sim.spawn("compactor", compactor)
    await sim.run()
    pa.check()
    (r1, p1, s1), (r2, _, s2), (r3, _, s3), *later = results
    assert r1 in (CompactResult.COMPACT_COMPLETE, CompactResult.COMPACT_PARTIAL_SKIPPED)
    assert p1 == -1 and s1 == 1
    assert r2 == CompactResult.COMPACT_DEFERRED and s2 == 1
    assert r3 != CompactResult.COMPACT_DEFERRED and r3 != CompactResult.COMPACT_SUCCESS
    assert s3 == 2  # SYNC_FULL failed as well: deferred once more
    assert [r for r, _, _ in later[:3]] == [CompactResult.COMPACT_DEFERRED] * 3
    r4, _, s4 = later[3]
    assert r4 != CompactResult.COMPACT_DEFERRED
    assert s4 == 2  # async results never defer
    assert z.compact_considered == 4
    assert pa.vm_events["pgmigrate_success"] > 0
