"""Migration against mm/migrate.c (6.12) as compaction uses it: a migrated page keeps its
holder (the reverse map moves the holder's reference to the new pfn, so the holder later frees
the page where it now is), keeps its owner kind, and the old page is freed; a long-term pinned
page is never isolated and never moved; a page pinned after isolation fails with -EAGAIN on
every pass and ends as a permanent failure (pgmigrate_fail) left for putback.
"""

from __future__ import annotations

from emulator.engine import Sim
from emulator.mm.allocator import PageAllocator
from emulator.mm.compaction import compact_nodes
from emulator.mm.compaction_control import MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT
from emulator.mm.initstate import free_k_of_n
from emulator.mm.internal import CompactControl
from emulator.mm.isolate_migrate import OWNER_ISOLATED, putback_movable_pages
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_MOVABLE, OWNER_PINNED, PG_ALLOC
from emulator.mm.migrate import NR_MAX_MIGRATE_PAGES_RETRY, migrate_pages, register_rmap_holder


def setup():  # type: ignore[no-untyped-def]
    m = Machine.simple(DMA32=4096, Normal=16384)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    for z in pa.zones:
        free_k_of_n(z, 1, 2)
    return m, sim, pa


async def test_migrated_pages_keep_their_holder_and_pinned_pages_stay() -> None:
    m, sim, pa = setup()
    mm = m.memmap
    # the holders: one reference per allocated page; every 7th is long-term pinned
    held: dict[int, tuple[int, int]] = {}
    for z in pa.zones:
        for pfn in range(z.zone_start_pfn, z.zone_end_pfn):
            if mm.state[pfn] == PG_ALLOC:
                if len(held) % 7 == 0:
                    mm.set_owner(pfn, 0, OWNER_PINNED)
                held[pfn] = (len(held), mm.owner[pfn])
    pinned = {p for p, (_, o) in held.items() if o == OWNER_PINNED}

    def moved(old: int, new: int, order: int) -> None:
        assert order == 0 and new not in held
        held[new] = held.pop(old)

    register_rmap_holder(pa, moved)
    originally = dict(held)

    # compaction, then (inside the same task) the checks, then the holders free
    async def script() -> None:
        await compact_nodes(pa, pa.cpus[0])
        assert pa.vm_events["pgmigrate_success"] > 0
        assert len(held) == len(originally)
        ids_now = sorted(i for i, _ in held.values())
        assert ids_now == list(range(len(originally)))
        for pfn, (_, owner) in held.items():
            assert mm.state[pfn] == PG_ALLOC and mm.order[pfn] == 0
            assert mm.owner[pfn] == owner  # same owner kind, no isolation mark left
        assert {p for p, (_, o) in held.items() if o == OWNER_PINNED} == pinned
        assert sum(1 for p in originally if p not in held) > 0  # some really moved
        pa.check()
        for pfn in sorted(held):
            await pa.free_pages(pa.cpus[1], pfn, 0)

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
    out: dict[str, object] = {}

    async def script() -> None:
        for mode in (MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT):
            # isolated (off the LRU) and then long-term pinned by someone (GUP)
            mm.owner[src] = OWNER_PINNED | OWNER_ISOLATED
            cc = CompactControl(zone=z, order=-1, mode=mode, pa=pa, cpu=pa.cpus[0])
            cc.migratepages = [src]
            cc.nr_migratepages = 1
            t0 = sim.current.now
            err, nr_succeeded = await migrate_pages(cc)
            out[f"took{mode}"] = sim.current.now - t0
            assert (err, nr_succeeded) == (1, 0)  # one folio not migrated
            assert cc.migratepages == [src]  # left for putback
            await putback_movable_pages(cc)
            assert cc.migratepages == [] and mm.owner[src] == OWNER_PINNED
            assert mm.state[src] == PG_ALLOC
        mm.set_owner(src, 0, OWNER_MOVABLE)

    sim.spawn("script", script)
    await sim.run()
    pa.check()
    assert pa.vm_events["pgmigrate_fail"] == 2
    assert pa.vm_events["pgmigrate_success"] == 0
    # every pass retried it: 10 attempts (ASYNC), 3 + 7 (SYNC_LIGHT)
    assert out[f"took{MIGRATE_ASYNC}"] == NR_MAX_MIGRATE_PAGES_RETRY * pa.costs.migrate_fail
    assert out[f"took{MIGRATE_SYNC_LIGHT}"] == 10 * pa.costs.migrate_fail
