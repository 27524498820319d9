"""pcp refill and drain counts against mm/page_alloc.c of Linux 6.12: nr_pcp_alloc (alloc_factor
growth, the ``>> order`` scaling), nr_pcp_free, nr_pcp_high (auto-tuning), the free_high rule
of free_unref_page_commit for orders 1-3, and decay_pcp_high. First the arithmetic on a bare
``per_cpu_pages`` with hand-set fields, then the same rules observed through the allocator
(pages leaving or reaching the buddy lists are exactly the refill / drain counts).
"""

from __future__ import annotations

import pytest

from emulator.engine import Sim, SpinLock
from emulator.mm.machine import Machine
from emulator.mm.memmap import PG_PCP
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.drain import decay_pcp_high, drain_all_pages
from emulator.mm.page_alloc.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_TRANSHUGE_LIGHT
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.page_alloc.pcp import PCPF_FREE_HIGH_BATCH, PCPF_PREV_FREE_HIGH_ORDER, PerCpuPages
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked


def bare_pcp(batch: int, high_min: int, high_max: int, high: int, count: int = 0) -> PerCpuPages:
    zone = Machine.simple(Normal=4096).zone("Normal")
    pcp = PerCpuPages(zone, 0, SpinLock(Sim(), "&pcp->lock"))
    pcp.set_high_and_batch(high_min, high_max, batch)
    pcp.high = high
    pcp.count = count
    return pcp


# -- nr_pcp_alloc ------------------------------------------------------------------------------


def test_nr_pcp_alloc_alloc_factor_doubles_up_to_scale_max() -> None:
    pcp = bare_pcp(batch=63, high_min=880, high_max=4096, high=0)
    sizes = []
    for _ in range(8):
        sizes.append(pcp.nr_pcp_alloc(0, zone_below_high=False))
    # batch = 63 << alloc_factor, alloc_factor 0..5 then stays 5 (CONFIG_PCP_BATCH_SCALE_MAX)
    assert sizes == [63, 126, 252, 504, 1008, 2016, 2016, 2016]
    assert pcp.alloc_factor == 5
    # high: clamp(0) = 880, then + batch each time, capped at high_max 4096:
    # 943, 1069, 1321, 1825, 2833, 4096 ...
    assert pcp.high == 4096


def test_nr_pcp_alloc_capped_by_room_below_high() -> None:
    # fixed high 1000 (high_min == high_max: no growth), count 990, alloc_factor 5:
    # batch = 3 << 5 = 96; max_nr_alloc = max(1000 - 990 - 3, 3) = 7 -> 7, factor stays 5
    pcp = bare_pcp(batch=3, high_min=1000, high_max=1000, high=1000, count=990)
    pcp.alloc_factor = 5
    assert pcp.nr_pcp_alloc(0, False) == 7
    assert pcp.alloc_factor == 5
    assert pcp.high == 1000
    # room below the batch: max_nr_alloc = max(1000 - 999 - 3, 3) = 3
    pcp.count = 999
    assert pcp.nr_pcp_alloc(0, False) == 3
    # factor 2: batch 12 <= max(1000 - 0 - 3, 3) = 997 -> factor 3, refill 12
    pcp.count = 0
    pcp.alloc_factor = 2
    assert pcp.nr_pcp_alloc(0, False) == 12
    assert pcp.alloc_factor == 3


def test_nr_pcp_alloc_below_high_does_not_grow_high() -> None:
    pcp = bare_pcp(batch=63, high_min=880, high_max=4096, high=900)
    assert pcp.nr_pcp_alloc(0, zone_below_high=True) == 63
    assert pcp.high == 900  # no "+ batch" while ZONE_BELOW_HIGH
    assert pcp.nr_pcp_alloc(0, zone_below_high=False) == 126
    assert pcp.high == 1026  # 900 + (63 << 1)


def test_nr_pcp_alloc_order_scaling() -> None:
    # batch > 1: max(batch >> order, 2); higher orders ignore alloc_factor
    pcp = bare_pcp(batch=63, high_min=880, high_max=4096, high=880)
    pcp.alloc_factor = 4
    assert pcp.nr_pcp_alloc(1, False) == 31  # 63 >> 1
    assert pcp.nr_pcp_alloc(2, False) == 15  # 63 >> 2
    assert pcp.nr_pcp_alloc(3, False) == 7  # 63 >> 3 (the reference's "7 pages of order 3")
    assert pcp.nr_pcp_alloc(9, False) == 2  # max(63 >> 9 = 0, 2)
    assert pcp.alloc_factor == 4  # only order-0 refills change it
    small = bare_pcp(batch=3, high_min=100, high_max=200, high=100)
    assert small.nr_pcp_alloc(1, False) == 2  # max(3 >> 1 = 1, 2)
    assert small.nr_pcp_alloc(3, False) == 2


def test_nr_pcp_alloc_disabled_pcp_and_batch_one() -> None:
    # "high < batch": pcp disabled / boot pageset -> one block per refill
    off = bare_pcp(batch=63, high_min=0, high_max=0, high=500)
    assert off.nr_pcp_alloc(0, False) == 1
    assert off.high == 0  # clamped into [0, 0]
    assert off.nr_pcp_alloc(3, False) == 1
    # batch 1 (a DMA zone): batch > 1 is false, so 1 << alloc_factor unscaled
    dma = bare_pcp(batch=1, high_min=19, high_max=120, high=0)
    assert [dma.nr_pcp_alloc(0, False) for _ in range(3)] == [1, 2, 4]
    assert dma.nr_pcp_alloc(2, False) == 1  # order 2: batch 1, no scaling


# -- nr_pcp_free / nr_pcp_high -------------------------------------------------------------


def test_nr_pcp_free() -> None:
    pcp = bare_pcp(batch=63, high_min=880, high_max=4096, high=1000, count=1500)
    # free_high: min(count, batch << 5 = 2016)
    assert pcp.nr_pcp_free(63, 1000, free_high=True) == 1500
    pcp.count = 3000
    assert pcp.nr_pcp_free(63, 1000, free_high=True) == 2016
    # high < batch: 1
    assert pcp.nr_pcp_free(63, 10, free_high=False) == 1
    # clamp(free_count, batch, high - batch)
    pcp.free_count = 10
    assert pcp.nr_pcp_free(63, 1000, False) == 63
    pcp.free_count = 500
    assert pcp.nr_pcp_free(63, 1000, False) == 500
    pcp.free_count = 2000
    assert pcp.nr_pcp_free(63, 1000, False) == 937


def test_nr_pcp_high_rules() -> None:
    # disabled: high clamps to 0 -> 0
    assert bare_pcp(63, 0, 0, 400).nr_pcp_high(63, False, False, False) == 0
    # free_high: pcp->high = max(1000 - (3 << 5), 500) = 904, return 0 (drain now)
    p = bare_pcp(3, 500, 2048, 1000)
    assert p.nr_pcp_high(3, True, False, False) == 0
    assert p.high == 904
    # ZONE_RECLAIM_ACTIVE: high = max(1000 - max(10, 3), 500) = 990; min(3 * 4, 990) = 12
    p = bare_pcp(3, 500, 2048, 1000)
    p.free_count = 10
    assert p.nr_pcp_high(3, False, True, False) == 12
    assert p.high == 990
    # fixed high (fraction set): returned as is
    p = bare_pcp(3, 700, 700, 0, count=5000)
    assert p.nr_pcp_high(3, False, False, True) == 700
    assert p.high == 700
    # ZONE_BELOW_HIGH: high = max(1000 - 50, 500) = 950; return max(count 600, 500) = 600
    p = bare_pcp(3, 500, 2048, 1000, count=600)
    p.free_count = 50
    assert p.nr_pcp_high(3, False, False, True) == 600
    assert p.high == 950
    # count >= high: raise pcp->high to clamp(free_count + batch) = 463, return the old 252
    p = bare_pcp(63, 252, 1024, 252, count=300)
    p.free_count = 400
    assert p.nr_pcp_high(63, False, False, False) == 252
    assert p.high == 463
    # ... but never above high_max: clamp(2000 + 63, 252, 1024) = 1024
    p = bare_pcp(63, 252, 1024, 252, count=300)
    p.free_count = 2000
    p.nr_pcp_high(63, False, False, False)
    assert p.high == 1024
    # count < high: nothing changes
    p = bare_pcp(63, 252, 1024, 800, count=100)
    p.free_count = 2000
    assert p.nr_pcp_high(63, False, False, False) == 800
    assert p.high == 800


def test_free_high_flags_orders_1_to_3_only() -> None:
    p = bare_pcp(3, 500, 2048, 500)
    # consecutive order-1 frees: free_high once free_count >= batch and the previous free was
    # high-order; free_count += 2 each time
    assert [p.commit_free_flags(1) for _ in range(3)] == [False, False, True]
    assert p.free_count == 6
    # an order-0 free clears PCPF_PREV_FREE_HIGH_ORDER ...
    assert p.commit_free_flags(0) is False
    assert not p.flags & PCPF_PREV_FREE_HIGH_ORDER
    # ... so the next order-3 free is not free_high, the one after is
    assert p.commit_free_flags(3) is False
    assert p.commit_free_flags(3) is True
    # THP (order 9) frees never are, and clear the flag
    assert p.commit_free_flags(9) is False
    assert not p.flags & PCPF_PREV_FREE_HIGH_ORDER
    # free_count is capped: it only grows while below batch << 5 = 96
    p.free_count = 95
    p.commit_free_flags(9)
    assert p.free_count == 95 + 512
    p.commit_free_flags(0)
    assert p.free_count == 607


def test_decay_high_arithmetic() -> None:
    # high = max3(count - (batch << 5), high - high / 8, high_min); drain count - high
    p = bare_pcp(3, 1000, 2048, 2048, count=2000)
    assert p.decay_high() == 96  # max(1904, 1792, 1000) = 1904
    assert p.high == 1904
    p = bare_pcp(3, 1000, 2048, 1285, count=285)
    assert p.decay_high() == 0  # max(189, 1125, 1000) = 1125 > count
    assert p.high == 1125
    assert p.decay_high() == 0  # max(189, 985, 1000) = 1000
    assert p.high == 1000
    # at high_min high stays; anything above it is drained
    p.count = 1100
    assert p.decay_high() == 100
    assert p.high == 1000


# -- through the allocator -----------------------------------------------------------------


def one_cpu(pages: int, cpus: int = 1) -> tuple[Machine, PageAllocator, Sim]:
    m = Machine.simple(Normal=pages)
    sim = Sim("fifo")
    return m, PageAllocator(m, sim, cpus_per_node=cpus), sim


async def test_refills_grow_with_alloc_factor() -> None:
    # Normal = 16384 pages, 1 CPU: batch 3, high_min 1000, high_max 2048
    _m, pa, sim = one_cpu(16384)
    zone = pa.zones[0]
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]
    refills: list[tuple[int, int, int, int]] = []
    held = []

    async def actor() -> None:
        for i in range(200):
            before = zone.nr_free_pages
            held.append(await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE))
            if zone.nr_free_pages != before:
                refills.append((i, before - zone.nr_free_pages, pcp.high, pcp.alloc_factor))

    sim.spawn("cpu0", actor)
    end = await sim.run()
    # refill k takes 3 << k pages (up to 3 << 5 = 96) and raises high by the same amount:
    # high 1000 + 3 = 1003, +6 = 1009, +12 = 1021, +24 = 1045, +48 = 1093, +96 = 1189, 1285;
    # max_nr_alloc = high - count - 3 is never the limit here
    assert refills == [
        (0, 3, 1003, 1),
        (3, 6, 1009, 2),
        (9, 12, 1021, 3),
        (21, 24, 1045, 4),
        (45, 48, 1093, 5),
        (93, 96, 1189, 5),
        (189, 96, 1285, 5),
    ]
    # 3 + 6 + 12 + 24 + 48 + 96 + 96 = 285 taken, 200 handed out
    assert pcp.count == 85
    assert cpu.stats[0].refills == 7
    assert cpu.stats[0].pcp_hits == 193
    assert zone.lock.stats.acquisitions == 7  # one zone->lock hold per refill

    # a free halves alloc_factor (5 -> 2): once the list is empty again the refill is 3 << 2
    async def actor2() -> None:
        await free_pages(pa, cpu, held.pop(), 0)
        assert pcp.alloc_factor == 2
        assert pcp.count == 86
        for _ in range(86):
            held.append(await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE))
        before = zone.nr_free_pages
        held.append(await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE))
        assert before - zone.nr_free_pages == 12
        assert pcp.alloc_factor == 3
        assert pcp.high == 1297  # 1285 + 12

    sim.spawn("cpu0-again", actor2, start=end.now)  # the same CPU, carrying on
    await sim.run()


async def test_higher_order_refills_scale_by_order() -> None:
    # Normal = 262144 pages (1 GiB), 1 CPU: batch 63
    _m, pa, sim = one_cpu(262144)
    zone = pa.zones[0]
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]
    seen = {}

    async def actor() -> None:
        for order, gfp in (
            (1, GFP_KERNEL),
            (2, GFP_KERNEL),
            (3, GFP_KERNEL),
            (9, GFP_TRANSHUGE_LIGHT),
            (5, GFP_KERNEL),
        ):
            before_free, before_count = zone.nr_free_pages, pcp.count
            pfn = await pa.alloc_pages(cpu, order, gfp)
            assert pfn >= 0
            seen[order] = (before_free - zone.nr_free_pages, pcp.count - before_count)

    sim.spawn("cpu0", actor)
    await sim.run()
    # (pages taken from the buddy lists, pages left on the pcp) for one allocation
    assert seen[1] == (31 * 2, 30 * 2)  # 63 >> 1 = 31 blocks of order 1
    assert seen[2] == (15 * 4, 14 * 4)  # 63 >> 2 = 15 blocks
    assert seen[3] == (7 * 8, 6 * 8)  # 63 >> 3 = 7 blocks
    assert seen[9] == (2 * 512, 512)  # max(63 >> 9, 2) = 2 THP blocks
    assert seen[5] == (32, 0)  # order 5 is not a pcp order: straight from the buddy lists
    assert [c.stats[o].refills for c in pa.cpus for o in (1, 2, 3, 9, 5)] == [1, 1, 1, 1, 0]
    assert zone.lock.stats.contention_points == {}
    assert pa.cpus[0].pcp[0].lock.stats.acquisitions == 4  # not taken for order 5


async def test_free_drains_free_count_pages_with_autotuning() -> None:
    # Normal = 262144 pages, 32 CPUs on the node: batch 63, high_min 7040/32 = 220 -> 4*63 =
    # 252, high_max 262144/8/32 = 1024. CPU 0 allocates 1000 order-0 pages, then frees them.
    _m, pa, sim = one_cpu(262144, cpus=32)
    zone = pa.zones[0]
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]
    assert (pcp.batch, pcp.high_min, pcp.high_max) == (63, 252, 1024)
    drains = []

    async def actor() -> None:
        held = [await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE) for _ in range(1000)]
        # refills (nr_pcp_alloc): 63 (high 315), 126 (441), 252 (693), 504 (1024, factor 4),
        # then 63 << 4 = 1008 > max_nr_alloc = 1024 - 0 - 63 = 961 -> 961 at allocation 945;
        # 55 of those handed out: count 906
        assert (pcp.count, pcp.high, pcp.alloc_factor) == (906, 1024, 4)
        assert cpu.stats[0].refills == 5
        for k, pfn in enumerate(held, 1):
            before = zone.nr_free_pages
            await free_pages(pa, cpu, pfn, 0)
            if zone.nr_free_pages != before:
                drains.append((k, zone.nr_free_pages - before))

    sim.spawn("cpu0", actor)
    await sim.run()
    # count reaches high 1024 after 118 frees; free_count is then 118 and nr_pcp_free =
    # clamp(118, 63, 1024 - 63) = 118; need_high = 118 + 63 < 1024 leaves high alone. The
    # list refills to 1024 after as many frees again as were drained, each time with a
    # free_count twice as large: 236, 472, 944 (and the last leaves 1024 - 944 = 80).
    assert drains == [(118, 118), (236, 236), (472, 472), (944, 944)]
    assert pcp.count == 906 + 1000 - (118 + 236 + 472 + 944) == 136
    assert pcp.high == 1024
    assert pcp.free_count == 1000


async def test_free_drains_fixed_high() -> None:
    # vm.percpu_pagelist_high_fraction = 8 on 16384 pages, 1 CPU: high_min = high_max = 2048,
    # batch 3. Drain at count >= 2048 of clamp(free_count, 3, 2045); free_count stops at 96.
    m, pa, sim = one_cpu(16384)
    m.sysctl.set("vm.percpu_pagelist_high_fraction", 8)
    zone = pa.zones[0]
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]
    assert (pcp.high_min, pcp.high_max) == (2048, 2048)
    drains = []

    async def actor() -> None:
        held = [await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE) for _ in range(2200)]
        count0 = pcp.count
        # refills with a fixed high: 3, 6, 12, 24, 48 (93 pages), then 22 x 96 (max_nr_alloc
        # = 2048 - 0 - 3 is no limit): 2205 taken for 2200 handed out
        assert count0 == 5
        assert pcp.free_count == 0  # halved by every allocation
        for k, pfn in enumerate(held, 1):
            before = zone.nr_free_pages
            await free_pages(pa, cpu, pfn, 0)
            if zone.nr_free_pages != before:
                drains.append((count0 + k, zone.nr_free_pages - before))

    sim.spawn("cpu0", actor)
    await sim.run()
    # first drain when the list holds 2048 pages (free 2043), then 96 frees later: 96 pages
    # each time; the list ends with 5 + 2200 - 2 * 96 pages
    assert drains == [(2048, 96), (2048 + 96, 96)]
    assert pcp.count == 2013


async def test_free_high_drains_whole_pcp_on_third_order1_free() -> None:
    # 16384 pages, 1 CPU: batch 3, high_min 1000
    _m, pa, sim = one_cpu(16384)
    zone = pa.zones[0]
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]

    async def actor() -> None:
        blocks = [await pa.alloc_pages(cpu, 1, GFP_KERNEL) for _ in range(3)]
        # order-1 refills: max(3 >> 1, 2) = 2 blocks each (allocations 1 and 3); high 1006
        assert pcp.count == 2 and cpu.stats[1].refills == 2
        assert pcp.high == 1006
        free0 = zone.nr_free_pages
        await free_pages(pa, cpu, blocks[0], 1)  # free_count 0 < 3: kept, free_count 2
        await free_pages(pa, cpu, blocks[1], 1)  # free_count 2 < 3: kept, free_count 4
        assert pcp.count == 6 and zone.nr_free_pages == free0
        # free_count 4 >= batch and the previous free was high-order: free_high. nr_pcp_high
        # lowers high to max(1006 - 96, 1000) = 1000 and returns 0; nr_pcp_free = min(8, 96)
        await free_pages(pa, cpu, blocks[2], 1)
        assert pcp.count == 0
        assert zone.nr_free_pages == free0 + 8
        assert pcp.high == 1000

    sim.spawn("cpu0", actor)
    await sim.run()
    assert zone.nr_free_pages == zone.managed_pages  # everything merged back


async def test_decay_pcp_high_drains_exactly() -> None:
    # 16384 pages, 1 CPU: batch 3, high_min 1000, high_max 2048
    m, pa, sim = one_cpu(16384)
    zone = pa.zones[0]
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]
    out = []

    async def actor() -> None:
        held = [await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE) for _ in range(2000)]
        # refills 3, 6, ..., 96 raise high by the same amounts up to high_max 2048
        assert pcp.high == 2048
        for pfn in held:
            await free_pages(pa, cpu, pfn, 0)
        count = pcp.count
        assert count < 2048  # no free-side drain happened
        assert count - 96 > 2048 - 256  # so the count - (batch << 5) term wins below
        before = zone.nr_free_pages
        out.append(await decay_pcp_high(pa, cpu))
        # high = max3(count - 96, 2048 - 256, 1000) = count - 96: drain 96
        assert pcp.high == count - 96
        assert pcp.count == count - 96
        assert zone.nr_free_pages == before + 96
        # keep decaying: each step lowers high by max(1/8, down to count - 96)
        while pcp.high > pcp.high_min:
            high, count = pcp.high, pcp.count
            drained = await decay_pcp_high(pa, cpu)
            expect_high = max(count - 96, high - (high >> 3), 1000)
            assert pcp.high == expect_high
            assert drained == max(count - expect_high, 0)
            out.append(drained)
        assert await decay_pcp_high(pa, cpu) == 0  # at high_min with count <= high: nothing

    sim.spawn("cpu0", actor)
    await sim.run()
    assert out[0] == 96
    assert len(out) > 2 and pcp.high == 1000 and pcp.count <= 1000
    # what left the pcp is on the buddy lists: pcp pages + free pages = the zone
    mm = m.memmap
    on_pcp = sum(1 for p in range(zone.zone_start_pfn, zone.zone_end_pfn) if mm.state[p] == PG_PCP)
    assert on_pcp == pcp.count
    assert zone.nr_free_pages == zone.managed_pages - pcp.count
    assert pcp.lock.stats.contentions == 0


async def test_zone_below_high_stops_growth_and_shrinks_high() -> None:
    """ZONE_BELOW_HIGH: get_page_from_freelist sets it when the HIGH watermark check fails;
    while set, refills do not raise pcp->high and frees lower it by max(free_count, batch),
    draining at max(count, high_min); the free path clears it after a drain once the zone is
    above its HIGH watermark again."""
    from emulator.mm.snapshot import MIGRATE_MOVABLE
    from emulator.mm.zone import ZONE_BELOW_HIGH

    below = 1 << ZONE_BELOW_HIGH
    # 16384 pages, 1 CPU: watermarks min 800, low 1000, high 1200; batch 3, high_min 1000
    _m, pa, sim = one_cpu(16384)

    async def fast_path_only(cpu, gfp, order, ac, owner, reason):
        return -1, reason  # this test is about the fast path: no slow path's MIN attempt

    pa.alloc_pages_slowpath = fast_path_only  # type: ignore[method-assign]
    zone = pa.zones[0]
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]
    for _ in range(13):  # leave 3 order-10 blocks free: 3072 pages
        rmqueue_buddy_locked(zone, 10, MIGRATE_MOVABLE)
    events = []

    async def actor() -> None:
        held = []
        for i in range(2200):
            free, high, flagged = zone.nr_free_pages, pcp.high, bool(zone.flags & below)
            pfn = await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE)
            if pfn >= 0:
                held.append(pfn)
            if bool(zone.flags & below) != flagged:
                events.append(("set", i, free))
            if flagged and zone.nr_free_pages != free:
                events.append(("refill", free - zone.nr_free_pages, high, pcp.high))
        # allocations 2014.. fail: 963 free pages is below LOW although 95 sit on the pcp
        assert len(held) == 2014 and cpu.stats[0].failures == 186
        for pfn in held:
            free, high, fc = zone.nr_free_pages, pcp.high, pcp.free_count
            count = pcp.count
            await free_pages(pa, cpu, pfn, 0)
            if zone.flags & below and zone.nr_free_pages == free:
                assert pcp.high == max(high - max(fc + 1 if fc < 96 else fc, 3), 1000)
            if zone.nr_free_pages != free:
                events.append(("drain", count + 1, zone.nr_free_pages - free))
            if not zone.flags & below:
                events.append(("clear", zone.nr_free_pages))
                break

    sim.spawn("cpu0", actor)
    await sim.run()
    # refills 3, 6, 12, 24, 48 (93 pages) then 96 each, high rising to high_max 2048. After
    # j refills of 96 the zone has 3072 - 93 - 96j free pages: the 19th (allocation
    # 93 + 96 * 18 = 1821, checked at 1251 > 1200) leaves 1155, so allocation 1822 fails the
    # HIGH check and sets the flag (the LOW check, 1000, still passes)
    assert events[0] == ("set", 1822, 1155)
    # two more refills while flagged (1155 -> 1059 -> 963): 96 pages each, high stays 2048;
    # then the zone is below LOW and allocations fail (that is the slow path's job)
    assert events[1:3] == [("refill", 96, 2048, 2048), ("refill", 96, 2048, 2048)]
    # frees: high shrinks to high_min 1000; the list holds 95 + k pages and drains
    # clamp(free_count 96, 3, 997) = 96 each time it reaches max(count, high_min) = 1000;
    # 963 -> 1059 -> 1155 -> 1251 > 1200: the third drain clears ZONE_BELOW_HIGH
    assert events[3:] == [
        ("drain", 1000, 96),
        ("drain", 1000, 96),
        ("drain", 1000, 96),
        ("clear", 1251),
    ]
    assert pcp.high == 1000


# -- PCPF_FREE_HIGH_BATCH (zone_pcp_update_cacheinfo) --------------------------------------


def test_free_high_batch_flag_from_the_llc_slice() -> None:
    # page_alloc.c: zone_pcp_update_cacheinfo sets PCPF_FREE_HIGH_BATCH when the CPU's share of
    # the last-level cache, in pages, exceeds 3 * batch. A 1 GiB zone has batch 63 (189 pages)
    m = Machine.simple(Normal=262144)
    pa = PageAllocator(m, Sim("fifo"), cpus_per_node=2)
    assert all(c.pcp[0].batch == 63 for c in pa.cpus)
    # the default: a 2 MiB slice (512 pages) per CPU, as on a typical x86 server
    assert all(c.pcp[0].flags & PCPF_FREE_HIGH_BATCH for c in pa.cpus)
    small = Machine.simple(Normal=262144, per_cpu_data_slice_size=189 * 4096)
    pa = PageAllocator(small, Sim("fifo"), cpus_per_node=2)
    assert not any(c.pcp[0].flags & PCPF_FREE_HIGH_BATCH for c in pa.cpus)
    bigger = Machine.simple(Normal=262144, per_cpu_data_slice_size=190 * 4096)
    pa = PageAllocator(bigger, Sim("fifo"), cpus_per_node=2)
    assert all(c.pcp[0].flags & PCPF_FREE_HIGH_BATCH for c in pa.cpus)


@pytest.mark.parametrize(("slice_bytes", "count_after"), [(2 << 20, 4), (64 << 10, 0)])
async def test_free_high_batch_keeps_a_short_pcp(slice_bytes: int, count_after: int) -> None:
    # free_high needs pcp->count >= batch when PCPF_FREE_HIGH_BATCH is set: after a remote
    # drain left free_count high but the list short, consecutive order-1 frees do not drain
    m = Machine.simple(Normal=262144, per_cpu_data_slice_size=slice_bytes)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]

    async def actor() -> None:
        blocks = [await pa.alloc_pages(cpu, 1, GFP_KERNEL) for _ in range(33)]
        for pfn in blocks[:31]:
            await free_pages(pa, cpu, pfn, 1)
        assert pcp.free_count == 62
        await drain_all_pages(pa, cpu)
        assert pcp.count == 0 and pcp.free_count == 62
        await free_pages(pa, cpu, blocks[31], 1)  # free_count 62 < 63: not free_high
        assert pcp.count == 2 and pcp.free_count == 64
        # free_count 64 >= 63 and the previous free was order 1: free_high unless the flag is
        # set and count (4) < batch (63)
        await free_pages(pa, cpu, blocks[32], 1)
        assert pcp.count == count_after

    sim.spawn("cpu0", actor)
    await sim.run()


# PCPF_FREE_HIGH_BATCH in free_unref_page_commit (mm/page_alloc.c:2620): with the flag set,
# free_high also needs ``pcp->count >= batch`` -- at count == batch it is free_high, one page
# short it is not.


def _pcp(batch: int, count: int, flags: int) -> PerCpuPages:
    zone = Machine.simple(Normal=4096).zone("Normal")
    pcp = PerCpuPages(zone, 0, SpinLock(Sim(), "&pcp->lock"))
    pcp.set_high_and_batch(500, 2048, batch)
    pcp.count = count
    pcp.free_count = batch  # free_count >= batch
    pcp.flags |= flags | PCPF_PREV_FREE_HIGH_ORDER  # the previous free was high-order
    return pcp


@pytest.mark.parametrize(
    ("flag", "count", "want"),
    [
        (PCPF_FREE_HIGH_BATCH, 63, True),  # count == batch: free_high
        (PCPF_FREE_HIGH_BATCH, 62, False),  # one short of batch: kept
        (PCPF_FREE_HIGH_BATCH, 64, True),
        (0, 0, True),  # no flag: count does not matter
    ],
)
def test_free_high_batch_needs_count_at_least_batch(flag: int, count: int, want: bool) -> None:
    pcp = _pcp(63, count, flag)
    assert pcp.commit_free_flags(1) is want
    assert pcp.flags & PCPF_PREV_FREE_HIGH_ORDER
