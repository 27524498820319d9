"""Skip bits (PB_migrate_skip) and cached scanner positions against mm/compaction.c (6.12):

* set on a migration-source block that yielded nothing, and as the claim of a source block
  (test_and_set_skip) when its first page is isolated;
* read by non-SYNC_FULL compaction (such blocks are not scanned), ignored by SYNC_FULL;
* cleared only by __reset_isolation_suitable, which does nothing unless
  compact_blockskip_flush is set, and that only direct compaction sets, when its scanners
  meet (manual compaction does not); the reset clears blocks whose every-8th-page sample finds
  an LRU page or a free page and keeps the others.
"""

from __future__ import annotations

from emulator.engine import MemoryRecorder, Sim
from emulator.mm.compaction.compact import compact_node, try_to_compact_pages
from emulator.mm.compaction.control import CompactPriority, CompactResult
from emulator.mm.compaction.skip import reset_cached_positions, reset_isolation_suitable
from emulator.mm.initstate import free_k_of_n
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_PINNED, OWNER_UNMOVABLE, PG_ALLOC, PG_BUDDY
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.mm.snapshot import PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER


def setup(pinned_per_block: bool = False):
    rec = MemoryRecorder()
    m = Machine.simple(DMA32=4096, Normal=65536, recorder=rec)
    sim = Sim("fifo", strict=True, recorder=rec)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    for z in pa.zones:
        free_k_of_n(z, 1, 2)
        z.rec = rec
    z = m.zone("Normal")
    mm = m.memmap
    u = z.zone_start_pfn  # block U: fully allocated, unmovable (no LRU page, no free page)
    for p in range(u, u + PAGEBLOCK_NR_PAGES):
        if mm.state[p] != PG_ALLOC:
            z.del_from_free_list(p, 0, mm.pb_mt[p >> PAGEBLOCK_ORDER])
            z.account_freepages(-1, mm.pb_mt[p >> PAGEBLOCK_ORDER])
        mm.mark_block(p, 0, PG_ALLOC, OWNER_UNMOVABLE)
    if pinned_per_block:
        for last in range(u + 2 * PAGEBLOCK_NR_PAGES - 1, z.zone_end_pfn, PAGEBLOCK_NR_PAGES):
            mm.set_owner(last, 0, OWNER_PINNED)
    adopt_allocated(pa)
    pa.check()
    return m, sim, pa, z, rec, u >> PAGEBLOCK_ORDER


async def compact(pa, prio):
    """Direct compaction for an order-9 THP by CPU 0's task (call inside an actor)."""
    cpu = pa.cpus[0]
    ac, alloc_flags, _ = pa.prepare_alloc_pages(cpu, GFP_TRANSHUGE)
    r, _ = await try_to_compact_pages(pa, cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, prio)
    return r


async def run_script(sim, pa, script) -> None:
    sim.spawn("script", script)
    await sim.run()
    pa.check()


def scanned_blocks(rec: MemoryRecorder, since: int = 0) -> set[int]:
    return {
        e["start_pfn"] >> PAGEBLOCK_ORDER
        for e in rec.events()[since:]
        if e["event"] == "mm_compaction_isolate_migratepages"
    }


async def test_set_on_empty_source_and_on_claim_read_unless_sync_full() -> None:
    m, sim, pa, z, rec, u = setup()
    skip = m.memmap.pb_skip
    assert not any(skip)

    async def script() -> None:
        r = await compact(pa, CompactPriority.COMPACT_PRIO_SYNC_LIGHT)
        assert r == CompactResult.COMPACT_SUCCESS
        assert skip[u]  # scanned to its end, nothing isolated
        assert skip[u + 1]  # the first isolated page claimed it (test_and_set_skip)
        assert u in scanned_blocks(rec)
        assert not z.compact_blockskip_flush  # the scanners did not meet
        reset_isolation_suitable([z])
        assert skip[u] and skip[u + 1]  # no flush requested: nothing cleared

        # from the zone start again: SYNC_LIGHT honours the bits, SYNC_FULL ignores them
        n = len(rec.events())
        reset_cached_positions(z)
        await compact(pa, CompactPriority.COMPACT_PRIO_SYNC_LIGHT)
        assert u not in scanned_blocks(rec, n)
        n = len(rec.events())
        await compact(pa, CompactPriority.COMPACT_PRIO_SYNC_FULL)
        assert u in scanned_blocks(rec, n)

    await run_script(sim, pa, script)


async def test_flush_by_direct_compaction_only_and_the_reset_rules() -> None:
    m, sim, pa, z, _, u = setup(pinned_per_block=True)
    skip = m.memmap.pb_skip
    zone_blocks = range(z.zone_start_pfn >> PAGEBLOCK_ORDER, z.zone_end_pfn >> PAGEBLOCK_ORDER)

    async def script() -> None:
        r = await compact(pa, CompactPriority.COMPACT_PRIO_SYNC_LIGHT)
        assert r in (CompactResult.COMPACT_COMPLETE, CompactResult.COMPACT_PARTIAL_SKIPPED)
        assert z.compact_blockskip_flush  # a direct compactor's scanners met
        assert skip[u]
        before = sum(skip[b] for b in zone_blocks)
        assert before > 1
        st = m.memmap.state
        # blocks whose every-8th-page sample finds both an LRU page and a free page
        both = [
            b
            for b in zone_blocks
            if any(st[p] == PG_ALLOC for p in range(b << 9, (b + 1) << 9, 8))
            and any(st[p] == PG_BUDDY for p in range(b << 9, (b + 1) << 9, 8))
        ]
        assert both
        reset_isolation_suitable([z])
        assert not z.compact_blockskip_flush
        assert skip[u]  # no LRU page and no free page sampled: the bit stays
        assert not any(skip[b] for b in both)
        assert sum(skip[b] for b in zone_blocks) < before

    await run_script(sim, pa, script)

    # manual compaction (not direct) never asks for the flush
    _, sim2, pa2, z2, _, _ = setup(pinned_per_block=True)

    async def manual() -> None:
        await compact_node(pa2, 0, pa2.cpus[0])

    await run_script(sim2, pa2, manual)
    assert not z2.compact_blockskip_flush
