"""Migration against mm/migrate.c (6.12) as compaction uses it: a migrated page keeps its
holder (the reverse map moves the holder's handle to the new pfn, so the holder later frees
the page where it now is), keeps its owner kind and goes back on the LRU, and the old page is
freed; a long-term pinned page is never isolated and never moved; a page pinned after
isolation fails with -EAGAIN on every pass and ends as a permanent failure (pgmigrate_fail)
left for putback.
"""

from __future__ import annotations

from emulator.engine import Sim
from emulator.mm.compaction.compact import compact_nodes
from emulator.mm.compaction.isolate_migrate import putback_movable_pages
from emulator.mm.initstate import free_k_of_n
from emulator.mm.internal import MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT, CompactControl
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_ANON, OWNER_PINNED, PF_ISOLATED, PF_LRU, PG_ALLOC
from emulator.mm.migrate import NR_MAX_MIGRATE_PAGES_RETRY, migrate_pages
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.reclaim.lru import adopt_allocated, folio_isolate_lru, release_handle


def setup(pin_every: int = 0):
    m = Machine.simple(DMA32=4096, Normal=16384)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    mm = m.memmap
    n = 0
    for z in pa.zones:
        free_k_of_n(z, 1, 2)
        if pin_every:
            for pfn in range(z.zone_start_pfn, z.zone_end_pfn):
                if mm.state[pfn] == PG_ALLOC:
                    if n % pin_every == 0:
                        mm.set_owner(pfn, 0, OWNER_PINNED)
                    n += 1
    adopt_allocated(pa)  # every allocated page: on the LRU, with a holder handle
    return m, sim, pa


async def test_migrated_pages_keep_their_holder_and_pinned_pages_stay() -> None:
    m, sim, pa = setup(pin_every=7)
    mm = m.memmap
    rmap = m.rmap
    handles = {
        int(mm.handle[p]): (p, mm.owner[p])
        for z in pa.zones
        for p in range(z.zone_start_pfn, z.zone_end_pfn)
        if mm.state[p] == PG_ALLOC
    }
    assert all(h >= 0 for h in handles)

    async def script() -> None:
        await compact_nodes(pa, pa.cpus[0])
        assert pa.vm_events["pgmigrate_success"] > 0
        moved = 0
        for h, (was, owner) in handles.items():
            pfn = rmap.pfn(h)
            assert mm.state[pfn] == PG_ALLOC and mm.order[pfn] == 0
            assert mm.owner[pfn] == owner  # the same kind of memory
            assert mm.pflags[pfn] & PF_LRU and not mm.pflags[pfn] & PF_ISOLATED
            if owner == OWNER_PINNED:
                assert pfn == was  # never moved
            moved += pfn != was
        assert moved > 0
        pa.check()
        # each holder lets go through the handle it has: the page where it is now is freed
        for h in handles:
            await release_handle(pa, pa.cpus[1], h)

    sim.spawn("script", script)
    await sim.run()
    pa.check()
    free = sum(z.nr_free_pages for z in pa.zones) + pa.pcp_pages()
    assert free == sum(z.managed_pages for z in pa.zones)  # every page came back


async def test_pinned_after_isolation_fails_permanently() -> None:
    m, sim, pa = setup()
    mm = m.memmap
    z = m.zone("Normal")
    src = next(p for p in range(z.zone_start_pfn, z.zone_end_pfn) if mm.state[p] == PG_ALLOC)
    out: dict[str, int] = {}

    async def script() -> None:
        for mode in (MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT):
            assert await folio_isolate_lru(pa, src)
            mm.set_owner(src, 0, OWNER_PINNED)  # then long-term pinned by someone (GUP)
            cc = CompactControl(zone=z, order=-1, mode=mode, pa=pa, cpu=pa.cpus[0])
            cc.migratepages = [src]
            cc.nr_migratepages = 1
            t0 = sim.current.now
            err, nr_succeeded = await migrate_pages(cc)
            out[f"took{mode}"] = sim.current.now - t0
            assert (err, nr_succeeded) == (1, 0)  # one folio not migrated
            assert cc.migratepages == [src]  # left for putback
            await putback_movable_pages(cc)
            assert cc.migratepages == []
            assert mm.pflags[src] & PF_LRU and mm.state[src] == PG_ALLOC
            mm.set_owner(src, 0, OWNER_ANON)

    sim.spawn("script", script)
    await sim.run()
    pa.check()
    assert pa.vm_events["pgmigrate_fail"] == 2
    assert pa.vm_events["pgmigrate_success"] == 0
    # every pass retried it: 10 attempts (ASYNC), 3 + 7 (SYNC_LIGHT)
    assert out[f"took{MIGRATE_ASYNC}"] == NR_MAX_MIGRATE_PAGES_RETRY * pa.costs.migrate_fail
    assert out[f"took{MIGRATE_SYNC_LIGHT}"] == 10 * pa.costs.migrate_fail
