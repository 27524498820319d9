"""Async contention against mm/compaction.c (6.12): compact_lock_irqsave in MIGRATE_ASYNC
mode trylocks zone->lock; a failure sets cc->contended (and then the lock is taken anyway);
__compact_finished returns COMPACT_CONTENDED at the next pageblock boundary. Sync compaction
(SYNC_LIGHT) spins for the lock and never reports contention.

The zone: the lower half has every other page free, the upper half is full, so the fast free
search (top quarter/half of the scanners' span) finds nothing and the linear free scanner runs
isolate_freepages_block, which takes zone->lock through compact_lock_irqsave. Another task
holds that lock most of the time. The last page of every pageblock is pinned, so no pageblock
can be emptied and the run cannot end in SUCCESS.
"""

from __future__ import annotations

import numpy as np

from emulator.engine import Sim
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import CompactPriority, CompactResult
from emulator.mm.initstate import allocate_everything, free_k_of_n, free_pages_mask
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_PINNED
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.mm.snapshot import PAGEBLOCK_NR_PAGES


def setup():
    m = Machine.simple(DMA32=4096, Normal=65536)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    free_k_of_n(m.zone("DMA32"), 1, 2)
    z = m.zone("Normal")
    allocate_everything(z)
    rel = np.arange(z.spanned_pages)
    free_pages_mask(z, (rel < z.spanned_pages // 2) & (rel % 2 == 0))
    # the last page of every pageblock is pinned: no block can ever be emptied (no SUCCESS)
    for last in range(z.zone_start_pfn + PAGEBLOCK_NR_PAGES - 1, z.zone_end_pfn, 512):
        m.memmap.set_owner(last, 0, OWNER_PINNED)
    adopt_allocated(pa)
    return m, sim, pa, z


async def run(prio: CompactPriority, hog: bool) -> tuple[CompactResult, int]:
    _, sim, pa, z = setup()
    cpu = pa.cpus[0]
    ac, alloc_flags, _ = pa.prepare_alloc_pages(cpu, GFP_TRANSHUGE)
    out: list[tuple[CompactResult, int]] = []

    async def compactor() -> None:
        out.append(await try_to_compact_pages(pa, cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, prio))

    async def holder() -> None:
        # another CPU in a zone->lock storm: holds it 50 us, drops it for 0.5 us
        while not out:
            await z.lock.acquire("hog")
            await sim.delay(50_000)
            z.lock.release()
            await sim.delay(500)

    sim.spawn("compactor", compactor)
    if hog:
        sim.spawn("hog", holder)
    await sim.run()
    pa.check()
    return out[0][0], z.lock.stats.trylock_failures


async def test_async_compaction_under_a_contended_zone_lock_is_contended() -> None:
    result, trylock_failures = await run(CompactPriority.COMPACT_PRIO_ASYNC, hog=True)
    assert trylock_failures >= 1
    assert result == CompactResult.COMPACT_CONTENDED


async def test_sync_compaction_spins_and_is_not_contended() -> None:
    result, trylock_failures = await run(CompactPriority.COMPACT_PRIO_SYNC_LIGHT, hog=True)
    assert trylock_failures == 0  # sync modes never trylock
    # it runs until the scanners meet, however long the lock waits take
    assert result in (CompactResult.COMPACT_COMPLETE, CompactResult.COMPACT_PARTIAL_SKIPPED)


async def test_async_without_contention_is_not_contended() -> None:
    result, _ = await run(CompactPriority.COMPACT_PRIO_ASYNC, hog=False)
    assert result != CompactResult.COMPACT_CONTENDED
