"""Where the model follows Linux 6.12.0's order of checks and locking, each pinned:

* reserve_highatomic_pageblock makes its unlocked checks before taking zone->lock
  (page_alloc.c:2044): a zone too small for a reserve, or whose reserve is full, is never
  locked for it;
* rmqueue tests ZONE_BOOSTED_WATERMARK after rmqueue_pcplist / rmqueue_buddy returned
  (page_alloc.c:3085): a boost set while the CPU was in rmqueue_bulk is acted on, and a CPU
  that queued behind another for zone->lock sees the flag that one cleared.

(PCPF_FREE_HIGH_BATCH, the third, is in test_pcp_tuning.py.)
"""

from __future__ import annotations

import pytest

from emulator.engine import Sim
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.alloc_flags import ALLOC_HIGHATOMIC, ALLOC_KSWAPD
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_ATOMIC, GFP_KERNEL
from emulator.mm.snapshot import PAGEBLOCK_NR_PAGES
from emulator.mm.zone import ZONE_BOOSTED_WATERMARK

_BOOSTED = 1 << ZONE_BOOSTED_WATERMARK


async def _highatomic_alloc(pa: PageAllocator, order: int) -> int:
    cpu = pa.cpus[0]
    ac, alloc_flags, owner = pa.prepare_alloc_pages(cpu, GFP_ATOMIC)
    await pa.sim.sync()
    pfn, _ = await pa.get_page_from_freelist(
        cpu, GFP_ATOMIC, order, alloc_flags | ALLOC_HIGHATOMIC, ac, owner
    )
    return pfn


async def test_highatomic_precheck_skips_zone_lock_for_a_small_zone() -> None:
    # 16384 pages: managed / 100 = 163 < pageblock_nr_pages, so no reserve, and the kernel
    # returns before spin_lock_irqsave: the only zone->lock hold is the order-4 rmqueue_buddy
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    zone = pa.zones[0]

    async def actor() -> None:
        assert await _highatomic_alloc(pa, 4) >= 0

    sim.spawn("cpu0", actor)
    await sim.run()
    assert zone.nr_reserved_highatomic == 0
    assert zone.lock.stats.acquisitions == 1
    assert dict(zone.lock.stats.contention_points) == {}
    assert "reserve_highatomic_pageblock" not in zone.lock.holder_site


async def test_highatomic_precheck_skips_zone_lock_when_the_reserve_is_full() -> None:
    # 262144 pages: max_managed = ALIGN(2621, 512) = 3072. Reserve blocks until full; after
    # that the unlocked check returns and zone->lock is taken only by the allocation itself
    m = Machine.simple(Normal=262144)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    zone = pa.zones[0]
    max_managed = -(-(zone.managed_pages // 100) // PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES
    seen: list[int] = []

    async def actor() -> None:
        while zone.nr_reserved_highatomic < max_managed:
            assert await _highatomic_alloc(pa, 4) >= 0
        before = zone.lock.stats.acquisitions
        assert await _highatomic_alloc(pa, 4) >= 0
        seen.append(zone.lock.stats.acquisitions - before)

    sim.spawn("cpu0", actor)
    await sim.run()
    assert zone.nr_reserved_highatomic == max_managed
    assert seen == [1]  # rmqueue_buddy only


async def test_rmqueue_retests_the_boost_after_zone_lock() -> None:
    # Two CPUs allocate at t = 0 from a boosted zone with empty pcp lists: both refill under
    # zone->lock. CPU 0 gets it first, then clears ZONE_BOOSTED_WATERMARK and wakes kswapd.
    # CPU 1 re-tests the flag after its own rmqueue_bulk: clear, so no second wake-up.
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    zone = pa.zones[0]
    zone.flags |= _BOOSTED
    wakeups: list[tuple[int, int]] = []
    pa.wakeup_kswapd_hook = lambda z, order, hz: wakeups.append((order, hz))
    _, alloc_flags, _ = pa.prepare_alloc_pages(pa.cpus[0], GFP_KERNEL)
    assert alloc_flags & ALLOC_KSWAPD

    async def actor(cpu_id: int) -> None:
        assert await pa.alloc_pages(pa.cpus[cpu_id], 0, GFP_KERNEL) >= 0

    sim.spawn("cpu0", actor, 0)
    sim.spawn("cpu1", actor, 1)
    await sim.run()
    assert zone.lock.stats.acquisitions == 2
    assert not zone.flags & _BOOSTED
    assert pa.kswapd_wakeups == 1
    assert wakeups == [(0, zone.zone_idx)]


async def test_rmqueue_tests_the_boost_when_it_returns_not_when_it_starts() -> None:
    # CPU 0 allocates at t = 0 with an empty pcp: rmqueue_bulk holds zone->lock 10..560 and
    # rmqueue returns at 580. Another CPU sets ZONE_BOOSTED_WATERMARK at t = 300 (as a fallback
    # steal's boost_watermark would). The kernel's test_bit after rmqueue_pcplist sees it:
    # clear_bit and one wakeup_kswapd(zone, 0, zone_idx).
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    zone = pa.zones[0]
    wakeups: list[int] = []
    pa.wakeup_kswapd_hook = lambda z, order, hz: wakeups.append(sim.now)

    async def cpu0() -> None:
        assert await pa.alloc_pages(pa.cpus[0], 0, GFP_KERNEL) >= 0

    async def booster() -> None:
        await sim.delay(300)
        await sim.sync()
        zone.flags |= _BOOSTED

    sim.spawn("cpu0", cpu0)
    sim.spawn("booster", booster)
    await sim.run()
    assert zone.lock.stats.acquisitions == 1
    assert not zone.flags & _BOOSTED
    assert pa.kswapd_wakeups == 1
    assert wakeups == [580]


# The boundary of reserve_highatomic_pageblock's unlocked size check
# (mm/page_alloc.c:2044, ``if ((zone_managed_pages(zone) / 100) < pageblock_nr_pages) return;``):
# a zone whose 1% is exactly one pageblock gets a reserve of one pageblock; one page less and it
# gets none, and zone->lock is not taken for it.


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
