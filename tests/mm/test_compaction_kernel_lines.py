"""Compaction, migration and reclaim decisions pinned to Linux 6.12.0 source lines: the cached
migrate pfn (compaction.c:466-482, pageblock-flags.h:63), the 32-page isolation limit counted
in pages (1242-1256), non-buddy non-LRU pages as isolation failures (1082-1101, 1268-1297),
the order of cc->migratepages (1240; migrate.c:1625, 1733), -ENOMEM accounting
(migrate.c:1836-1849), a capture made during check_drain noticed after the next migrate round
(compaction.c:2687-2710), the too_many_isolated throttle (892-905, 791-822; vmscan.c:520-535),
too_many_isolated's rounding, the free scanner passing over compound pages (630-640), skipped
zones' folios spliced back to the LRU head (vmscan.c:1716-1733) and the THP fault's clearing
(huge_memory.c:1167).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from emulator.engine import Sim
from emulator.mm import migrate as migrate_mod
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import CompactPriority
from emulator.mm.compaction.isolate_free import isolate_freepages_block
from emulator.mm.compaction.isolate_migrate import (
    ISOLATED_THROTTLE_NS,
    isolate_migratepages_block,
    too_many_isolated,
    update_cached_migrate,
)
from emulator.mm.huge_memory import do_huge_pmd_anonymous_page
from emulator.mm.initstate import allocate_everything, free_k_of_n
from emulator.mm.internal import MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT, CompactControl
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_ANON, OWNER_PINNED, PG_ALLOC, PG_ISOLATED
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_KERNEL, GFP_NOFS, GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.mm.reclaim.lruvec import LRU_ACTIVE_ANON, LRU_INACTIVE_ANON
from emulator.mm.reclaim.vmscan import ScanControl, isolate_lru_folios
from emulator.mm.snapshot import PAGEBLOCK_NR_PAGES


def _machine(normal: int = 16384) -> tuple[Machine, Sim, PageAllocator]:
    m = Machine.simple(DMA32=4096, Normal=normal)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    return m, sim, pa


async def _in_actor(sim: Sim, fn: Callable[[], Awaitable[None]], daemon: bool = False) -> None:
    sim.spawn("kcompactd0" if daemon else "task", fn, daemon=daemon)
    await sim.run()


def _cc(pa: PageAllocator, zone_name: str = "Normal", **kw: object) -> CompactControl:
    z = pa.machine.zone(zone_name)
    args: dict[str, object] = {"zone": z, "gfp_mask": GFP_TRANSHUGE, "pa": pa, "order": 9}
    args.update(kw)
    return CompactControl(**args)  # type: ignore[arg-type]


def _block(pa: PageAllocator, n: int) -> int:
    """The first pfn of the ``n``-th pageblock of the Normal zone."""
    z = pa.machine.zone("Normal")
    return ((z.zone_start_pfn + PAGEBLOCK_NR_PAGES - 1) & ~(PAGEBLOCK_NR_PAGES - 1)) + (
        n * PAGEBLOCK_NR_PAGES
    )


# --- 1. update_cached_migrate: pageblock_end_pfn(pfn) = ALIGN(pfn + 1, pageblock_nr_pages)


def test_cached_migrate_pfn_moves_a_whole_block_past_an_aligned_pfn() -> None:
    _, _, pa = _machine()
    cc = _cc(pa, mode=MIGRATE_SYNC_LIGHT)
    z = cc.zone
    z.compact_cached_migrate_pfn[0] = z.compact_cached_migrate_pfn[1] = 0
    update_cached_migrate(cc, 1024)  # compaction.c:474, pageblock-flags.h:63
    assert z.compact_cached_migrate_pfn == [1536, 1536]
    update_cached_migrate(cc, 1600)
    assert z.compact_cached_migrate_pfn == [2048, 2048]


# --- 2. the isolation limit counts pages, not folios (compaction.c:1242-1256)


async def test_isolation_stops_at_32_pages_of_order_4_folios() -> None:
    m, sim, pa = _machine()
    z = m.zone("Normal")
    allocate_everything(z)
    start = _block(pa, 1)
    for pfn in range(start, start + PAGEBLOCK_NR_PAGES, 16):
        m.memmap.mark_block(pfn, 4, PG_ALLOC, OWNER_ANON)
    adopt_allocated(pa)
    cc = _cc(pa, mode=MIGRATE_SYNC_LIGHT)

    async def run() -> None:
        await isolate_migratepages_block(cc, start, start + PAGEBLOCK_NR_PAGES)

    await _in_actor(sim, run)
    assert cc.nr_migratepages == 32  # two order-4 folios, not 32 of them (512 pages)
    assert len(cc.migratepages) == 2
    assert cc.migrate_pfn == start + 32


# --- 3. non-buddy, non-LRU pages are isolate_fail (compaction.c:1082-1101)


async def test_a_page_held_by_a_compactor_abandons_the_async_direct_sub_block() -> None:
    m, sim, pa = _machine()
    z = m.zone("Normal")
    allocate_everything(z)
    start = _block(pa, 1)
    # pfn start+5: a free page sitting in another compactor's freepages[] (not PageBuddy, not
    # PageLRU)
    m.memmap.mark_block(start + 5, 0, PG_ISOLATED)
    adopt_allocated(pa)
    lv = pa.lruvecs[0]
    cc = _cc(pa, mode=MIGRATE_ASYNC, direct_compaction=True)

    async def run() -> None:
        await isolate_migratepages_block(cc, start, start + PAGEBLOCK_NR_PAGES)

    await _in_actor(sim, run)
    # the 5 isolated before it are put back and the order-9 sub-block (the pageblock) is left:
    # skip_on_failure (1268-1297); nothing isolated, so the block is marked skip (1318-1329)
    assert cc.nr_migratepages == 0 and cc.migratepages == []
    assert m.memmap.pb_skip[start // PAGEBLOCK_NR_PAGES]
    assert lv.nr_isolated_anon == 0


# --- 5. cc->migratepages is built with list_add: the last isolated folio is first (1240)


async def test_migratepages_list_has_the_last_isolated_folio_first() -> None:
    m, sim, pa = _machine()
    z = m.zone("Normal")
    allocate_everything(z)
    adopt_allocated(pa)
    start = _block(pa, 1)
    cc = _cc(pa, mode=MIGRATE_SYNC_LIGHT)

    async def run() -> None:
        await isolate_migratepages_block(cc, start, start + PAGEBLOCK_NR_PAGES)

    await _in_actor(sim, run)
    assert cc.migratepages == list(range(start + 31, start - 1, -1))


# --- 6. -ENOMEM counts the folio and the pass's retried folios in pgmigrate_fail


async def test_enomem_counts_the_folio_and_the_passes_retries_as_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, sim, pa = _machine()
    z = m.zone("Normal")
    allocate_everything(z)
    start = _block(pa, 1)
    adopt_allocated(pa)
    cc = _cc(pa, mode=MIGRATE_ASYNC)

    async def no_target(cc: CompactControl, order: int) -> int:
        return -1

    monkeypatch.setattr(migrate_mod, "compaction_alloc", no_target)

    async def run() -> None:
        await isolate_migratepages_block(cc, start, start + 2)
        cc.migratepages.sort()
        m.memmap.owner[start] = OWNER_PINNED  # pinned after isolation (a GUP since)
        # [pinned, anon]: the pinned one gets -EAGAIN, then the other -ENOMEM in the same pass
        err, ok = await migrate_mod.migrate_pages(cc)
        assert (err, ok) == (migrate_mod.ENOMEM, 0)

    await _in_actor(sim, run)
    assert pa.vm_events["pgmigrate_fail"] == 2  # migrate.c:1842: nr_pages + nr_retry_pages


# --- 4. a capture made in check_drain is noticed after the next migrate round


async def test_capture_in_check_drain_is_noticed_after_one_more_migrate_round() -> None:
    m = Machine.simple(DMA32=4096, Normal=65536)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    for z in pa.zones:
        free_k_of_n(z, 1, 2)
    adopt_allocated(pa)
    cpu = pa.cpus[0]
    ac, alloc_flags, _ = pa.prepare_alloc_pages(cpu, GFP_TRANSHUGE)
    out = []

    async def compactor() -> None:
        out.append(
            await try_to_compact_pages(
                pa, cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, CompactPriority.COMPACT_PRIO_ASYNC
            )
        )

    sim.spawn("compactor", compactor)
    await sim.run()
    ((_, page),) = out
    assert page >= 0
    # the captured block's 256 allocated pages, then one more round of 32 from the next block
    # before capc->page is tested (compaction.c:2687-2691)
    assert pa.vm_events["pgmigrate_success"] == 256 + 32


# --- 7. too_many_isolated: kcompactd is not throttled; a sleeper is woken early


def _too_many(pa: PageAllocator) -> int:
    lv = pa.lruvecs[0]
    lru = sum(lv.nr_pages)
    extra = lru // 16 + 1
    lv.nr_isolated_anon += extra
    return extra


async def _throttled(daemon: bool) -> int:
    m, sim, pa = _machine()
    z = m.zone("Normal")
    free_k_of_n(z, 1, 2)
    adopt_allocated(pa)
    extra = _too_many(pa)
    cc = _cc(pa, mode=MIGRATE_SYNC_LIGHT, gfp_mask=GFP_KERNEL)
    other = _cc(pa, mode=MIGRATE_SYNC_LIGHT, gfp_mask=GFP_KERNEL)
    took: list[int] = []

    async def compactor() -> None:
        t0 = sim.current.now
        start = _block(pa, 1)
        await isolate_migratepages_block(cc, start, start + PAGEBLOCK_NR_PAGES)
        took.append(sim.current.now - t0)

    async def others() -> None:
        # the other compactors put their pages back after 1 ms; one of them then tests
        # too_many_isolated (wake_throttle_isolated)
        await sim.delay(1_000_000)
        await sim.sync()
        pa.lruvecs[0].nr_isolated_anon -= extra
        assert not too_many_isolated(other)
        while not took:  # (kcompactd is a daemon: the run ends when this actor ends)
            await sim.delay(100_000)
            await sim.sync()

    sim.spawn("kcompactd0" if daemon else "task", compactor, daemon=daemon)
    sim.spawn("others", others)
    await sim.run()
    assert cc.nr_migratepages == 32
    return took[0]


async def test_kcompactd_retests_too_many_isolated_without_sleeping() -> None:
    took = await _throttled(daemon=True)
    assert 1_000_000 <= took < 1_100_000  # vmscan.c:531-535: cond_resched, test again


async def test_a_throttled_task_is_woken_when_too_many_isolated_clears() -> None:
    took = await _throttled(daemon=False)
    assert 1_000_000 <= took < ISOLATED_THROTTLE_NS  # compaction.c:818-819


def test_too_many_isolated_shifts_inactive_and_active_separately() -> None:
    _, _, pa = _machine()
    lv = pa.lruvecs[0]
    lv.nr_pages[:] = [0] * len(lv.nr_pages)
    lv.nr_pages[LRU_INACTIVE_ANON] = 23  # >> 3: 2
    lv.nr_pages[LRU_ACTIVE_ANON] = 15  # >> 3: 1; the shifted sum 38 >> 3 would be 4
    lv.nr_isolated_anon = 2
    cc = _cc(pa, gfp_mask=GFP_KERNEL)
    assert too_many_isolated(cc)  # 2 > (2 + 1) / 2 = 1 (a shifted sum would give 2 > 2: no)
    assert not too_many_isolated(_cc(pa, gfp_mask=GFP_NOFS))  # 2 > (23 + 15) / 2: no


# --- 10. the free scanner passes over a compound page whole (compaction.c:630-640)


async def test_free_scanner_counts_a_thp_whole_and_resumes_past_it() -> None:
    m, sim, pa = _machine()
    z = m.zone("Normal")
    allocate_everything(z)
    start = _block(pa, 1)
    m.memmap.mark_block(start, 9, PG_ALLOC, OWNER_ANON)  # a THP fills the block
    cc = _cc(pa, mode=MIGRATE_ASYNC)
    res: list[tuple[int, int]] = []

    async def run() -> None:
        res.append(await isolate_freepages_block(cc, start, start + PAGEBLOCK_NR_PAGES, 32))

    await _in_actor(sim, run)
    assert res == [(0, start + PAGEBLOCK_NR_PAGES)]
    assert cc.total_free_scanned == PAGEBLOCK_NR_PAGES  # 512, not 512 / 32 samples


# --- 8. folios of skipped zones go back to the head of the LRU (vmscan.c:1716-1733)


async def test_reclaim_splices_skipped_zones_folios_to_the_lru_head() -> None:
    m, sim, pa = _machine()
    for z in pa.zones:
        allocate_everything(z)
    adopt_allocated(pa)
    lv = pa.lruvecs[0]
    head = lv.list_head(LRU_INACTIVE_ANON)
    dma32 = m.zone("DMA32")
    normal = m.zone("Normal")
    n_normal = normal.managed_pages
    # the tail (oldest end) of the list holds the Normal folios, then the DMA32 ones
    assert pa.zone_of(m.memmap.list_last(head)) is normal
    sc = ScanControl(nr_to_reclaim=32, gfp_mask=GFP_KERNEL, reclaim_idx=dma32.zone_idx, order=0)
    scans: list[int] = []

    async def run() -> None:
        for _ in range(2):
            await lv.lru_lock.acquire("test")
            taken, scanned = isolate_lru_folios(pa, lv, 8, sc, LRU_INACTIVE_ANON)
            lv.lru_lock.release()
            assert len(taken) == 8
            scans.append(scanned)

    await _in_actor(sim, run)
    # the first call steps over every Normal folio (pgskip_normal) and splices them to the
    # head; the second finds DMA32 folios at the tail at once
    assert scans == [n_normal + 8, 8]
    assert pa.vm_events["pgskip_normal"] == n_normal
    entries = m.memmap.list_entries(head)
    assert all(pa.zone_of(p) is normal for p in entries[:n_normal])


# --- 9. a THP fault clears 2 MiB (huge_memory.c:1167)


async def test_a_thp_fault_is_charged_the_clearing_of_512_pages() -> None:
    _, sim, pa = _machine()
    took: list[int] = []

    async def run() -> None:
        t0 = sim.current.now
        pfn, order = await do_huge_pmd_anonymous_page(pa, pa.cpus[0], True)
        assert pfn >= 0 and order == 9
        took.append(sim.current.now - t0)

    await _in_actor(sim, run)
    assert took[0] >= 512 * pa.costs.clear_page
