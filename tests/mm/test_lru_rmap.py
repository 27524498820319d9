"""Who holds a page: owner kinds, the per-node LRU lists and the reverse map (mm/lru.py,
mm/rmap.py, the workload's handles), checked against the kernel's rules and counters.

The interfaces compaction and reclaim use are driven here by hand, as they will drive them:
isolate under lru_lock, migrate (rmap_move), put back, evict.
"""

from __future__ import annotations

import random

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.engine import Sim
from emulator.mm.initstate import every_other_chunk
from emulator.mm.invariants import InvariantViolation
from emulator.mm.machine import Machine
from emulator.mm.memmap import (
    OWNER_ANON,
    OWNER_FILE,
    OWNER_MLOCKED,
    OWNER_PINNED,
    OWNER_RECLAIMABLE,
    OWNER_UNMOVABLE,
    PF_ACTIVE,
    PF_ISOLATED,
    PF_LRU,
    PF_LRU_BATCH,
    PF_UNEVICTABLE,
    PG_ALLOC,
)
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_HIGHUSER_MOVABLE
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.procfs.render import render_zoneinfo
from emulator.mm.reclaim.lru import (
    PAGEVEC_SIZE,
    adopt_allocated,
    evict,
    folio_isolate_lru,
    folio_isolate_lru_locked,
    folio_lru_list,
    lru_add_drain,
    putback_lru_page,
)
from emulator.mm.reclaim.lruvec import (
    LRU_ACTIVE_ANON,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LRU_UNEVICTABLE,
)
from emulator.mm.reclaim.rmap import EVICTED, NO_HANDLE
from emulator.workload import AllocClass, Phase, Workload
from emulator.workload.cpu import CpuProgram

ANON = AllocClass(0, "GFP_HIGHUSER_MOVABLE")
FILE = AllocClass(0, "GFP_HIGHUSER_MOVABLE", owner="file")
MLOCK = AllocClass(0, "GFP_HIGHUSER_MOVABLE", owner="mlocked")
SLAB = AllocClass(0, "GFP_KERNEL_ACCOUNT | __GFP_RECLAIMABLE", owner="slab_reclaimable")


def setup(cpus: int = 1, pages: int = 16384) -> tuple[Machine, Sim, PageAllocator, list]:
    m = Machine.simple(Normal=pages)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=cpus)
    wl = Workload([Phase("p", [ANON])])
    progs = [CpuProgram(pa, c, wl, seed=7, use_inbox=False) for c in pa.cpus]
    return m, sim, pa, progs


async def run(sim: Sim, fn) -> None:
    sim.spawn("cpu0", fn)
    await sim.run()


def test_owner_kinds_and_their_defaults() -> None:
    assert ANON.owner_kind == -1  # follows the migratetype: movable -> anon
    assert AllocClass(0, "GFP_KERNEL", owner="movable").owner_kind == OWNER_ANON
    assert AllocClass(0, "GFP_KERNEL", owner="reclaimable").owner_kind == OWNER_RECLAIMABLE
    assert FILE.owner_kind == OWNER_FILE and MLOCK.owner_kind == OWNER_MLOCKED
    with pytest.raises(ValueError, match="valid are"):
        AllocClass(0, "GFP_KERNEL", owner="swap")
    # vm.compact_unevictable_allowed: the kernel's default (CONFIG_COMPACT_UNEVICTABLE_DEFAULT)
    assert Machine.simple(Normal=4096).sysctl.get("vm.compact_unevictable_allowed") == 1


async def test_lru_add_batches_31_folios_then_moves_them_under_lru_lock() -> None:
    _m, sim, pa, (prog,) = setup()
    lv = pa.lruvecs[0]

    async def body() -> None:
        for _ in range(PAGEVEC_SIZE - 1):
            await prog._allocate(ANON)
        # folio_add_lru: 30 folios wait in the CPU's batch, not PageLRU, lru_lock untouched
        assert len(pa.cpus[0].lru_add) == PAGEVEC_SIZE - 1 and lv.nr_pages[0] == 0
        assert lv.lru_lock.stats.acquisitions == 0
        pa.check()
        await prog._allocate(ANON)  # the 31st fills the batch: one lru_lock hold moves all
        assert pa.cpus[0].lru_add == [] and lv.lru_lock.stats.acquisitions == 1
        assert lv.nr_pages[LRU_INACTIVE_ANON] == PAGEVEC_SIZE
        # a large folio is added at once (folio_test_large)
        await prog._allocate(AllocClass(9, "GFP_TRANSHUGE_LIGHT"))
        assert lv.nr_pages[LRU_INACTIVE_ANON] == PAGEVEC_SIZE + 512
        assert lv.lru_lock.stats.acquisitions == 2
        pa.check()

    await run(sim, body)
    # the list is newest first: the THP head, then the 31 order-0 pages in reverse order
    pfns = [pa.machine.rmap.pfn(h) for h, _ in prog.held]
    assert lv.folios(LRU_INACTIVE_ANON) == pfns[::-1]


async def test_counters_for_every_owner_kind_in_vmstat_and_zoneinfo() -> None:
    m, sim, pa, (prog,) = setup()
    lv = pa.lruvecs[0]
    pinned = AllocClass(0, "GFP_HIGHUSER_MOVABLE", pinned=1.0)
    kernel = AllocClass(0, "GFP_KERNEL")

    async def body() -> None:
        for cls, n in ((ANON, 5), (FILE, 7), (MLOCK, 3), (SLAB, 4), (pinned, 2), (kernel, 6)):
            for _ in range(n):
                await prog._allocate(cls)
        await lru_add_drain(pa, pa.cpus[0])
        pa.check()

    await run(sim, body)
    assert lv.node_stats() == {
        "nr_inactive_anon": 7,  # anon and long-term pinned anon
        "nr_active_anon": 0,
        "nr_inactive_file": 7,
        "nr_active_file": 0,
        "nr_unevictable": 3,
        "nr_slab_reclaimable": 4,
        "nr_isolated_anon": 0,
        "nr_isolated_file": 0,
    }
    assert lv.zone_stats(pa.zones[0].zone_idx)["nr_mlock"] == 3
    assert pa.vm_events["unevictable_pgs_culled"] == 3
    kinds = sorted(m.memmap.owner[pa.machine.rmap.pfn(h)] for h, _ in prog.held)
    assert kinds.count(OWNER_PINNED) == 2 and kinds.count(OWNER_UNMOVABLE) == 6
    for h, _ in prog.held:
        pfn = pa.machine.rmap.pfn(h)
        on = m.memmap.pflags[pfn]
        assert bool(on & PF_LRU) == (
            m.memmap.owner[pfn] not in (OWNER_RECLAIMABLE, OWNER_UNMOVABLE)
        )
        assert bool(on & PF_UNEVICTABLE) == (m.memmap.owner[pfn] == OWNER_MLOCKED)
    totals = m.node_stat_totals()
    assert totals["nr_zone_inactive_file"] == totals["nr_inactive_file"] == 7
    text = render_zoneinfo(m.snapshot())
    assert "\n  per-node stats\n      nr_inactive_anon 7\n      nr_active_anon 0\n" in text
    assert "\n      nr_zone_inactive_file 7\n" in text and "\n      nr_mlock     3\n" in text

    # freeing gives everything back
    async def free_all() -> None:
        for h, order in list(prog.held):
            await prog._free(h, order)
        pa.check()

    sim.spawn("cpu0-free", free_all, start=sim.now)
    await sim.run()
    assert lv.nr_pages == [0] * 5 and lv.nr_slab_reclaimable == 0
    assert lv.zone_stats(pa.zones[0].zone_idx)["nr_mlock"] == 0
    assert pa.vm_events["unevictable_pgs_cleared"] == 3
    assert m.nr_free_pages + pa.pcp_pages() == pa.zones[0].managed_pages


async def test_migrated_page_keeps_its_holder_and_the_holder_frees_the_new_pfn() -> None:
    # what compaction does with one page: isolate it from the LRU under lru_lock, allocate
    # the target, move the holder's reference (remove_migration_ptes), free the source, put
    # the target back. The workload later frees its handle: the *new* pfn is freed.
    m, sim, pa, (prog,) = setup()
    mm = m.memmap
    rmap = m.rmap
    lv = pa.lruvecs[0]
    cpu = pa.cpus[0]
    seen: dict[str, int] = {}

    async def body() -> None:
        for _ in range(PAGEVEC_SIZE):
            await prog._allocate(ANON)
        h, order = prog.held[3]
        old = rmap.pfn(h)
        assert await folio_isolate_lru(pa, old)
        assert mm.pflags[old] & PF_ISOLATED and lv.nr_isolated_anon == 1
        assert lv.nr_pages[LRU_INACTIVE_ANON] == PAGEVEC_SIZE - 1
        assert not await folio_isolate_lru(pa, old)  # already isolated: folio_test_clear_lru
        pa.check()
        new = await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE)
        rmap.rmap_move(old, new, 0)
        assert rmap.pfn(h) == new and rmap.holder(new) == h and rmap.holder(old) == NO_HANDLE
        assert mm.owner[new] == OWNER_ANON and mm.pflags[new] & PF_ISOLATED
        await free_pages(pa, cpu, old, 0)
        await putback_lru_page(pa, cpu, new)
        assert lv.nr_isolated_anon == 0 and mm.pflags[new] & PF_LRU
        assert lv.nr_pages[LRU_INACTIVE_ANON] == PAGEVEC_SIZE
        pa.check()
        await prog._free(h, order)  # the holder frees what it holds now
        seen.update(old=old, new=new)
        pa.check()

    await run(sim, body)
    assert mm.state[seen["new"]] != PG_ALLOC and mm.state[seen["old"]] != PG_ALLOC
    assert lv.nr_pages[LRU_INACTIVE_ANON] == PAGEVEC_SIZE - 1


async def test_holder_that_frees_an_isolated_page_leaves_it_to_the_isolater() -> None:
    # folio_put of the holder's reference while compaction holds the folio isolated: the
    # page is not freed; putback drops the last reference and frees it
    m, sim, pa, (prog,) = setup()
    mm = m.memmap
    lv = pa.lruvecs[0]

    async def body() -> None:
        for _ in range(PAGEVEC_SIZE):
            await prog._allocate(FILE)
        h, order = prog.held[0]
        pfn = m.rmap.pfn(h)
        lock = lv.lru_lock
        await lock.acquire("isolate_migratepages_block")
        assert folio_isolate_lru_locked(pa, lv, pfn)
        lock.release()
        await prog._free(h, order)
        assert mm.state[pfn] == PG_ALLOC and lv.nr_isolated_file == 1
        pa.check()
        await putback_lru_page(pa, pa.cpus[0], pfn)
        assert mm.state[pfn] != PG_ALLOC and lv.nr_isolated_file == 0
        pa.check()

    await run(sim, body)


async def test_free_while_in_the_lru_add_batch_frees_at_the_flush() -> None:
    m, sim, pa, (prog,) = setup()
    mm = m.memmap

    async def body() -> None:
        await prog._allocate(ANON)
        h, order = prog.held.pop()
        pfn = m.rmap.pfn(h)
        await prog._free(h, order)
        assert mm.state[pfn] == PG_ALLOC and mm.pflags[pfn] & PF_LRU_BATCH  # the batch's ref
        pa.check()
        await lru_add_drain(pa, pa.cpus[0])
        assert mm.state[pfn] != PG_ALLOC and pa.lruvecs[0].nr_pages == [0] * 5
        pa.check()

    await run(sim, body)


async def test_evicted_file_page_tells_its_holder_which_refaults_it() -> None:
    m, sim, pa, (prog,) = setup()
    mm = m.memmap
    rmap = m.rmap
    lv = pa.lruvecs[0]
    cpu = pa.cpus[0]

    async def body() -> None:
        for _ in range(PAGEVEC_SIZE):
            await prog._allocate(FILE)
        h, _ = prog.held[5]
        pfn = rmap.pfn(h)
        assert await folio_isolate_lru(pa, pfn)
        assert evict(pa, pfn) == h
        await free_pages(pa, cpu, pfn, 0)  # reclaim frees it
        assert rmap.pfn(h) == EVICTED and rmap.evicted[cpu.id] == [h]
        assert lv.nr_isolated_file == 0 and lv.nr_pages[LRU_INACTIVE_FILE] == PAGEVEC_SIZE - 1
        pa.check()
        # the page-cache workload reads it back at its next allocation: same handle, new pfn
        await prog._allocate(FILE)
        new = rmap.pfn(h)
        assert new >= 0 and mm.owner[new] == OWNER_FILE and rmap.holder(new) == h
        assert pa.vm_events["workingset_refault_file"] == 1 and prog.refaults == 1
        await lru_add_drain(pa, cpu)
        pa.check()

    await run(sim, body)
    with pytest.raises(ValueError, match="isolated page-cache folio"):
        evict(pa, rmap.pfn(prog.held[0][0]))  # not isolated: reclaim must isolate first


async def test_evicted_page_freed_by_its_holder_needs_no_free() -> None:
    m, sim, pa, (prog,) = setup()
    rmap = m.rmap

    async def body() -> None:
        for _ in range(PAGEVEC_SIZE):
            await prog._allocate(FILE)
        h, order = prog.held[0]
        pfn = rmap.pfn(h)
        assert await folio_isolate_lru(pa, pfn)
        evict(pa, pfn)
        await free_pages(pa, pa.cpus[0], pfn, 0)
        await prog._free(h, order)  # the holder lets go of an evicted page: nothing to free
        assert rmap.take_evicted(pa.cpus[0].id) == [h]
        pa.check()

    await run(sim, body)


def test_invariant_checker_catches_a_wrong_lru_count() -> None:
    m = Machine.simple(Normal=8192)
    every_other_chunk(m.zone("Normal"), 1)
    pa = PageAllocator(m, Sim("fifo"), cpus_per_node=1)
    n = adopt_allocated(pa)
    assert n == 4096 and pa.lruvecs[0].nr_pages[LRU_INACTIVE_ANON] == 4096
    pa.check()
    pa.lruvecs[0].nr_pages[LRU_INACTIVE_ANON] += 1
    with pytest.raises(InvariantViolation, match="lru-count"):
        pa.check()
    pa.lruvecs[0].nr_pages[LRU_INACTIVE_ANON] -= 1
    m.memmap.pflags[next(iter(pa.lruvecs[0].folios(0)))] |= PF_ISOLATED
    with pytest.raises(InvariantViolation, match="lru-entry"):
        pa.check()


async def test_mlocked_folios_go_on_the_unevictable_list() -> None:
    _m, sim, pa, (prog,) = setup()
    lv = pa.lruvecs[0]

    async def body() -> None:
        await prog._allocate(AllocClass(9, "GFP_TRANSHUGE_LIGHT", owner="mlocked"))
        pa.check()

    await run(sim, body)
    assert lv.nr_pages[LRU_UNEVICTABLE] == 512 and lv.nr_mlock[pa.zones[0].zone_idx] == 512
    assert pa.vm_events["unevictable_pgs_mlocked"] == 512


async def _random_run(seed: int) -> tuple:
    _m, sim, pa, progs = setup(cpus=2, pages=32768)
    classes = [ANON, FILE, MLOCK, SLAB, AllocClass(2, "GFP_HIGHUSER_MOVABLE", owner="file")]
    rng = random.Random(seed)

    async def cpu_body(prog: CpuProgram) -> None:
        for _ in range(300):
            await prog._allocate(rng.choice(classes))
            if prog.held and rng.random() < 0.4:
                h, order = prog.held.pop(rng.randrange(len(prog.held)))
                await prog._free(h, order)
        pa.check()

    for prog in progs:
        sim.spawn(f"cpu{prog.cpu.id}", cpu_body, prog)
    await sim.run()
    pa.check()
    lv = pa.lruvecs[0]
    return (
        tuple(lv.nr_pages),
        lv.nr_slab_reclaimable,
        tuple(tuple(lv.folios(i)) for i in range(5)),
        tuple(pa.machine.rmap.pfn(h) for p in progs for h, _ in p.held),
    )


async def test_lru_state_is_deterministic_and_consistent_per_seed() -> None:
    a = await _random_run(3)
    b = await _random_run(3)
    assert a == b
    assert a[0][LRU_INACTIVE_FILE] > 0 and a[0][LRU_UNEVICTABLE] > 0


# -- hypothesis: any interleaving of the holders' and the isolaters' operations ---------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["alloc", "free", "isolate", "putback", "migrate", "evict", "drain"]),
        st.integers(0, 1 << 16),
    ),
    min_size=40,
    max_size=160,
)


@settings(max_examples=40, deadline=None)
@given(OPS)
def test_lru_and_rmap_invariants_hold_for_any_sequence(ops: list[tuple[str, int]]) -> None:
    """Holders allocate and free, an isolater isolates, migrates (rmap_move), evicts and puts
    back, in any order: after every step the LRU lists, their counters, nr_isolated_*, the
    batches and the reverse map agree (check_lru), and every page is accounted."""
    m, sim, pa, (prog,) = setup()
    rmap = m.rmap
    mm = m.memmap
    cpu = pa.cpus[0]
    classes = [ANON, FILE, MLOCK, SLAB, AllocClass(2, "GFP_HIGHUSER_MOVABLE", owner="file")]
    isolated: list[int] = []

    async def body() -> None:
        for op, x in ops:
            if op == "alloc":
                await prog._allocate(classes[x % len(classes)])
            elif op == "free" and prog.held:
                h, order = prog.held.pop(x % len(prog.held))
                await prog._free(h, order)
            elif op == "isolate" and prog.held:
                pfn = rmap.pfn(prog.held[x % len(prog.held)][0])
                if pfn >= 0 and await folio_isolate_lru(pa, pfn):
                    isolated.append(pfn)
            elif op == "putback" and isolated:
                await putback_lru_page(pa, cpu, isolated.pop(x % len(isolated)))
            elif op == "migrate" and isolated:
                old = isolated.pop(x % len(isolated))
                order = mm.order[old]
                new = await pa.alloc_pages(cpu, order, GFP_HIGHUSER_MOVABLE)
                if new < 0:
                    isolated.append(old)
                    continue
                rmap.rmap_move(old, new, order)
                await free_pages(pa, cpu, old, order)
                isolated.append(new)
            elif op == "evict" and isolated:
                pfn = isolated[x % len(isolated)]
                if mm.owner[pfn] == OWNER_FILE:
                    isolated.remove(pfn)
                    evict(pa, pfn)
                    await free_pages(pa, cpu, pfn, mm.order[pfn])
            elif op == "drain":
                await lru_add_drain(pa, cpu)
            pa.check()
        for pfn in isolated:
            await putback_lru_page(pa, cpu, pfn)
        for h, order in prog.held:
            await prog._free(h, order)
        await lru_add_drain(pa, cpu)
        pa.check()

    sim.spawn("cpu0", body)
    trio.run(sim.run)
    zone = pa.zones[0]
    assert pa.lruvecs[0].nr_pages == [0] * 5 and pa.lruvecs[0].nr_isolated_anon == 0
    assert zone.nr_free_pages + pa.pcp_pages() == zone.managed_pages
    assert rmap.nr_handles() == 0


# The holder, the LRU and the reverse map racing with compaction's isolation: a holder that lets
# go of an isolated folio, the putback that frees it, and check_lru's view of both.


def setup_file_holders(cpus: int = 2) -> tuple[Machine, Sim, PageAllocator, list[CpuProgram]]:
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
    m, sim, pa, (prog, _) = setup_file_holders()
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


async def _migrate(pa: PageAllocator, old: int) -> int:
    """What compaction does with one isolated folio: a target, remove_migration_ptes, the old
    block freed (migrate_folio_move + the source's release)."""
    new = await pa.alloc_pages(pa.cpus[0], 0, GFP_HIGHUSER_MOVABLE)
    pa.machine.rmap.rmap_move(old, new, 0)
    await free_pages(pa, pa.cpus[0], old, 0)
    return new


async def test_a_migrated_mlocked_folio_stays_unevictable() -> None:
    # folio_migrate_flags: folio_test_clear_unevictable(folio) -> folio_set_unevictable(new).
    # The new folio goes back on the unevictable list; nr_mlock and the unevictable_pgs_*
    # events do not move (the folio stays mlocked), until its holder lets go of it.
    m, sim, pa, (prog, _) = setup_file_holders()
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
    m, sim, pa, (prog, _) = setup_file_holders()
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
