"""Where freed pages go by pageblock type (free_unref_page: ISOLATE straight to the buddy
lists, HIGHATOMIC/CMA onto the MOVABLE pcp list, the type read again at drain time), and
zonelist fallback across nodes, which uses the allocating CPU's own pcp of the remote zone.
"""

from __future__ import annotations

from emulator.engine import Sim
from emulator.mm.invariants import check_machine
from emulator.mm.machine import Machine, NodeSpec, ZoneSpec
from emulator.mm.memmap import PG_BUDDY, PG_PCP, PG_TAIL
from emulator.mm.page_alloc import gfp as G
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.drain import drain_all_pages
from emulator.mm.page_alloc.fallback import move_freepages_block
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.page_alloc.pcp import order_to_pindex
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.snapshot import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import ZONE_DMA32, ZONE_NORMAL


async def test_free_by_pageblock_type() -> None:
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=1)
    z = pa.zones[0]
    cpu = pa.cpus[0]
    pcp = cpu.pcp[0]
    mm = m.memmap

    async def actor() -> None:
        a = await pa.alloc_pages(cpu, 0, G.GFP_KERNEL)
        b = await pa.alloc_pages(cpu, 0, G.GFP_KERNEL)
        pb_a = a >> PAGEBLOCK_ORDER
        # retype the pageblock (with its free pages) as the kernel's isolation / highatomic
        # reservation would: the allocated pages keep their pageblock's new type
        assert move_freepages_block(z, a, mm.pb_mt[pb_a], MIGRATE_HIGHATOMIC) >= 0
        free_before = z.nr_free_pages
        await free_pages(pa, cpu, a, 0)
        # HIGHATOMIC goes on the MOVABLE pcp list, and is not counted yet
        assert mm.state[a] == PG_PCP
        assert mm.list_first(pcp.lists + order_to_pindex(MIGRATE_MOVABLE, 0)) == a
        assert z.nr_free_pages == free_before
        # drained, it goes back to the buddy lists under the type read now: HIGHATOMIC
        await drain_all_pages(pa, cpu)
        assert mm.state[a] in (PG_BUDDY, PG_BUDDY | PG_TAIL)
        assert z.nr_free_highatomic > 0
        check_machine(m, {(0, ZONE_NORMAL): pcp.count})
        # ISOLATE: freed straight to the buddy lists, kept out of NR_FREE_PAGES
        assert move_freepages_block(z, b, MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE) >= 0
        free_before = z.nr_free_pages
        count_before = pcp.count
        await free_pages(pa, cpu, b, 0)
        assert pcp.count == count_before
        assert mm.state[b] in (PG_BUDDY, PG_BUDDY | PG_TAIL)
        assert z.nr_free_pages == free_before
        assert any(z.nr_free_mt[o * MIGRATE_TYPES + MIGRATE_ISOLATE] for o in range(11))

    sim.spawn("cpu0", actor)
    await sim.run()
    assert z.lock.stats.contention_points == {}
    check_machine(m, {(0, ZONE_NORMAL): pcp.count})


def two_nodes() -> Machine:
    # node 0: DMA32 8192 pages + Normal 8192; node 1: Normal 8192 (no DMA32)
    return Machine(
        [
            NodeSpec(0, (ZoneSpec(ZONE_DMA32, 0, 8192), ZoneSpec(ZONE_NORMAL, 8192, 8192))),
            NodeSpec(1, (ZoneSpec(ZONE_NORMAL, 16384, 8192),)),
        ]
    )


async def test_remote_node_fallback_uses_own_pcp_of_remote_zone() -> None:
    m = two_nodes()
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=1)
    n0_dma32, n0_normal, n1_normal = pa.zones
    cpu0, cpu1 = pa.cpus
    assert (cpu0.node, cpu1.node) == (0, 1)
    assert cpu1.zonelists[ZONE_NORMAL] == [n1_normal, n0_normal, n0_dma32]
    got = []

    async def actor() -> None:
        # node 1 alone: allocate until its Normal zone fails the LOW watermark
        while True:
            pfn = await pa.alloc_pages(cpu1, 0, G.GFP_KERNEL)
            assert pfn >= 0
            got.append(pfn)
            if pa.zone_of(pfn) is not n1_normal:
                break

    sim.spawn("cpu1", actor)
    await sim.run()
    last = got[-1]
    # the page came from node 0's Normal zone, through CPU 1's pcp for that zone
    assert pa.zone_of(last) is n0_normal
    assert cpu1.pcp[n0_normal.gidx].lock.stats.acquisitions == 1
    remote = cpu1.pcp[n0_normal.gidx]
    # an 8192-page zone has batch 1 (8 -> 2 -> rounddown(3) - 1): a one-page refill
    assert (remote.batch, remote.count, remote.high) == (1, 0, remote.high_min + 1)
    assert n0_normal.lock.stats.acquisitions == 1  # that rmqueue_bulk
    assert cpu0.pcp[n0_normal.gidx].lock.stats.acquisitions == 0
    assert n1_normal.nr_free_pages <= n1_normal.low_wmark_pages
    # node 1 has no DMA32: alloc_flags_nofragment gives no ALLOC_NOFRAGMENT there
    _ac, alloc_flags, _owner = pa._gfp_ctx[(1, G.GFP_KERNEL)]
    assert not alloc_flags & G.ALLOC_NOFRAGMENT
    assert cpu1.stats[0].failures == 0
    pages = {(z.node, z.zone_idx): sum(c.pcp[z.gidx].count for c in pa.cpus) for z in pa.zones}
    check_machine(m, pages)


async def test_nofragment_retry_crossing_nodes() -> None:
    # CPU 0 (node 0, DMA32 populated) allocates with ALLOC_NOFRAGMENT; once node 0's zones
    # fail their watermarks the walk reaches node 1, drops ALLOC_NOFRAGMENT and restarts
    m = two_nodes()
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=1)
    n0_dma32, n0_normal, n1_normal = pa.zones
    cpu0 = pa.cpus[0]
    ac, alloc_flags, _owner = pa.prepare_alloc_pages(cpu0, G.GFP_KERNEL)
    assert alloc_flags & G.ALLOC_NOFRAGMENT
    assert ac.preferred_zoneref is n0_normal and ac.highest_zoneidx == G.ZONE_NORMAL
    assert ac.zonelist == [n0_normal, n0_dma32, n1_normal] and ac.nodemask is None
    for z in (n0_dma32, n0_normal):  # take node 0 down to its watermarks, all unmovable
        while z.nr_free_pages > z.low_wmark_pages:
            rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE)
    out = []

    async def actor() -> None:
        out.append(await pa.alloc_pages(cpu0, 0, G.GFP_KERNEL))

    sim.spawn("cpu0", actor)
    await sim.run()
    assert pa.zone_of(out[0]) is n1_normal
    # the fallback steal in node 1 was done without ALLOC_NOFRAGMENT: an order-0 UNMOVABLE
    # request from an all-MOVABLE zone claims a pageblock below pageblock order
    assert m.memmap.pb_mt[out[0] >> PAGEBLOCK_ORDER] == MIGRATE_UNMOVABLE
