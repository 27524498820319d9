"""too_many_isolated against mm/compaction.c (6.12): with more pages isolated on the node than
(inactive + active) / 16 (__GFP_FS callers), async compaction gives up at once (-EAGAIN ->
ISOLATE_ABORT -> COMPACT_CONTENDED), while sync compaction sleeps in reclaim_throttle for
HZ/50 = 20 ms at a time until the count falls, then goes on.
"""

from __future__ import annotations

from emulator.engine import Sim
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import CompactPriority, CompactResult
from emulator.mm.compaction.isolate_migrate import (
    ISOLATED_THROTTLE_NS,
    node_isolated,
    too_many_isolated,
)
from emulator.mm.initstate import free_k_of_n
from emulator.mm.internal import CompactControl
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated


def setup():
    m = Machine.simple(DMA32=4096, Normal=65536)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    for z in pa.zones:
        free_k_of_n(z, 1, 2)
    adopt_allocated(pa)
    lru = sum(z.managed_pages for z in pa.zones) // 2  # the allocated (LRU) half
    return m, sim, pa, lru


async def run(prio: CompactPriority) -> tuple[CompactResult, int]:
    m, sim, pa, lru = setup()
    cpu = pa.cpus[0]
    ac, alloc_flags, _ = pa.prepare_alloc_pages(cpu, GFP_TRANSHUGE)
    # other compactors hold more than (inactive + active) / 16 pages isolated
    pa.lruvecs[0].nr_isolated_anon += lru // 16 + 1
    cc = CompactControl(zone=m.zone("Normal"), gfp_mask=GFP_TRANSHUGE, pa=pa)
    assert too_many_isolated(cc)
    out: list[tuple[CompactResult, int]] = []

    async def compactor() -> None:
        t0 = sim.current.now
        r, _ = await try_to_compact_pages(pa, cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, prio)
        out.append((r, sim.current.now - t0))

    async def others() -> None:
        # the other compactors put their pages back 50 ms later
        await sim.delay(50_000_000)
        await sim.sync()
        pa.lruvecs[0].nr_isolated_anon -= lru // 16 + 1

    sim.spawn("compactor", compactor)
    sim.spawn("others", others)
    await sim.run()
    pa.check()
    assert node_isolated(pa, 0) == 0
    return out[0]


async def test_async_gives_up_when_too_many_are_isolated() -> None:
    result, took = await run(CompactPriority.COMPACT_PRIO_ASYNC)
    assert result == CompactResult.COMPACT_CONTENDED
    assert took < ISOLATED_THROTTLE_NS


async def test_sync_throttles_in_20ms_steps_then_compacts() -> None:
    result, took = await run(CompactPriority.COMPACT_PRIO_SYNC_LIGHT)
    assert result != CompactResult.COMPACT_CONTENDED
    assert took >= 3 * ISOLATED_THROTTLE_NS  # slept at 0, 20 and 40 ms; free again at 50
