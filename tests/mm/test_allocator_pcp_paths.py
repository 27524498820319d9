"""The allocator's pcp paths against Linux 6.12 semantics: pages freed to a pcp list are not
merged and not counted (buddyinfo and NR_FREE_PAGES do not move until a drain), the "allocate,
free, drain, the block is back at order 10" pattern, drain_all_pages from another CPU (pages
hidden on a remote pcp make a high-order watermark check fail until the drain), the
pcpu_drain_mutex trylock rule, and the pcp spin_trylock falling back to the buddy path.
"""

from __future__ import annotations

from emulator.engine import Sim
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_MOVABLE, PG_ALLOC, PG_BUDDY, PG_PCP
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.page_alloc.drain import drain_all_pages
from emulator.mm.page_alloc.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_TRANSHUGE_LIGHT
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.page_alloc.watermark import zone_watermark_ok
from emulator.mm.procfs.render import render_buddyinfo
from emulator.mm.snapshot import MIGRATE_MOVABLE
from emulator.mm.zone import ZONE_NORMAL


def buddyinfo(m: Machine) -> str:
    return render_buddyinfo(m.snapshot())


def hidden_setup(cpus: int = 2):
    """Normal = 65536 pages (64 order-10 blocks); 2 CPUs: batch 15, high_min 4047/2 = 2023.

    Everything is allocated, then quarters 0 and 2 of blocks 0-9 are freed: 5120 free pages
    (above the high watermark, 4856) in order-8 blocks only. Block 10 is split (split_page)
    into 1024 allocated order-0 pages for CPU 0 to free onto its pcp; block 11 likewise, as
    spare order-0 pages.
    """
    m = Machine.simple(Normal=65536)
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=cpus)
    z = pa.zones[0]
    mm = m.memmap
    blocks = [rmqueue_buddy_locked(z, 10, MIGRATE_MOVABLE) for _ in range(64)]
    assert z.nr_free_pages == 0
    for b in blocks[:10]:
        for q in range(4):
            mm.mark_block(b + 256 * q, 8, PG_ALLOC, OWNER_MOVABLE)
        free_one_page_locked(z, b, 8)
        free_one_page_locked(z, b + 512, 8)
    hidden = []
    spare = []
    for b, out in ((blocks[10], hidden), (blocks[11], spare)):
        for p in range(b, b + 1024):
            mm.mark_block(p, 0, PG_ALLOC, OWNER_MOVABLE)
            out.append(p)
    assert z.nr_free_pages == 5120 > z.high_wmark_pages == 4856
    pa.check()
    return m, pa, sim, hidden, spare


async def test_pcp_frees_do_not_merge_and_hide_from_watermarks() -> None:
    m, pa, sim, hidden, _ = hidden_setup()
    z = pa.zones[0]
    cpu0, cpu1 = pa.cpus
    before = buddyinfo(m)
    low = z.low_wmark_pages
    assert zone_watermark_ok(z, 8, low, ZONE_NORMAL)
    assert not zone_watermark_ok(z, 9, low, ZONE_NORMAL)  # no free block of order >= 9
    result = {}

    async def freer() -> None:
        for p in hidden:
            await free_pages(pa, cpu0, p, 0)
        # count 1024 < high 2023: nothing drained, nothing merged, nothing counted
        assert cpu0.pcp[0].count == 1024
        assert buddyinfo(m) == before
        assert z.nr_free_pages == 5120
        assert all(m.memmap.state[p] == PG_PCP for p in hidden)
        assert z.lock.stats.acquisitions == 0  # the pcp path never took zone->lock
        assert not zone_watermark_ok(z, 10, low, ZONE_NORMAL)

    async def other() -> None:
        # CPU 1, later: an order-10 allocation fails the watermark check although 1024
        # contiguous free pages sit on CPU 0's list
        result["before"] = await pa.alloc_pages(cpu1, 10, GFP_KERNEL)
        result["drained"] = await drain_all_pages(pa, cpu1)
        result["after"] = await pa.alloc_pages(cpu1, 10, GFP_KERNEL)

    sim.spawn("cpu0", freer)
    sim.spawn("cpu1", other, start=1_000_000)
    await sim.run()
    assert result["before"] == -1
    assert cpu1.stats[10].failures == 1
    assert result["drained"] == 1024
    # the drained pages merged back into the order-10 block they came from, and CPU 1 got it
    assert result["after"] == hidden[0]
    assert cpu0.pcp[0].count == 0
    # drain_pages_zone chunks of batch << 5 = 480: 480 + 480 + 64, one zone->lock hold each,
    # then one more for the order-10 allocation (rmqueue_buddy)
    assert z.lock.stats.acquisitions == 4
    pa.check()


async def test_buddyinfo_changes_only_at_the_drain() -> None:
    m, pa, sim, hidden, _ = hidden_setup()
    z = pa.zones[0]
    cpu0 = pa.cpus[0]
    before = buddyinfo(m)

    async def actor() -> None:
        for p in hidden[:512]:
            await free_pages(pa, cpu0, p, 0)
        assert buddyinfo(m) == before
        await drain_all_pages(pa, cpu0, z)  # the local CPU's own drain, zone-specific
        # the 512 pages merged into one order-9 block
        assert z.nr_free[9] == 1 and z.nr_free_pages == 5120 + 512
        assert buddyinfo(m) != before

    sim.spawn("cpu0", actor)
    await sim.run()
    line = buddyinfo(m).split()
    # "Node 0, zone Normal" then 11 counts: orders 0-7 empty, 20 order-8, 1 order-9, 0 order-10
    assert line[4:] == ["0"] * 8 + ["20", "1", "0"]


async def test_alloc_free_drain_block_back_at_order_10() -> None:
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=2)
    z = pa.zones[0]
    boot = buddyinfo(m)
    assert z.nr_free[10] == 16
    cpu0, cpu1 = pa.cpus
    held: list[tuple[int, int]] = []

    async def allocator_cpu() -> None:
        for i in range(60):  # 10 x (1 + 1 + 2 + 8 + 512 + 32) = 5560 pages
            order = (0, 0, 1, 3, 9, 5)[i % 6]
            gfp = GFP_TRANSHUGE_LIGHT if order == 9 else GFP_HIGHUSER_MOVABLE
            pfn = await pa.alloc_pages(cpu0, order, gfp)
            assert pfn >= 0
            held.append((pfn, order))
        assert z.nr_free[10] < 16

    async def freeing_cpu() -> None:
        # CPU 1 frees everything CPU 0 allocated (cross-CPU frees land on CPU 1's pcp)
        for pfn, order in held:
            await free_pages(pa, cpu1, pfn, order)
        pcp_left = sum(c.pcp[0].count for c in pa.cpus)
        assert pcp_left > 0  # not yet back: pages sit on both CPUs' lists
        assert z.nr_free_pages == z.managed_pages - pcp_left
        assert z.nr_free[10] < 16
        assert await drain_all_pages(pa, cpu1) == pcp_left

    sim.spawn("cpu0", allocator_cpu)
    sim.spawn("cpu1", freeing_cpu, start=10_000_000)
    await sim.run()
    assert buddyinfo(m) == boot
    assert z.nr_free[10] == 16
    assert m.memmap.state[0] == PG_BUDDY and m.memmap.order[0] == 10
    pa.check()


async def test_alloc_free_drain_unmovable_also_returns_to_order_10() -> None:
    # GFP_KERNEL allocations steal a MOVABLE pageblock; once everything is freed and drained,
    # the zone is whole order-10 blocks again (one of them now an Unmovable pageblock)
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=1)
    z = pa.zones[0]
    cpu = pa.cpus[0]

    async def actor() -> None:
        orders = (3, 2, 1, 0) * 40
        pages = [(await pa.alloc_pages(cpu, o, GFP_KERNEL), o) for o in orders]
        # high orders first: consecutive order 1-3 frees are "free_high" and drain the whole
        # list; the order-0 frees at the end stay on it
        pages.sort(key=lambda po: -po[1])
        for pfn, o in pages:
            await free_pages(pa, cpu, pfn, o)
        assert cpu.pcp[0].count >= 40
        assert z.nr_free[10] < 16
        assert z.nr_free_pages + cpu.pcp[0].count == z.managed_pages
        await drain_all_pages(pa, cpu)

    sim.spawn("cpu0", actor)
    await sim.run()
    assert z.nr_free[10] == 16 and z.nr_free_pages == z.managed_pages
    pa.check()


async def test_global_drain_returns_at_once_while_another_runs() -> None:
    _m, pa, sim, hidden, _ = hidden_setup()
    z = pa.zones[0]
    cpu0, cpu1 = pa.cpus
    T = 1_000_000
    seen = {}

    async def holder() -> None:
        for p in hidden:
            await free_pages(pa, cpu0, p, 0)
        me = sim.current
        await sim.delay(T + 500 - me.now)
        # CPU 1 started draining at T and holds pcpu_drain_mutex: a global drain returns at
        # once, draining nothing (CPU 1 is busy with the first 480-page chunk)
        seen["global"] = await drain_all_pages(pa, cpu0)
        seen["t_global"] = me.now
        seen["count_then"] = cpu0.pcp[0].count
        # a zone drain waits for the mutex, then finds nothing left
        seen["zone"] = await drain_all_pages(pa, cpu0, z)
        seen["t_zone"] = me.now

    async def drainer() -> None:
        seen["drainer"] = await drain_all_pages(pa, cpu1)
        seen["t_drainer"] = sim.current.now

    sim.spawn("cpu0", holder)
    sim.spawn("cpu1", drainer, start=T)
    await sim.run()
    assert seen["global"] == 0
    assert seen["t_global"] == T + 500  # no time spent
    assert seen["count_then"] == 1024 - 480
    assert seen["drainer"] == 1024
    assert seen["zone"] == 0
    # the zone drain got the mutex when CPU 1 released it, at the end of CPU 1's drain
    assert seen["t_zone"] == seen["t_drainer"] > T + 500
    mutex = pa.pcpu_drain_mutex.stats
    assert mutex.trylock_failures == 2  # both of CPU 0's trylocks failed
    assert mutex.contentions == 1  # only the zone drain waited
    assert mutex.wait_total == seen["t_drainer"] - (T + 500)
    assert mutex.acquisitions == 2


async def test_alloc_trylock_failure_falls_back_to_buddy() -> None:
    m, pa, sim, hidden, _ = hidden_setup()
    z = pa.zones[0]
    cpu0, cpu1 = pa.cpus
    T = 1_000_000
    seen = {}

    async def victim() -> None:
        for p in hidden:
            await free_pages(pa, cpu0, p, 0)
        me = sim.current
        await sim.delay(T + 1000 - me.now)
        # CPU 1 holds CPU 0's pcp->lock (draining it remotely) at this instant: the trylock
        # fails and rmqueue falls through to rmqueue_buddy under zone->lock
        seen["pfn"] = await pa.alloc_pages(cpu0, 0, GFP_HIGHUSER_MOVABLE)

    async def drainer() -> None:
        await drain_all_pages(pa, cpu1)

    sim.spawn("cpu0", victim)
    sim.spawn("cpu1", drainer, start=T)
    await sim.run()
    pcp_lock = cpu0.pcp[0].lock.stats
    assert pcp_lock.trylock_failures == 1
    st = cpu0.stats[0]
    assert (st.attempts, st.pcp_hits, st.refills, st.failures) == (1, 0, 0, 0)
    assert m.memmap.state[seen["pfn"]] == PG_ALLOC
    # the buddy path waited for the drainer's zone->lock hold
    assert z.lock.stats.contention_points["rmqueue_buddy"] == 1
    assert z.lock.stats.contending_points["drain_pages_zone"] >= 1
    assert cpu0.pcp[0].count == 0  # the drain completed; the page did not come from the pcp
    pa.check()


async def test_free_trylock_failure_frees_to_buddy() -> None:
    m, pa, sim, hidden, spare = hidden_setup()
    z = pa.zones[0]
    cpu0, cpu1 = pa.cpus
    T = 1_000_000
    seen = {}

    async def victim() -> None:
        for p in hidden:
            await free_pages(pa, cpu0, p, 0)
        me = sim.current
        await sim.delay(T + 1000 - me.now)
        pgfree = m.vm_events["pgfree"]
        await free_pages(pa, cpu0, spare[0], 0)
        # straight to the buddy lists (free_one_page), counted once in pgfree
        seen["state"] = m.memmap.state[spare[0]]
        seen["pgfree"] = m.vm_events["pgfree"] - pgfree

    async def drainer() -> None:
        await drain_all_pages(pa, cpu1)

    sim.spawn("cpu0", victim)
    sim.spawn("cpu1", drainer, start=T)
    await sim.run()
    assert cpu0.pcp[0].lock.stats.trylock_failures == 1
    assert seen["state"] == PG_BUDDY
    assert seen["pgfree"] == 1
    assert z.lock.stats.contention_points["free_one_page"] == 1
    assert cpu0.pcp[0].count == 0
    assert z.nr_free_pages == 5120 + 1024 + 1
    pa.check()
