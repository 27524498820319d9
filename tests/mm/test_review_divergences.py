"""Review (mutation testing) of the 6.12.0 divergence fixes: the boundary of
reserve_highatomic_pageblock's unlocked size check (mm/page_alloc.c:2044,
``if ((zone_managed_pages(zone) / 100) < pageblock_nr_pages) return;``): a zone whose 1% is
exactly one pageblock gets a reserve of one pageblock; one page less and it gets none, and
zone->lock is not taken for it."""

from __future__ import annotations

import pytest

from emulator.engine import Sim
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.alloc_flags import ALLOC_HIGHATOMIC
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_ATOMIC
from emulator.mm.snapshot import PAGEBLOCK_NR_PAGES


async def _highatomic_alloc(pa: PageAllocator, order: int) -> int:
    cpu = pa.cpus[0]
    ac, alloc_flags, owner = pa.prepare_alloc_pages(cpu, GFP_ATOMIC)
    await pa.sim.sync()
    pfn, _ = await pa.get_page_from_freelist(
        cpu, GFP_ATOMIC, order, alloc_flags | ALLOC_HIGHATOMIC, ac, owner
    )
    return pfn


@pytest.mark.parametrize(
    ("pages", "reserved", "locks"),
    [
        # managed / 100 == 512 == pageblock_nr_pages: not below it, so a reserve of
        # ALIGN(512, 512) = one pageblock; two zone->lock holds (rmqueue_buddy, the reserve)
        (100 * PAGEBLOCK_NR_PAGES, PAGEBLOCK_NR_PAGES, 2),
        # one page less: 511 < 512, no reserve and no zone->lock for it
        (100 * PAGEBLOCK_NR_PAGES - 1, 0, 1),
    ],
)
async def test_highatomic_reserve_size_check_boundary(pages: int, reserved: int, locks: int):
    m = Machine.simple(Normal=pages)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    zone = pa.zones[0]
    assert zone.managed_pages == pages

    async def actor() -> None:
        assert await _highatomic_alloc(pa, 4) >= 0

    sim.spawn("cpu0", actor)
    await sim.run()
    assert zone.nr_reserved_highatomic == reserved
    assert zone.lock.stats.acquisitions == locks
