"""Review (mutation testing) of the LRU, the reverse map and check_lru: each test pins behaviour
that a plausible one-line mutation of emulator/mm/reclaim/lru.py, rmap.py or invariants.py changed
while the rest of the suite stayed green (see the review report).

The rules are the kernel's: a folio isolated by another CPU while its holder waits for
``lru_lock`` in __page_cache_release is no longer on a list (folio_test_clear_lru failed for the
holder's side), so the holder neither takes it off a list nor frees it: the isolater's
folio_putback_lru drops the last reference (mm/swap.c, mm/vmscan.c: folio_isolate_lru).
"""

from __future__ import annotations

from emulator.engine import Sim
from emulator.mm.machine import Machine
from emulator.mm.memmap import PF_ACTIVE, PF_ISOLATED, PF_LRU, PF_UNEVICTABLE, PG_ALLOC
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_HIGHUSER_MOVABLE
from emulator.mm.reclaim.lru import (
    LRU_ACTIVE_ANON,
    LRU_INACTIVE_ANON,
    LRU_UNEVICTABLE,
    PAGEVEC_SIZE,
    folio_isolate_lru,
    folio_isolate_lru_locked,
    folio_lru_list,
    putback_lru_page,
)
from emulator.workload import AllocClass, Phase, Workload
from emulator.workload.cpu import CpuProgram

FILE = AllocClass(0, "GFP_HIGHUSER_MOVABLE", owner="file")


def setup(cpus: int = 2) -> tuple[Machine, Sim, PageAllocator, list[CpuProgram]]:
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=cpus)
    wl = Workload([Phase("p", [FILE])])
    progs = [CpuProgram(pa, c, wl, seed=7, use_inbox=False) for c in pa.cpus]
    return m, sim, pa, progs


async def test_holder_waiting_for_lru_lock_while_the_folio_is_isolated_leaves_it_alone() -> None:
    # cpu1 (compaction) holds lru_lock for 5 us and isolates the folio at the end of its hold;
    # cpu0's holder lets go meanwhile: its trylock fails, it waits, and when it gets the lock
    # the folio is isolated (not PageLRU). It must leave the folio to cpu1, whose putback
    # then frees it: freed once, every counter back.
    m, sim, pa, (prog, _) = setup()
    mm = m.memmap
    lv = pa.lruvecs[0]
    seen: dict[str, int] = {}

    async def compact(pfn: int) -> None:
        lock = lv.lru_lock
        await lock.acquire("isolate_migratepages_block")
        await sim.delay(5_000)
        await sim.sync()
        assert folio_isolate_lru_locked(pa, lv, pfn)
        lock.release()
        await sim.delay(1_000)
        await sim.sync()
        # the holder has let go, and the folio is still allocated and isolated
        seen["state_before_putback"] = mm.state[pfn]
        seen["isolated_before_putback"] = lv.nr_isolated_file
        pa.check()
        await putback_lru_page(pa, pa.cpus[1], pfn)

    async def holder() -> None:
        for _ in range(PAGEVEC_SIZE):
            await prog._allocate(FILE)
        h, order = prog.held.pop(0)
        pfn = m.rmap.pfn(h)
        assert mm.pflags[pfn] & PF_LRU
        seen["pfn"] = pfn
        await sim.start_actor("cpu1", compact, pfn)
        await sim.delay(100)
        await prog._free(h, order)
        seen["freed_at"] = sim.now

    sim.spawn("cpu0", holder)
    await sim.run()
    pfn = seen["pfn"]
    assert seen["state_before_putback"] == PG_ALLOC
    assert seen["isolated_before_putback"] == 1
    assert seen["freed_at"] >= 5_000  # it did wait for cpu1's lru_lock hold
    assert mm.state[pfn] != PG_ALLOC and not mm.pflags[pfn] & (PF_ISOLATED | PF_LRU)
    assert lv.nr_isolated_file == 0
    assert lv.nr_pages[2] == PAGEVEC_SIZE - 1  # nr_inactive_file: the others stay
    assert m.rmap.nr_handles() == PAGEVEC_SIZE - 1
    pa.check()


MLOCK = AllocClass(0, "GFP_HIGHUSER_MOVABLE", owner="mlocked")
ANON = AllocClass(0, "GFP_HIGHUSER_MOVABLE")


async def _migrate(pa: PageAllocator, old: int) -> int:
    """What compaction does with one isolated folio: a target, remove_migration_ptes, the old
    block freed (migrate_folio_move + the source's release)."""
    new = await pa.alloc_pages(pa.cpus[0], 0, GFP_HIGHUSER_MOVABLE)
    pa.machine.rmap.rmap_move(old, new, 0)
    await pa.free_pages(pa.cpus[0], old, 0)
    return new


async def test_a_migrated_mlocked_folio_stays_unevictable() -> None:
    # folio_migrate_flags: folio_test_clear_unevictable(folio) -> folio_set_unevictable(new).
    # The new folio goes back on the unevictable list; nr_mlock and the unevictable_pgs_*
    # events do not move (the folio stays mlocked), until its holder lets go of it.
    m, sim, pa, (prog, _) = setup()
    mm = m.memmap
    lv = pa.lruvecs[0]
    zidx = pa.zones[0].zone_idx

    async def body() -> None:
        for _ in range(PAGEVEC_SIZE):
            await prog._allocate(MLOCK)
        assert lv.nr_pages[LRU_UNEVICTABLE] == PAGEVEC_SIZE == lv.nr_mlock[zidx]
        h, order = prog.held[4]
        old = m.rmap.pfn(h)
        assert await folio_isolate_lru(pa, old)
        new = await _migrate(pa, old)
        assert mm.pflags[new] & PF_UNEVICTABLE and mm.pflags[new] & PF_ISOLATED
        await putback_lru_page(pa, pa.cpus[0], new)
        assert new in lv.folios(LRU_UNEVICTABLE)
        assert lv.nr_pages[LRU_UNEVICTABLE] == PAGEVEC_SIZE == lv.nr_mlock[zidx]
        assert lv.nr_pages[LRU_INACTIVE_ANON] == 0
        assert pa.vm_events["unevictable_pgs_cleared"] == 0
        pa.check()
        await prog._free(h, order)
        assert lv.nr_mlock[zidx] == PAGEVEC_SIZE - 1
        assert pa.vm_events["unevictable_pgs_cleared"] == 1
        pa.check()

    sim.spawn("cpu0", body)
    await sim.run()


async def test_an_active_folio_goes_back_on_the_active_list_and_migrates_active() -> None:
    # folio_lru_list: an active folio belongs on the active list of its type; putback of an
    # isolated folio that was activated meanwhile (folio_set_active) puts it there, and
    # folio_migrate_flags carries PG_active to the new folio.
    m, sim, pa, (prog, _) = setup()
    mm = m.memmap
    lv = pa.lruvecs[0]

    async def body() -> None:
        for _ in range(PAGEVEC_SIZE):
            await prog._allocate(ANON)
        h, _ = prog.held[2]
        pfn = m.rmap.pfn(h)
        assert await folio_isolate_lru(pa, pfn)
        mm.pflags[pfn] |= PF_ACTIVE  # folio_set_active while isolated
        assert folio_lru_list(mm, pfn) == LRU_ACTIVE_ANON
        new = await _migrate(pa, pfn)
        assert mm.pflags[new] & PF_ACTIVE
        assert folio_lru_list(mm, new) == LRU_ACTIVE_ANON
        await putback_lru_page(pa, pa.cpus[0], new)
        assert lv.folios(LRU_ACTIVE_ANON) == [new]
        assert lv.node_stats()["nr_active_anon"] == 1
        assert lv.node_stats()["nr_inactive_anon"] == PAGEVEC_SIZE - 1
        pa.check()

    sim.spawn("cpu0", body)
    await sim.run()
